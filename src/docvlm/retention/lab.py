"""``docvlm lab``: the forgetting lab, offline, on a CPU.

A tiny random-weight Qwen2-VL is first taught "general" skills on rendered scenes (colour, shape
and count questions, captions; see :mod:`docvlm.retention.scenes`) and cached. It is then
fine-tuned on synthetic digit lines, the narrow task, once per strategy: full tuning, LoRA, each
scope preset, replay of the general data, KL to the base, L2-SP, and a WiSE-FT sweep over the
fully tuned weights. Every strategy goes through the same ``docvlm train`` code users run (only
config switches differ) and is scored on the task (CER) and on the general suites (VQA accuracy,
multiple-choice accuracy, caption METEOR, retrieval Recall@1, drift KL). One table is printed,
``lab.json`` holds one object per strategy and ``lab.png`` plots task gain against retention.

Definitions: *general score* is the mean over the suites of each suite's headline metric;
*retention* is the general score over the general model's; *task gain fraction* is the CER
reduction from the general model over full tuning's CER reduction.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from docvlm.config import (Config, DataConfig, DatasetConfig, EvalConfig, ModelConfig, RetentionConfig,
                           RetentionSuiteConfig, from_dict)
from docvlm.data.synthetic import LineStyle, is_rendered, write_synthetic_lines
from docvlm.evaluate.metrics import cer
from docvlm.models.loading import MODEL_DIR, Loaded, load_base, load_tuned
from docvlm.models.tiny import TinySize, build_tiny_model
from docvlm.retention.interpolate import Interpolator
from docvlm.retention.scenes import SIZE, suite_configs, write_scenes
from docvlm.retention.suites import SuiteData, generate, load_suite, score_probes, score_suite
from docvlm.runs import write_json

HEADLINE = {"vqa": "vqa_accuracy", "multiple_choice": "accuracy", "caption": "meteor", "retrieval": "i2t_r@1"}
"""The metric each general suite contributes to the general score."""
LINE_STYLE = LineStyle(cell_width=28)
LINE_PROMPT = "Transcribe the text in this image."


@dataclass(frozen=True)
class LabSize:
    """How big the lab is. The defaults are the measured run in the README (27 min on 2 shared
    CPU cores): 500 general steps reach a general score of 0.79; 200 task steps per strategy."""

    general_scenes: int = 800
    general_steps: int = 500
    task_lines: int = 2000
    task_steps: int = 200
    eval_scenes: int = 30
    test_lines: int = 50
    batch_size: int = 16
    retrieval_candidates: int = 16
    tiny: TinySize = TinySize(layers=3, hidden=96, heads=4, kv_heads=2, vision_layers=2, vision_hidden=64,
                              vision_heads=2)
    wise_ft: tuple[float, ...] = (0.25, 0.5, 0.75)


QUICK = LabSize(general_scenes=24, general_steps=12, task_lines=24, task_steps=6, eval_scenes=4, test_lines=4,
                batch_size=4, retrieval_candidates=4,
                tiny=TinySize(layers=2, hidden=64, heads=4, kv_heads=2, vision_layers=1, vision_hidden=32,
                              vision_heads=2),
                wise_ft=(0.5,))


def strategies(replay: list[dict]) -> dict[str, tuple[list[str], list[dict]]]:
    """Per strategy: config overrides on top of the task config (full tuning of every component)
    and further training datasets (replay)."""
    mix = ["--data.mixture", "weighted"]
    return {
        "full": ([], []),
        "lora": (["--tuning.method", "lora", "--tuning.lora.r", "16", "--train.learning_rate", "3e-3"], []),
        "scope language_attention": (["--tuning.scope", "language_attention"], []),
        "scope language_mlp_gate_up": (["--tuning.scope", "language_mlp_gate_up"], []),
        "scope language": (["--tuning.scope", "language"], []),
        "scope projector": (["--tuning.scope", "projector"], []),
        "replay": (mix, replay),
        "kl": (["--train.kl_to_base", "1.0"], []),
        "replay + kl": (mix + ["--train.kl_to_base", "1.0"], replay),
        "l2-sp": (["--train.l2_to_init", "0.01"], []),
    }


# --------------------------------------------------------------------------------------------
# Data and the general model


def _scene_dataset(kind: str, root: Path, split: str, **fields) -> dict:
    base = {"name": f"scenes_{kind}", "source": str(root / kind), "train_split": split, "eval_split": None,
            "test_split": None, "allow_outside_root": True, "min_pixels": SIZE * SIZE, "max_pixels": SIZE * SIZE}
    return {**base, **fields}


def general_datasets(root: Path) -> list[dict]:
    """What the general model learns from: VQA questions and captions of the training scenes."""
    return [_scene_dataset("vqa", root, "train", question_column="question", answers_column="answers"),
            _scene_dataset("caption", root, "train", prompt="Describe the picture.", answers_column="captions")]


def _common(output: Path, size: LabSize, steps: int, batch: int) -> list[str]:
    return ["--output_root", str(output / "runs"), "--model.dtype", "fp32",
            "--tuning.method", "full", "--tuning.freeze_vision", "false", "--tuning.freeze_projector", "false",
            "--tuning.freeze_language", "false", "--train.learning_rate", "1e-3", "--train.max_grad_norm", "10",
            "--train.batch_size", str(batch), "--train.gradient_accumulation_steps", "1",
            "--train.max_steps", str(steps), "--train.warmup", "0.05", "--train.eval_steps", "0",
            "--train.save_steps", str(steps), "--train.save_total_limit", "1", "--train.logging_steps", "50",
            "--train.report_to", "[none]", "--generation.max_new_tokens", "10", "--generation.batch_size", "32"]


def _config(output: Path, size: LabSize, run_name: str, model: Path, datasets: list[dict], steps: int,
            extra: list[str]) -> Config:
    from docvlm.config import parse_overrides, set_dotted, validate

    data: dict = {"data": {"datasets": [dict(d) for d in datasets]}}
    args = _common(output, size, steps, size.batch_size) + ["--run_name", run_name, "--model.name_or_path", str(model)]
    for key, value in parse_overrides(args + extra):
        set_dotted(data, key, value)
    config = from_dict(Config, data)
    validate(config)
    return config


def _train(cfg: Config) -> dict:
    from docvlm.train.trainer import run_training

    shutil.rmtree(cfg.run_dir, ignore_errors=True)
    return run_training(cfg)


def general_model(output: Path, size: LabSize, scene_root: Path, log) -> Path:
    """The tiny model after general training, cached by its settings."""
    settings = {"size": asdict(size) | {"task_lines": None, "task_steps": None}, "version": 1}
    marker = output / "general.json"
    model_dir = output / "runs" / "general" / MODEL_DIR
    if marker.is_file() and model_dir.is_dir() and json.loads(marker.read_text()) == json.loads(json.dumps(settings)):
        log(f"general model cached in {model_dir}")
        return model_dir
    tiny = build_tiny_model("qwen2_vl", output / "tiny-qwen2_vl", size.tiny, seed=0)
    cfg = _config(output, size, "general", tiny, general_datasets(scene_root), size.general_steps, [])
    summary = _train(cfg)
    log(f"general model trained: {summary['global_step']} steps in {summary['train_seconds']:.0f} s")
    write_json(marker, settings)  # atomic: the marker says the cached model is complete
    return model_dir


# --------------------------------------------------------------------------------------------
# Scoring one model


@dataclass
class Scores:
    task_cer: float
    suites: dict[str, float]
    drift_kl: float | None = None
    details: dict = field(default_factory=dict)

    @property
    def general(self) -> float:
        return sum(self.suites.values()) / len(self.suites)


def _task_cer(loaded: Loaded, lines: SuiteData) -> float:
    answers = generate(loaded, lines.samples, 32, 10)
    return cer([s.target for s in lines.samples], answers).rate


def score_model(loaded: Loaded, suites: list[SuiteData], lines: SuiteData, base: Loaded | None) -> Scores:
    evaluate = EvalConfig()
    values, details, drift = {}, {}, None
    for data in suites:
        if data.suite.kind == "probes":
            if base is not None:
                stats, _ = score_probes(data, base, loaded, contextlib.nullcontext, 16, 10)
                drift = stats["kl_base_tuned"].value()
            continue
        stats, _ = score_suite(data, loaded, evaluate, 16, 10)
        details[data.name] = {m: s.value() for m, s in stats.items()}
        values[data.suite.kind] = details[data.name][HEADLINE[data.suite.kind]]
    return Scores(_task_cer(loaded, lines), values, drift, details)


def _language_changed(tuned: Loaded, base: Loaded) -> bool:
    """Whether any language-model weight differs from the general model's (adapters count as a change)."""
    if any("lora_" in n and tuned.spec.component_of(n) == "language" for n, _ in tuned.model.named_parameters()):
        return True
    start = dict(base.model.named_parameters())
    return any(tuned.spec.component_of(n) == "language" and not torch.equal(p, start[n])
               for n, p in tuned.model.named_parameters() if n in start)


