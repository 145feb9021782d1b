"""``docvlm evaluate RUN``: the base and the tuned model on the same held-out samples.

For a LoRA run the base model *is* the tuned model with its adapters disabled, so one copy of the
weights answers both questions; a fully tuned run loads the base checkpoint beside it. The base is
given the tuned run's processor, so both read images at the same pixel budget. Each dataset is
scored with the metrics of its task (:data:`docvlm.evaluate.scoring.TASK_METRICS`), and one file,
``metrics/<split>.json``, holds a section per dataset; ``metrics/<split>.per_sample.jsonl`` holds
every sample's value of every metric, base and tuned (one row per sample, with its dataset).
"""

from __future__ import annotations

import logging
from pathlib import Path

from docvlm.config import Config
from docvlm.data.sources import load_split, split_name
from docvlm.errors import DataError
from docvlm.evaluate.predictions import pair_rows, read_predictions
from docvlm.evaluate.scoring import (TASK_METRICS, check_options, dataset_result, metric_options, metrics_file,
                                     per_sample_file, per_sample_rows, score_rows, write_per_sample)
from docvlm.models.loading import ADAPTER_DIR, MODEL_DIR, Loaded, load_base, load_tuned
from docvlm.predict.latency import LatencyMeter, check_price
from docvlm.predict.run import predict_samples, write_predictions
from docvlm.runs import load_run_config, write_json

log = logging.getLogger(__name__)


def _role(cfg: Config) -> str:
    return "test" if cfg.evaluate.split == "test" else "eval"


def evaluate_run(run_dir: str | Path, overrides: list[str] | None = None, progress: bool = True,
                 price_per_hour: float | None = None) -> list[dict]:
    """Predict and score every dataset's evaluation split with the base and the tuned model; each
    result also holds ``latency`` (per system: throughput, ms per sample, peak memory, device, cost)."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir, overrides)
    check_options(cfg.evaluate)
    price_per_hour = check_price(price_per_hour if price_per_hour is not None else cfg.evaluate.price_per_hour,
                                 "evaluate.price_per_hour")
    role = _role(cfg)
    tuned = load_tuned(run_dir, cfg.model)
    base: Loaded | None = None
    generation = cfg.generation
    results, sections, used_metrics, per_sample = [], {}, [], []
    for dataset in cfg.data.datasets:
        split = split_name(dataset, role)
        if split is None:
            continue
        samples = load_split(dataset, role, cfg.data).head(cfg.evaluate.max_samples)
        if len(samples) == 0:
            raise DataError(f"dataset '{dataset.name}' split '{split}' has no samples to score")
        meters = {"base": LatencyMeter(generation.batch_size), "tuned": LatencyMeter(generation.batch_size)}

        def predict(loaded: Loaded, side: str) -> list[dict]:
            return predict_samples(loaded, samples, generation.batch_size, generation.max_new_tokens,
                                   generation.num_beams, progress, meter=meters[side],
                                   max_batch_visual_tokens=generation.max_batch_visual_tokens)

        meters["tuned"].start()
        tuned_rows = predict(tuned, "tuned")
        latency = {"tuned": meters["tuned"].summary(price_per_hour)}
        meters["base"].start()
        if (run_dir / ADAPTER_DIR).is_dir():
            with tuned.model.disable_adapter():
                base_rows = predict(tuned, "base")
        else:
            base = base or load_base(cfg.model, processor_from=str(run_dir / MODEL_DIR))
            base.model.eval()
            base_rows = predict(base, "base")
        latency["base"] = meters["base"].summary(price_per_hour)
        stem = f"{dataset.name}-{split}"
        base_file = write_predictions(base_rows, run_dir / "predictions" / f"base-{stem}.jsonl")
        tuned_file = write_predictions(tuned_rows, run_dir / "predictions" / f"tuned-{stem}.jsonl")
        # Scored from the files just written, through the same reader as 'evaluate --predictions'.
        base_rows = read_predictions(base_file)
        tuned_rows = pair_rows(base_rows, read_predictions(tuned_file), str(base_file), str(tuned_file))
        metrics = TASK_METRICS[dataset.task]
        used_metrics += [m for m in metrics if m not in used_metrics]
        tuned_score = score_rows(tuned_rows, metrics, cfg.evaluate)
        base_score = score_rows(base_rows, metrics, cfg.evaluate)
        result = dataset_result(dataset.name, split, dataset.task, metrics, cfg.evaluate, tuned_score,
                                base=base_score, skipped=samples.report.as_dict()["skipped_total"])
        per_sample += [{"dataset": dataset.name, **row} for row in per_sample_rows(tuned_score, base_score)]
        result["latency"] = latency
        sections[dataset.name] = result
        results.append(result)
    if not results:
        raise DataError(f"no dataset of {run_dir} has a '{cfg.evaluate.split}' split configured")
    write_json(metrics_file(run_dir, cfg.evaluate.split), {
        "split": cfg.evaluate.split, "options": metric_options(cfg.evaluate, tuple(used_metrics)),
        "datasets": sections})
    write_per_sample(per_sample_file(run_dir, cfg.evaluate.split), per_sample)
    return results
