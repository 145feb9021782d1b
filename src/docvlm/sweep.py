"""``docvlm sweep CONFIG --set key=v1,v2 [--set ...]``: one train + evaluate per combination.

A thin loop over :func:`docvlm.train.trainer.run_training` and
:func:`docvlm.evaluate.run.evaluate_run`, in this process: every combination of the ``--set``
values (cartesian product) becomes the run ``<output_root>/<run_name>/sweep-<key>-<value>[-...]``,
and ``<output_root>/<run_name>/sweep.json`` is the ablation table (rewritten after every point, so
an interrupted sweep keeps what it finished). A point that fails (bad value, out of memory, a
bug) is recorded with its error and the sweep goes on. A point whose run folder is already
trained and evaluated is read back, not retrained, so a rerun completes an interrupted sweep.

Why not Hydra multirun or Optuna: docvlm's config is already a typed dataclass tree with
``--section.key value`` overrides, and a grid over a few keys needs no launcher or sampler; a
search (Optuna) would be a different command.
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import re
import traceback
from pathlib import Path
from typing import Callable

from docvlm.config import load_config
from docvlm.errors import ConfigError, DocVLMError, Interrupted
from docvlm.predict.latency import check_price

log = logging.getLogger(__name__)

SWEEP_FILE = "sweep.json"


def parse_sets(sets: list[str]) -> list[tuple[str, list[str]]]:
    """``["tuning.lora.r=8,16"]`` -> ``[("tuning.lora.r", ["8", "16"])]``."""
    axes: list[tuple[str, list[str]]] = []
    for item in sets:
        key, sep, values = item.partition("=")
        key = key.strip().removeprefix("--")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE[,VALUE...], e.g. tuning.lora.r=8,16,32")
        if key in ("run_name", "output_root"):
            raise ConfigError(f"--set {key}: the sweep names its runs itself (sweep-<key>-<value>)")
        choices = [v.strip() for v in values.split(",")]
        if not all(choices):
            raise ConfigError(f"--set {item!r}: empty value in the list")
        if key in (k for k, _ in axes):
            raise ConfigError(f"--set {key} is given twice; list all its values in one --set")
        axes.append((key, list(dict.fromkeys(choices))))
    if not axes:
        raise ConfigError("sweep needs at least one --set KEY=VALUE[,VALUE...]")
    return axes


def check_key(cfg, key: str) -> None:
    """A misspelt key would fail every point: refuse it before training anything (a bad *value*
    only fails its own point)."""
    node = cfg
    for part in key.split("."):
        if isinstance(node, dict):
            return  # free-form options (model.processor_options): their keys are checked when loaded
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"--set {key}: '{part}' is not an index of a list of {len(node)}")
            node = node[int(part)]
        elif hasattr(node, "__dataclass_fields__") and part in node.__dataclass_fields__:
            node = getattr(node, part)
        else:
            raise ConfigError(f"--set {key}: no such config key ('docvlm config fields' lists them)")


def grid(axes: list[tuple[str, list[str]]]) -> list[list[tuple[str, str]]]:
    keys = [key for key, _ in axes]
    return [list(zip(keys, values)) for values in itertools.product(*(values for _, values in axes))]


def point_name(point: list[tuple[str, str]]) -> str:
    text = "sweep-" + "-".join(f"{key}-{value}" for key, value in point)
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", text)


def run_sweep(config: str | Path, sets: list[str], overrides: list[str] | None = None, progress: bool = True,
              price_per_hour: float | None = None, say: Callable[[str], None] = log.info) -> dict:
    from docvlm.progress import bar as progress_bar

    overrides = list(overrides or [])
    axes = parse_sets(sets)
    base = load_config(config, overrides)  # a broken config stops here, before any point runs
    for key, _ in axes:
        check_key(base, key)
    check_price(price_per_hour)
    sweep_dir = base.run_dir
    points = grid(axes)
    table: dict = {"config": str(config), "overrides": overrides, "axes": {k: v for k, v in axes},
                   "sweep_dir": str(sweep_dir), "points": []}
    bar = progress_bar(points, desc="sweep", unit="point", enabled=progress)
    for point in bar:
        name = point_name(point)
        bar.set_postfix_str(name)
        entry = run_point(config, overrides, point, sweep_dir, name, progress, price_per_hour)
        table["points"].append(entry)
        say(f"{name}: {entry['status']}" + (f" ({entry['error']})" if entry.get("error") else ""))
        _write(sweep_dir / SWEEP_FILE, table)
        _release_memory()
    bar.close()
    return table


def run_point(config, overrides: list[str], point: list[tuple[str, str]], sweep_dir: Path, name: str,
              progress: bool, price_per_hour: float | None) -> dict:
    from docvlm.evaluate.run import evaluate_run
    from docvlm.train.trainer import run_training

    entry: dict = {"name": name, "settings": dict(point), "run": str(sweep_dir / name), "status": "failed"}
    settings = [token for key, value in point for token in (f"--{key}", value)]
    try:
        cfg = load_config(config, overrides + settings + ["--output_root", str(sweep_dir), "--run_name", name])
        if _finished(cfg):
            entry["status"] = "reused"
            summary = json.loads((cfg.run_dir / "train_summary.json").read_text(encoding="utf-8"))
            results = list(json.loads((cfg.run_dir / "metrics" / f"{cfg.evaluate.split}.json")
                                      .read_text(encoding="utf-8"))["datasets"].values())
        else:
            summary = _trained(cfg, run_training)
            results = evaluate_run(cfg.run_dir, progress=progress, price_per_hour=price_per_hour)
            entry["status"] = "ok"
        entry.update(point_figures(summary, results))
    except Interrupted:  # Ctrl-C stops the sweep, not just this point
        raise
    except DocVLMError as error:
        entry["error"] = str(error)
    except Exception as error:  # noqa: BLE001 - one failed point must not end the sweep; the trace is kept
        entry["error"] = f"{type(error).__name__}: {error}".splitlines()[0]
        entry["traceback"] = traceback.format_exc()
        log.error("sweep point %s failed:\n%s", name, entry["traceback"])
    return entry


def _trained(cfg, run_training) -> dict:
    """Train the point, or finish what an earlier sweep left: a point with final weights and a
    summary is only evaluated, one with checkpoints resumes from the newest complete one."""
    from docvlm.models.loading import ADAPTER_DIR, MODEL_DIR

    summary_file = cfg.run_dir / "train_summary.json"
    weights = (cfg.run_dir / ADAPTER_DIR).is_dir() or (cfg.run_dir / MODEL_DIR).is_dir()
    if weights and summary_file.is_file():
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
        if not summary.get("interrupted"):
            return summary
    resume = any((cfg.run_dir / "checkpoints").glob("checkpoint-*"))
    return run_training(cfg, resume=resume)


def _finished(cfg) -> bool:
    return (cfg.run_dir / "train_summary.json").is_file() and \
        (cfg.run_dir / "metrics" / f"{cfg.evaluate.split}.json").is_file()


def point_figures(summary: dict, results: list[dict]) -> dict:
    datasets = {}
    for result in results:
        metrics = {}
        for metric in result["metrics"]:
            metrics[metric] = {
                "base": result["base"][metric]["value"], "base_ci": result["base"][metric].get("ci"),
                "tuned": result["tuned"][metric]["value"], "tuned_ci": result["tuned"][metric].get("ci"),
                "delta": result["delta"][metric], "delta_ci": result.get("delta_ci", {}).get(metric),
                "p_value": result.get("p_value", {}).get(metric)}
        latency = result.get("latency", {}).get("tuned", {})
        datasets[result["dataset"]] = {"split": result["split"], "n": result["n"], "metrics": metrics,
                                       "samples_per_second": latency.get("samples_per_second")}
    return {"trainable_parameters": summary.get("trainable_parameters"),
            "total_parameters": summary.get("total_parameters"), "train_seconds": summary.get("train_seconds"),
            "global_step": summary.get("global_step"), "peak_memory_mb": summary.get("peak_memory_mb"),
            "peak_memory_kind": summary.get("peak_memory_kind"), "datasets": datasets}


def _write(path: Path, table: dict) -> None:
    from docvlm.runs import write_json

    write_json(path, table)


def _release_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


# --------------------------------------------------------------------------------------------
# The ablation table


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _interval(ci) -> str:
    return "" if not ci or ci[0] is None else f" [{ci[0] * 100:.2f}, {ci[1] * 100:.2f}]"


def ablation_rows(table: dict) -> list[dict]:
    """One row per point and dataset (first metric of the dataset's task): what tables show."""
    rows = []
    for point in table["points"]:
        common = {"point": point["name"], "settings": point["settings"], "status": point["status"],
                  "trainable_parameters": point.get("trainable_parameters"),
                  "train_seconds": point.get("train_seconds"), "peak_memory_mb": point.get("peak_memory_mb"),
                  "error": point.get("error")}
        if not point.get("datasets"):
            rows.append({**common, "dataset": None, "metric": None})
            continue
        for dataset, figures in point["datasets"].items():
            metric, values = next(iter(figures["metrics"].items()))
            rows.append({**common, "dataset": dataset, "metric": metric, **values})
    return rows


def format_table(table: dict) -> str:
    settings = list(table["axes"])
    header = (" ".join(f"{key:<18}" for key in settings) + f" {'status':<7} {'dataset':<12} {'metric':<6} "
              f"{'tuned [95% CI]':<26} {'base':>9} {'delta':>9} {'trainable':>11} {'train s':>8} {'peak MB':>8}")
    lines = [header, "-" * len(header)]
    for row in ablation_rows(table):
        values = " ".join(f"{str(row['settings'].get(key, '')):<18}" for key in settings)
        if row["metric"] is None:
            lines.append(f"{values} {row['status']:<7} {row['error'] or ''}")
            continue
        tuned = _percent(row["tuned"]) + _interval(row.get("tuned_ci"))
        delta = "n/a" if row["delta"] is None else f"{row['delta']:+.2%}"
        lines.append(f"{values} {row['status']:<7} {row['dataset']:<12} {row['metric'].upper():<6} {tuned:<26} "
                     f"{_percent(row['base']):>9} {delta:>9} {row['trainable_parameters'] or 0:>11,} "
                     f"{row['train_seconds'] or 0:>8.1f} {row['peak_memory_mb'] or 0:>8.0f}")
    failed = sum(p["status"] == "failed" for p in table["points"])
    lines.append(f"{len(table['points'])} points, {failed} failed; table in {Path(table['sweep_dir']) / SWEEP_FILE}")
    return "\n".join(lines)