# --------------------------------------------------------------------------------------------
# The lab


def run_lab(output: str | Path = "runs/lab", quick: bool = False, size: LabSize | None = None,
            only: list[str] | None = None) -> list[dict]:
    started = time.time()
    size = size or (QUICK if quick else LabSize())
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)

    def log(message: str) -> None:
        print(f"[lab {time.time() - started:5.0f} s] {message}", flush=True)

    scene_root = output / "scenes"
    scenes_settings = {"train": size.general_scenes, "test": size.eval_scenes}
    if not (scene_root / "settings.json").is_file() or json.loads((scene_root / "settings.json").read_text()) != scenes_settings:
        shutil.rmtree(scene_root, ignore_errors=True)
        write_scenes(scene_root, scenes_settings, seed=0)
        write_json(scene_root / "settings.json", scenes_settings)
    lines_root = output / "lines"
    line_splits = {"train": size.task_lines, "test": size.test_lines}
    if not is_rendered(lines_root, line_splits, LINE_STYLE, seed=0):
        shutil.rmtree(lines_root, ignore_errors=True)
        write_synthetic_lines(lines_root, line_splits, LINE_STYLE, seed=0)
    log("scenes and lines ready")

    general = general_model(output, size, scene_root, log)
    data_cfg = DataConfig()
    suite_list = [from_dict(RetentionSuiteConfig, s) for s in suite_configs(scene_root, "test")]
    for suite in suite_list:
        suite.max_samples = size.eval_scenes * (3 if suite.kind == "vqa" else 1)
        suite.max_candidates = size.retrieval_candidates
    suites = [load_suite(s, data_cfg, RetentionConfig(max_samples=None)) for s in suite_list]
    line_suite = RetentionSuiteConfig(kind="docvqa", dataset=DatasetConfig(
        name="lines", source=str(lines_root), test_split="test", prompt=LINE_PROMPT, min_pixels=784, max_pixels=6272))
    lines = load_suite(line_suite, data_cfg, RetentionConfig(max_samples=None))

    base = load_base(ModelConfig(name_or_path=str(general), dtype="fp32"))
    base.model.eval()
    base_scores = score_model(base, suites, lines, None)
    log(f"general model: task CER {base_scores.task_cer:.1%}, general score {base_scores.general:.3f} "
        f"({_suite_text(base_scores)})")

    task_dataset = {"name": "lines", "source": str(lines_root), "train_split": "train", "eval_split": None,
                    "test_split": "test", "prompt": LINE_PROMPT, "min_pixels": 784, "max_pixels": 6272}
    replay = [dict(d, role="replay", weight=0.5) for d in general_datasets(scene_root)]
    rows: list[dict] = [_row("general model (base)", base_scores, base_scores, None, 0, 0.0)]
    full_run: Path | None = None
    for name, (extra, more_data) in strategies(replay).items():
        if only and name not in only:
            continue
        run_name = "task-" + name.replace(" + ", "_and_").replace(" ", "_")
        cfg = _config(output, size, run_name, general, [task_dataset, *more_data], size.task_steps, extra)
        summary = _train(cfg)
        tuned = load_tuned(cfg.run_dir, cfg.model)
        scores = score_model(tuned, suites, lines, base)
        row = _row(name, scores, base_scores, None, summary["trainable_parameters"], summary["train_seconds"])
        row["language_weights_changed"] = _language_changed(tuned, base)
        rows.append(row)
        log(f"{name}: task CER {scores.task_cer:.1%}, retention {_pct(row['retention'])}")
        if name == "full":
            full_run = cfg.run_dir
            full_tuned, full_summary = tuned, summary
        else:
            del tuned
    if full_run is not None:
        interpolator = Interpolator(full_tuned.model, base.model)
        for a in size.wise_ft:
            interpolator.set(a)
            scores = score_model(full_tuned, suites, lines, base)
            rows.append(_row(f"wise-ft a={a}", scores, base_scores, a, full_summary["trainable_parameters"],
                             full_summary["train_seconds"]))
            log(f"wise-ft a={a}: task CER {scores.task_cer:.1%}, retention {_pct(rows[-1]['retention'])}")
        interpolator.set(1.0)
    _fill_gain_fractions(rows)
    report = {"rows": rows, "size": asdict(size), "seconds": round(time.time() - started, 1),
              "summary": summarise(rows)}
    write_json(output / "lab.json", rows)
    write_json(output / "lab_summary.json", report)
    print(format_lab(rows))
    print(report["summary"]["text"])
    plot_lab(rows, output / "lab.png")
    log(f"lab.json and lab.png written to {output}")
    return rows


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _suite_text(scores: Scores) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in scores.suites.items())


