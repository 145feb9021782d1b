"""``docvlm evaluate RUN``: the base and the tuned model on the same held-out samples.

For a LoRA run the base model *is* the tuned model with its adapters disabled, so one copy of the
weights answers both questions; a fully tuned run loads the base checkpoint beside it. The base is
given the tuned run's processor, so both read images at the same pixel budget.
"""

from __future__ import annotations

import logging
from pathlib import Path

from docvlm.config import Config
from docvlm.data.sources import load_split, split_name
from docvlm.errors import DataError
from docvlm.evaluate.metrics import transcription_scores
from docvlm.models.loading import ADAPTER_DIR, MODEL_DIR, Loaded, load_base, load_tuned
from docvlm.predict.run import predict_samples, write_predictions
from docvlm.runs import load_run_config, write_json

log = logging.getLogger(__name__)

METRIC_OPTIONS = {"average": "micro (corpus edits / corpus reference length)", "unit_cer": "unicode code point",
                  "unit_wer": "whitespace-separated word", "normalization": "none", "case_folding": False}


def _role(cfg: Config) -> str:
    return "test" if cfg.evaluate.split == "test" else "eval"


def _score(rows: list[dict]) -> dict:
    return transcription_scores([r["reference"] for r in rows], [r["prediction"] for r in rows])


def evaluate_run(run_dir: str | Path, overrides: list[str] | None = None, progress: bool = True) -> list[dict]:
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir, overrides)
    role = _role(cfg)
    tuned = load_tuned(run_dir, cfg.model)
    base: Loaded | None = None
    results = []
    for dataset in cfg.data.datasets:
        split = split_name(dataset, role)
        if split is None:
            continue
        samples = load_split(dataset, role, cfg.data)
        samples = samples.head(cfg.evaluate.max_samples)
        if len(samples) == 0:
            raise DataError(f"dataset '{dataset.name}' split '{split}' has no samples to score")
        generation = cfg.generation
        tuned_rows = predict_samples(tuned, samples, generation.batch_size, generation.max_new_tokens,
                                     generation.num_beams, progress)
        if (run_dir / ADAPTER_DIR).is_dir():
            with tuned.model.disable_adapter():
                base_rows = predict_samples(tuned, samples, generation.batch_size, generation.max_new_tokens,
                                            generation.num_beams, progress)
        else:
            base = base or load_base(cfg.model, processor_from=str(run_dir / MODEL_DIR))
            base.model.eval()
            base_rows = predict_samples(base, samples, generation.batch_size, generation.max_new_tokens,
                                        generation.num_beams, progress)
        stem = f"{dataset.name}-{split}"
        write_predictions(base_rows, run_dir / "predictions" / f"base-{stem}.jsonl")
        write_predictions(tuned_rows, run_dir / "predictions" / f"tuned-{stem}.jsonl")
        base_scores, tuned_scores = _score(base_rows), _score(tuned_rows)
        result = {
            "dataset": dataset.name, "split": split, "task": dataset.task, "n": tuned_scores["n"],
            "skipped": samples.report.as_dict()["skipped_total"],
            "base": base_scores, "tuned": tuned_scores,
            "delta": {m: tuned_scores[m]["rate"] - base_scores[m]["rate"] for m in ("cer", "wer")},
            "options": METRIC_OPTIONS,
        }
        write_json(run_dir / "metrics" / f"{stem}.json", result)
        results.append(result)
    if not results:
        raise DataError(f"no dataset of {run_dir} has a '{cfg.evaluate.split}' split configured")
    return results


def format_table(results: list[dict]) -> str:
    header = f"{'dataset/split':<24} {'n':>6} {'metric':<6} {'base':>9} {'tuned':>9} {'delta':>9}"
    lines = [header, "-" * len(header)]
    for result in results:
        name = f"{result['dataset']}/{result['split']}"
        for metric in ("cer", "wer"):
            base, tuned = result["base"][metric]["rate"], result["tuned"][metric]["rate"]
            lines.append(f"{name:<24} {result['n']:>6} {metric.upper():<6} {base:>8.2%} {tuned:>8.2%} "
                         f"{tuned - base:>+8.2%}")
            name = ""
    return "\n".join(lines)
