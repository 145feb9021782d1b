"""``docvlm retention RUN``: what fine-tuning cost the model's general abilities.

The base and the tuned model (for LoRA: the same weights with the adapters disabled, as in
``evaluate``; a full run loads the base beside it) answer every suite of ``retention.suites``. Each
metric is reported as base, tuned, delta and retention (tuned / base), with paired bootstrap
intervals (the same resampled samples for both models), and a verdict against
``retention.floor``. The task metrics come from ``metrics/<split>.json`` (``evaluate`` runs first
when it is missing). With ``--interpolate`` the tuned side is every WiSE-FT mixture
``base + a * (tuned - base)``, the task is re-scored at each, and the largest task score whose
general retention stays above the floor is picked. Everything lands in
``metrics/retention.json``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from docvlm.config import Config
from docvlm.data.sources import load_split
from docvlm.evaluate import retention_metrics as rm
from docvlm.evaluate.bootstrap import CorpusStats, bootstrap_ci, interval, resampled_values
from docvlm.evaluate.scoring import LOWER_IS_BETTER, TASK_METRICS, metrics_file, score_rows
from docvlm.models.loading import ADAPTER_DIR, MODEL_DIR, Loaded, load_base, load_tuned
from docvlm.retention.interpolate import Interpolator, check_fraction
from docvlm.retention.suites import (DRIFT_METRICS, SuiteData, load_suite, score_probes, score_suite,
                                     suite_options)
from docvlm.runs import load_run_config, write_json

log = logging.getLogger(__name__)

RETENTION_FILE = "retention.json"


class ModelPair:
    """The tuned model and a way to run the base: adapters disabled, or a second model."""

    def __init__(self, run_dir: Path, cfg: Config):
        self.tuned = load_tuned(run_dir, cfg.model)
        self.lora = (run_dir / ADAPTER_DIR).is_dir()
        self.base = self.tuned if self.lora else load_base(cfg.model, processor_from=str(run_dir / MODEL_DIR))
        self.base.model.eval()

    def base_context(self):
        return self.tuned.model.disable_adapter() if self.lora else contextlib.nullcontext()


def suite_group(kind: str) -> str:
    """``general`` suites decide the verdict; DocVQA is reported apart, probes measure drift."""
    return {"docvqa": "ocr", "probes": "drift"}.get(kind, "general")


def compare_metric(base: CorpusStats, tuned: CorpusStats, metric: str, cfg: Config) -> dict:
    """base, tuned, delta, retention and their paired bootstrap intervals for one metric."""
    b, t = base.value(), tuned.value()
    entry: dict = {"base": _finite(b), "tuned": _finite(t), "delta": _finite(t - b)}
    drift = metric in DRIFT_METRICS
    if not drift:
        entry["retention"] = rm.retention(_finite(b), _finite(t))
        entry["verdict"] = None if entry["retention"] is None else (
            "pass" if entry["retention"] >= cfg.retention.floor else "fail")
    resamples = cfg.evaluate.bootstrap_resamples
    if resamples:
        values = resampled_values([base, tuned], resamples, cfg.evaluate.seed)
        confidence = cfg.evaluate.confidence
        entry["base_ci"], entry["tuned_ci"] = interval(values[:, 0], confidence), interval(values[:, 1], confidence)
        entry["delta_ci"] = interval(values[:, 1] - values[:, 0], confidence)
        if not drift:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratios = np.where(values[:, 0] > 0, values[:, 1] / np.where(values[:, 0] > 0, values[:, 0], 1), np.nan)
            entry["retention_ci"] = interval(ratios, confidence)
    return entry


def _finite(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def score_suites(pair: ModelPair, suites: list[SuiteData], cfg: Config, base_stats: dict) -> dict:
    """Every suite scored on the tuned side (as the model now is) against the base statistics."""
    batch, tokens = cfg.generation.batch_size, cfg.retention.max_new_tokens
    cap = cfg.generation.max_batch_visual_tokens
    sections = {}
    for data in suites:
        if data.suite.kind == "probes":
            stats, answers = score_probes(data, pair.base, pair.tuned, pair.base_context, batch, tokens, cap)
            comparisons = {m: _drift_entry(s, cfg) for m, s in stats.items()}
        else:
            stats, answers = score_suite(data, pair.tuned, cfg.evaluate, batch, tokens, cap)
            comparisons = {m: compare_metric(base_stats[data.name][m], stats[m], m, cfg) for m in stats}
        sections[data.name] = {"kind": data.suite.kind, "group": suite_group(data.suite.kind),
                               "n": len(data.samples), "options": suite_options(data.suite, cfg.evaluate),
                               "metrics": comparisons,
                               "examples": _examples(data, answers)}
    return sections


def _drift_entry(stats: CorpusStats, cfg: Config) -> dict:
    """A drift figure has no base/tuned pair: its value and bootstrap interval."""
    entry: dict = {"value": _finite(stats.value())}
    if cfg.evaluate.bootstrap_resamples:
        entry["ci"] = bootstrap_ci(stats, cfg.evaluate.bootstrap_resamples, cfg.evaluate.seed, cfg.evaluate.confidence)
    return entry


def _examples(data: SuiteData, answers: list[str] | None, count: int = 5) -> list[dict]:
    if not answers:
        return []
    return [{"id": s.id, "prompt": s.prompt, "answer": a, "references": list(s.record.all_references)}
            for s, a in zip(data.samples[:count], answers[:count])]


def verdict(sections: dict, floor: float) -> dict:
    """Pass when every general metric keeps at least ``floor`` of the base score; ``n/a`` when no
    general metric was scored (no general suite configured): nothing was checked, so no pass."""
    failing, checked = [], 0
    for name, section in sections.items():
        if section["group"] != "general":
            continue
        for metric, entry in section["metrics"].items():
            if entry.get("retention") is None:
                continue
            checked += 1
            if entry["retention"] < floor:
                failing.append(f"{name}/{metric}")
    ocr = [f"{n}/{m}" for n, s in sections.items() if s["group"] == "ocr"
           for m, e in s["metrics"].items() if e.get("verdict") == "fail"]
    general = "n/a" if not checked else "pass" if not failing else "fail"
    return {"floor": floor, "general": general, "metrics_checked": checked,
            "failing": failing, "ocr_failing": ocr}


def general_retention(sections: dict) -> float | None:
    """Lowest retention over the general metrics (the figure the floor applies to)."""
    values = [e["retention"] for s in sections.values() if s["group"] == "general"
              for e in s["metrics"].values() if e.get("retention") is not None]
    return min(values) if values else None


# --------------------------------------------------------------------------------------------
# The task side: metrics/<split>.json, or a re-score for each interpolation


def task_metrics(run_dir: Path, cfg: Config, overrides: list[str] | None) -> dict:
    path = metrics_file(run_dir, cfg.evaluate.split)
    if not path.is_file():
        from docvlm.evaluate.run import evaluate_run

        log.info("%s is missing: running 'docvlm evaluate' first", path)
        evaluate_run(run_dir, overrides, progress=False)
    data = json.loads(path.read_text(encoding="utf-8"))
    # Replay datasets are general data mixed into training: reported apart, as "replay".
    roles = {d.name: getattr(d, "role", "task") for d in cfg.data.datasets}
    task = {}
    for name, result in data["datasets"].items():
        task[name] = {m: {"base": result["base"][m]["value"], "tuned": result["tuned"][m]["value"],
                          "delta": result["delta"][m], "role": roles.get(name, "task")}
                      for m in result["metrics"] if "base" in result}
    return task


def task_scores(loaded: Loaded, cfg: Config) -> dict:
    """Each task dataset's primary metric for the model as it is now (interpolation sweeps)."""
    from docvlm.predict.run import predict_samples

    role = "test" if cfg.evaluate.split == "test" else "eval"
    scores = {}
    for dataset in cfg.data.datasets:
        if getattr(dataset, "role", "task") == "replay":
            continue
        samples = load_split(dataset, role, cfg.data)
        if samples is None or len(samples) == 0:
            continue
        samples = samples.head(cfg.evaluate.max_samples)
        rows = predict_samples(loaded, samples, cfg.generation.batch_size, cfg.generation.max_new_tokens,
                               cfg.generation.num_beams, progress=False,
                               max_batch_visual_tokens=cfg.generation.max_batch_visual_tokens)
        for row in rows:
            row["references"] = row.get("references") or [row["reference"] or ""]
        metric = TASK_METRICS[dataset.task][0]
        scores[dataset.name] = {metric: score_rows(rows, (metric,), cfg.evaluate).value(metric)}
    return scores