def _row(name: str, scores: Scores, base: Scores, a: float | None, trainable: int, seconds: float) -> dict:
    retention = scores.general / base.general if base.general else None
    return {"strategy": name, "task_cer": scores.task_cer, "general_score": scores.general,
            "general_suites": scores.suites, "retention": retention,
            "suite_retention": {k: (v / base.suites[k] if base.suites[k] else None) for k, v in scores.suites.items()},
            "drift_kl": scores.drift_kl, "trainable_parameters": trainable, "seconds": seconds,
            "interpolation": a, "task_gain_fraction": None, "details": scores.details, "_base_cer": base.task_cer}


def _fill_gain_fractions(rows: list[dict]) -> None:
    full = next((r for r in rows if r["strategy"] == "full"), None)
    for row in rows:
        base_cer = row.pop("_base_cer")
        if full is not None and base_cer - full["task_cer"] > 0:
            row["task_gain_fraction"] = (base_cer - row["task_cer"]) / (base_cer - full["task_cer"])


def summarise(rows: list[dict]) -> dict:
    """Whether the lab is meaningful (full tuning forgets) and whether a mitigation meets the target."""
    full = next((r for r in rows if r["strategy"] == "full"), None)
    forgets = full is not None and full["retention"] is not None and full["retention"] <= 0.8
    winners = [r["strategy"] for r in rows if r["strategy"] not in ("full", "general model (base)")
               and r["retention"] is not None and r["retention"] >= 0.98
               and r["task_gain_fraction"] is not None and r["task_gain_fraction"] >= 0.9]
    text = (f"full tuning keeps {_pct(full['retention'])} of the general score "
            f"({'forgets' if forgets else 'does NOT forget'} by the lab's 20% criterion); "
            if full else "no full-tuning row; ")
    text += (f"mitigations with >= 98% retention at >= 90% of full tuning's task gain: {', '.join(winners)}"
             if winners else "no mitigation reached >= 98% retention at >= 90% of full tuning's task gain")
    return {"full_tuning_forgets": forgets, "target_met_by": winners, "text": text}


def format_lab(rows: list[dict]) -> str:
    kinds = list(rows[0]["general_suites"])
    header = (f"{'strategy':<28} {'task CER':>8} {'gain':>6} " + " ".join(f"{k[:10]:>10}" for k in kinds)
              + f" {'general':>8} {'retention':>9} {'drift KL':>8} {'trainable':>10} {'seconds':>8}")
    lines = [header, "-" * len(header)]
    for r in rows:
        gain = "" if r["task_gain_fraction"] is None else f"{r['task_gain_fraction']:.0%}"
        kl = "" if r["drift_kl"] is None else f"{r['drift_kl']:.3f}"
        lines.append(f"{r['strategy']:<28} {r['task_cer']:>8.1%} {gain:>6} "
                     + " ".join(f"{r['general_suites'][k]:>10.3f}" for k in kinds)
                     + f" {r['general_score']:>8.3f} {_pct(r['retention']):>9} {kl:>8} "
                     f"{r['trainable_parameters']:>10} {r['seconds']:>8.0f}")
    return "\n".join(lines)


def plot_lab(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 5))
    for row in rows:
        if row["task_gain_fraction"] is None or row["retention"] is None:
            continue
        axes.scatter(row["task_gain_fraction"], row["retention"], s=30)
        axes.annotate(row["strategy"], (row["task_gain_fraction"], row["retention"]), fontsize=7,
                      xytext=(3, 3), textcoords="offset points")
    axes.axhline(0.98, color="grey", linestyle="--", linewidth=0.8)
    axes.axvline(0.9, color="grey", linestyle="--", linewidth=0.8)
    axes.set_xlabel("task gain (fraction of full tuning's CER reduction)")
    axes.set_ylabel("retention (general score / general model's)")
    axes.set_title("docvlm lab: task gain vs retention")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