def pick_interpolation(points: list[dict], floor: float) -> dict | None:
    """The point with the best task score among those whose general retention is >= floor."""
    def task_value(point: dict) -> float:
        total = 0.0
        for scores in point["task"].values():
            for metric, value in scores.items():
                value = value if value is not None else np.nan
                total += -value if metric in LOWER_IS_BETTER else value
        return total

    eligible = [p for p in points if p["general_retention"] is None or p["general_retention"] >= floor]
    return max(eligible, key=lambda p: (task_value(p), p["a"])) if eligible else None


# --------------------------------------------------------------------------------------------


def retention_run(run_dir: str | Path, overrides: list[str] | None = None,
                  interpolate: list[float] | None = None) -> dict:
    run_dir = Path(run_dir)
    for a in interpolate or []:
        check_fraction(a)
    cfg = load_run_config(run_dir, overrides)
    task = task_metrics(run_dir, cfg, overrides)
    suites = [load_suite(s, cfg.data, cfg.retention) for s in cfg.retention.suites]
    pair = ModelPair(run_dir, cfg)
    batch, tokens = cfg.generation.batch_size, cfg.retention.max_new_tokens
    cap = cfg.generation.max_batch_visual_tokens
    base_stats = {}
    with pair.base_context():
        for data in suites:
            if data.suite.kind != "probes":
                base_stats[data.name] = score_suite(data, pair.base, cfg.evaluate, batch, tokens, cap)[0]
    report: dict = {"run": str(run_dir), "floor": cfg.retention.floor, "options": _options(cfg), "task": task}
    if interpolate:
        interpolator = Interpolator(pair.tuned.model, None if pair.lora else pair.base.model)
        points = []
        for a in interpolate:
            interpolator.set(a)
            sections = score_suites(pair, suites, cfg, base_stats)
            points.append({"a": a, "task": task_scores(pair.tuned, cfg), "general_retention": general_retention(sections),
                           "verdict": verdict(sections, cfg.retention.floor), "suites": sections})
        interpolator.set(1.0)
        report["interpolation"] = points
        chosen = pick_interpolation(points, cfg.retention.floor)
        report["chosen_a"] = None if chosen is None else chosen["a"]
        full = next((p for p in points if p["a"] == 1.0), points[-1])
        report["suites"], report["verdict"] = full["suites"], full["verdict"]
    else:
        report["suites"] = score_suites(pair, suites, cfg, base_stats)
        report["verdict"] = verdict(report["suites"], cfg.retention.floor)
    report["general_retention"] = general_retention(report["suites"])
    write_json(run_dir / "metrics" / RETENTION_FILE, report)
    return report


def _options(cfg: Config) -> dict:
    return {"meteor": {"implementation": "nltk.translate.meteor_score (not the Java METEOR 1.5)",
                       "synonyms": rm.meteor_synonyms()},
            "retrieval": "rank by mean per-token log-likelihood of the caption given the image",
            "probes": "base greedy answers; KL(base || tuned) and cross-entropy in nats per answer token",
            "bootstrap": {"resamples": cfg.evaluate.bootstrap_resamples, "confidence": cfg.evaluate.confidence,
                          "seed": cfg.evaluate.seed, "paired": True}}


# --------------------------------------------------------------------------------------------
# Table


def _num(value: Any, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1%}" if percent else f"{value:.3f}"


def _ci(ci: list | None, percent: bool = False) -> str:
    if not ci or ci[0] is None:
        return ""
    return f" [{_num(ci[0], percent)}, {_num(ci[1], percent)}]"


def format_retention(report: dict) -> str:
    header = (f"{'suite':<16} {'group':<8} {'n':>5} {'metric':<14} {'base':>8} {'tuned':>8} {'delta':>8} "
              f"{'retention [95% CI]':<26} verdict")
    lines = [header, "-" * len(header)]
    for name, section in report["suites"].items():
        for metric, e in section["metrics"].items():
            if "value" in e:  # drift figures
                lines.append(f"{name:<16} {section['group']:<8} {section['n']:>5} {metric:<14} {'':>8} "
                             f"{_num(e['value']):>8} {'':>8} {'drift' + _ci(e.get('ci')):<26}")
                continue
            retention = _num(e["retention"], True) + _ci(e.get("retention_ci"), True)
            lines.append(f"{name:<16} {section['group']:<8} {section['n']:>5} {metric:<14} {_num(e['base']):>8} "
                         f"{_num(e['tuned']):>8} {_num(e['delta']):>8} {retention:<26} {e['verdict'] or 'n/a'}")
    for name, metrics in report["task"].items():
        for metric, e in metrics.items():
            lines.append(f"{name:<16} {e.get('role', 'task'):<8} {'':>5} {metric:<14} {_num(e['base']):>8} {_num(e['tuned']):>8} "
                         f"{_num(e['delta']):>8}")
    v = report["verdict"]
    if v["general"] == "n/a":
        lines.append("verdict: none (no general suite was scored; configure retention.suites to measure what "
                     "the fine-tune cost)")
    else:
        lines.append(f"verdict (floor {v['floor']:.0%} of the base score on every general metric): "
                     f"{v['general'].upper()}" + (f"; below the floor: {', '.join(v['failing'])}" if v["failing"] else ""))
    for point in report.get("interpolation", []):
        lines.append(f"  a={point['a']:<5} task {json.dumps(point['task'])} general retention "
                     f"{_num(point['general_retention'], True)} {point['verdict']['general']}")
    if "interpolation" in report:
        lines.append(f"chosen interpolation: a = {report['chosen_a']}" if report["chosen_a"] is not None
                     else "no interpolation keeps general retention above the floor")
    return "\n".join(lines)
