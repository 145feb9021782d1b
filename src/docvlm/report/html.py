"""The report page: sections built from a run folder's files, assembled into one HTML document.

Every value shown is read from the run's files and escaped; nothing is fetched (inline CSS, inline
SVG plots, base64 images). A section whose file is missing is left out, not shown empty.
"""

from __future__ import annotations

import datetime as _dt
import html
import logging
import math
from pathlib import Path
from typing import Any

from docvlm.config import TextMetricConfig
from docvlm.errors import ConfigError
from docvlm.evaluate.metrics import GAP
from docvlm.evaluate.scoring import METRICS
from docvlm.files import write_text_atomic
from docvlm.report.collect import RunData, flatten, read_predictions, read_run
from docvlm.report.diff import counts, diff_html, visible
from docvlm.report.plots import ablation_plot, training_curves

log = logging.getLogger(__name__)

LOWER_IS_BETTER = {"cer", "wer"}

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.6em;border-bottom:2px solid #444}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ccc}
h3{font-size:1.05em}table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top;overflow-wrap:break-word}
.num{white-space:nowrap}tr.failed td{max-width:32em}
.wide{overflow-x:auto}th{background:#f0f0f0}
td.num{text-align:right;font-variant-numeric:tabular-nums}.better{color:#0a7a0a;font-weight:600}
.worse{color:#b00020;font-weight:600}.muted{color:#777}.failed{background:#fde8e8}
.diff{font-family:'DejaVu Sans Mono',monospace;font-size:1.05em;white-space:pre;line-height:1.6}
.diff-label{display:inline-block;width:6.5em;color:#777;font-family:system-ui,sans-serif;font-size:.8em}
.diff-sub{background:#ffd37a}.diff-ins{background:#a8e6a1}.diff-del{background:#f4a7a7}
.diff-gap{color:#999}.sample{border:1px solid #ddd;margin:.8em 0;padding:.5em}.sample img{max-width:100%;
border:1px solid #eee;display:block;margin:.3em 0;min-height:40px;image-rendering:pixelated}.legend span{padding:0 .4em;margin-right:.5em}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.85em}details{margin:.6em 0}
summary{cursor:pointer;font-weight:600}
"""


def esc(value: Any) -> str:
    return html.escape(str(value))


def fmt(metric: str, value: float | None) -> str:
    """Metric values as the CLI tables print them: percentages, CIDEr-D as a plain number."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f}" if metric == "cider_d" else f"{value:.2%}"


def fmt_delta(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if metric == "cider_d" else f"{value:+.2%}"


def fmt_ci(metric: str, ci: Any) -> str:
    if not ci or ci[0] is None:
        return ""
    low, high = (f"{x:.3f}" if metric == "cider_d" else f"{x * 100:.2f}" for x in ci)
    return f" [{low}, {high}]"


def delta_class(metric: str, delta: float | None) -> str:
    if not delta:
        return ""
    better = delta < 0 if metric in LOWER_IS_BETTER else delta > 0
    return "better" if better else "worse"


def table(headers: list[str], rows: list[list[str]], raw: bool = False, row_class: list[str] | None = None) -> str:
    """An HTML table; cells are escaped unless ``raw`` (then the caller escaped them)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{row_class[i]}"' if row_class and row_class[i] else ""
        cells = "".join(f"<td>{cell if raw else esc(cell)}</td>" for cell in row)
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def num(text: str, css: str = "") -> str:
    return f'<span class="num {css}">{esc(text)}</span>' 


# --------------------------------------------------------------------------------------------
# Sections of one run


def config_section(run: RunData) -> str:
    cfg = run.config
    if not cfg:
        return ""
    flat = flatten(cfg)
    tuning = cfg.get("tuning", {})
    keys = ["model.name_or_path", "model.family", "model.dtype", "tuning.method"]
    if tuning.get("method") != "full":
        keys += ["tuning.lora.r", "tuning.lora.alpha", "tuning.lora.dropout", "tuning.lora.use_dora",
                 "tuning.lora.use_rslora"]
    keys += ["tuning.freeze_vision", "tuning.freeze_projector", "tuning.freeze_language", "tuning.freeze_parameters",
             "train.learning_rate", "train.max_steps", "train.num_epochs", "train.batch_size", "train.gradient_accumulation_steps",
             "train.seed", "generation.max_new_tokens", "generation.num_beams", "evaluate.split"]
    rows = [[key, flat[key]] for key in keys if key in flat]
    datasets = [[d.get("name"), d.get("source"), d.get("format"), d.get("task"), d.get("prompt") or "",
                 d.get("min_pixels"), d.get("max_pixels")] for d in cfg.get("data", {}).get("datasets", [])]
    out = ["<h2>Configuration</h2>", table(["key", "value"], rows)]
    if datasets:
        out.append(table(["dataset", "source", "format", "task", "prompt", "min_pixels", "max_pixels"], datasets))
    if run.env:
        packages = ", ".join(f"{k} {v}" for k, v in (run.env.get("packages") or {}).items() if v)
        env_rows = [["python", run.env.get("python")], ["platform", run.env.get("platform")],
                    ["device", run.env.get("device")], ["git commit", run.env.get("git_commit")],
                    ["packages", packages]]
        out += ["<h3>Environment</h3>", table(["environment", "value"], [r for r in env_rows if r[1]])]
    return "".join(out)


def training_section(run: RunData) -> str:
    out = []
    summary = run.train_summary
    if summary:
        rows = [["model family", summary.get("model_family")],
                ["steps", summary.get("global_step")], ["training time (s)", summary.get("train_seconds")],
                ["final training loss", _number(summary.get("train_loss"))],
                _best_metric_row(summary),
                ["best checkpoint", summary.get("best_checkpoint")],
                ["trainable parameters", _count(summary.get("trainable_parameters"))],
                ["total parameters", _count(summary.get("total_parameters"))],
                ["peak memory", _memory(summary)], ["device", summary.get("device")]]
        out.append(table(["training", "value"], [r for r in rows if r[1] not in (None, "")]))
    curves = training_curves(run.train_log)
    if curves:
        out.append(f'<div class="plot">{curves}</div>')
    return "<h2>Training</h2>" + "".join(out) if out else ""


def _best_metric_row(summary: dict) -> list:
    """The selection metric's best value, named and shown as the metric registry shows it
    (a rate or score as a percentage, CIDEr-D or the loss as a number)."""
    selection = summary.get("selection_metric") or "eval_cer"  # runs written before it was recorded
    value = summary.get(f"best_{selection}")
    name = selection.removeprefix("eval_")
    if value is None or not isinstance(value, (int, float)):
        return [f"best eval {name}", None]
    shown = f"{value:.2%}" if name in METRICS and not METRICS[name].number else f"{value:.4g}"
    return [f"best eval {name} (checkpoint selection)", shown]


def _number(value) -> str | None:
    return None if value is None else f"{value:.4g}"


def _count(value) -> str | None:
    return None if value is None else f"{value:,}"


def _memory(summary: dict) -> str | None:
    if summary.get("peak_memory_mb") is None:
        return None
    return f"{summary['peak_memory_mb']:,.0f} MB ({summary.get('peak_memory_kind', '')})"


def metrics_section(run: RunData) -> str:
    out = []
    for split, metrics_file in run.metrics.items():
        for name, result in (metrics_file.get("datasets") or {}).items():
            out.append(f"<h3>{esc(name)} / {esc(result.get('split', split))} "
                       f"<span class='muted'>({esc(result.get('n'))} samples, task {esc(result.get('task'))})</span></h3>")
            out.append(_scores_table(result))
        options = metrics_file.get("options", {}).get("cer_wer")
        if options:
            out.append(f"<p class='muted'>CER/WER: {esc(options.get('average'))}; normalization "
                       f"{esc(options.get('normalization'))}, unit {esc(options.get('unit'))}, whitespace "
                       f"{esc(options.get('whitespace'))}.</p>")
    return "<h2>Metrics: base vs tuned</h2>" + "".join(out) if out else ""


def _scores_table(result: dict) -> str:
    rows = []
    if "base" not in result:
        for metric in result.get("metrics", []):
            entry = result["scores"][metric]
            rows.append([metric.upper(), num(fmt(metric, entry["value"]) + fmt_ci(metric, entry.get("ci")))])
        return table(["metric", "value [95% CI]"], rows, raw=True)
    for metric in result.get("metrics", []):
        base, tuned = result["base"][metric], result["tuned"][metric]
        delta = result.get("delta", {}).get(metric)
        p = result.get("p_value", {}).get(metric)
        rows.append([esc(metric.upper()), num(fmt(metric, base["value"]) + fmt_ci(metric, base.get("ci"))),
                     num(fmt(metric, tuned["value"]) + fmt_ci(metric, tuned.get("ci"))),
                     num(fmt_delta(metric, delta) + fmt_ci(metric, result.get("delta_ci", {}).get(metric)),
                         delta_class(metric, delta)),
                     num("" if p is None else f"{p:.3f}")])
    return table(["metric", "base [95% CI]", "tuned [95% CI]", "delta [95% CI]", "paired p"], rows, raw=True)


def groups_section(run: RunData) -> str:
    """Performance by document type (every ``group_by`` field): type, n, base, tuned, delta."""
    out = []
    for metrics_file in run.metrics.values():
        for name, result in (metrics_file.get("datasets") or {}).items():
            for field_name, rows in group_rows(result).items():
                out.append(f"<h3>{esc(name)}: by {esc(field_name)}</h3>")
                out.append(table([field_name, "n", "metric", "base", "tuned", "delta"], rows, raw=True))
    return "<h2>Performance by document type</h2>" + "".join(out) if out else ""


def group_rows(result: dict) -> dict[str, list[list[str]]]:
    from docvlm.evaluate.groups import group_comparison

    tables: dict[str, list[list[str]]] = {}
    for row in group_comparison(result):
        metric = row["metric"]
        tables.setdefault(row["field"], []).append([
            esc(row["value"]), esc(row["n"]), esc(metric.upper()), num(fmt(metric, row["base"]) if row["base"] is not None else "-"),
            num(fmt(metric, row["tuned"])), num(fmt_delta(metric, row["delta"]) if row["delta"] is not None else "-",
                                                delta_class(metric, row["delta"]))])
    return tables


def _systems(result: dict) -> list[tuple[str, dict]]:
    analysis = result.get("analysis") or {}
    if "tuned" in analysis or "base" in analysis:
        return [(s, analysis[s]) for s in ("tuned", "base") if s in analysis]
    return [("predictions", analysis)]


def failures_section(run: RunData) -> str:
    out = []
    for metrics_file in run.metrics.values():
        for name, result in (metrics_file.get("datasets") or {}).items():
            for system, analysis in _systems(result):
                failures = analysis.get("failures")
                if not failures:
                    continue
                out.append(f"<h3>{esc(name)}, {esc(system)}: {esc(failures.get('wrong'))} of "
                           f"{esc(failures.get('total'))} answers wrong ({esc(failures.get('task', ''))})</h3>")
                rows = []
                for kind, entry in sorted((failures.get("types") or {}).items(), key=lambda kv: -kv[1].get("count", 0)):
                    examples = "<br>".join(
                        f"<b>{esc(e.get('id'))}</b>: {esc(_show_text(e.get('reference')))} → "
                        f"{esc(_show_text(e.get('prediction')))}" for e in entry.get("examples", [])[:3])
                    share = entry.get("share")
                    rows.append([esc(kind), num(str(entry.get("count"))),
                                 num("" if share is None else f"{share:.1%}"), examples])
                out.append(table(["error type", "count", "share", "examples (reference → prediction)"], rows, raw=True))
    return "<h2>Failure analysis</h2>" + "".join(out) if out else ""


def _show_text(value: Any) -> str:
    if isinstance(value, list):
        return " | ".join(str(v) for v in value)
    return "∅ (empty)" if value in (None, "") else str(value)


def worst_section(run: RunData, with_images: bool = True) -> str:
    from docvlm.report.images import sample_images

    out = []
    text_options = _text_options(run)
    for split, metrics_file in run.metrics.items():
        for name, result in (metrics_file.get("datasets") or {}).items():
            system, analysis = _systems(result)[0]
            worst = analysis.get("worst") or []
            if not worst:
                continue
            data_split = result.get("split", split)
            rows = read_predictions(run, system, name, data_split)
            images = sample_images(run.path, name, data_split, [w["id"] for w in worst]) if with_images else {}
            out.append(f"<h3>{esc(name)}: the {len(worst)} worst samples of the {esc(system)} model</h3>")
            out.append('<p class="legend"><span class="diff-sub">substitution</span><span class="diff-ins">'
                       'insertion</span><span class="diff-del">deletion</span></p>')
            primary = result.get("metrics", ["cer"])[0]
            for entry in worst:
                out.append(_worst_sample(entry, rows.get(str(entry["id"])), images.get(entry["id"]), primary,
                                         text_options))
    return "<h2>Worst samples</h2>" + "".join(out) if out else ""


def _text_options(run: RunData) -> TextMetricConfig:
    options = (run.config.get("evaluate") or {}).get("text") or {}
    try:
        return TextMetricConfig(**options)
    except TypeError:
        return TextMetricConfig()


def _worst_sample(entry: dict, row: dict | None, image: str | None, metric: str, options: TextMetricConfig) -> str:
    if row is not None:
        reference = row.get("reference") if isinstance(row.get("reference"), str) else (row.get("references") or [""])[0]
        prediction = row.get("prediction", "")
    elif "reference_aligned" in entry:  # the metrics file alone: the aligned strings without their gaps
        reference = entry["reference_aligned"].replace(GAP, "")
        prediction = entry["prediction_aligned"].replace(GAP, "")
    else:
        reference, prediction = (entry.get("references") or [""])[0], entry.get("prediction", "")
    value = entry.get(metric)
    tally = counts(reference, prediction, options)
    parts = [f'<div class="sample" id="sample-{esc(entry["id"])}"><b>{esc(entry["id"])}</b> '
             f'<span class="muted">{esc(metric.upper())} {esc(fmt(metric, value) if value is not None else "n/a")}; '
             f'{tally["substitution"]} substitutions, {tally["insertion"]} insertions, '
             f'{tally["deletion"]} deletions</span>']
    if image:
        parts.append(f'<img alt="line image of {esc(entry["id"])}" src="{image}">')
    parts.append(diff_html(reference, prediction, options))
    parts.append("</div>")
    return "".join(parts)


def confusions_section(run: RunData) -> str:
    out = []
    for metrics_file in run.metrics.values():
        for name, result in (metrics_file.get("datasets") or {}).items():
            for system, analysis in _systems(result):
                if "substitutions" not in analysis:
                    continue
                out.append(f"<h3>{esc(name)}, {esc(system)}: {analysis['substitutions']} substitutions, "
                           f"{analysis['insertions']} insertions, {analysis['deletions']} deletions</h3>")
                rows = [[esc(_unit(c["expected"])), esc(_unit(c["got"])), num(str(c["count"]))]
                        for c in analysis.get("top_confusions", [])[:15]]
                if rows:
                    out.append(table(["expected", "got", "count"], rows, raw=True))
                scripts = [[esc(s), num(str(e["characters"])), num(str(e["errors"])),
                            num("n/a" if e["accuracy"] is None else f"{e['accuracy']:.2%}")]
                           for s, e in (analysis.get("scripts") or {}).items()]
                if scripts:
                    out.append(table(["script", "characters", "errors", "accuracy"], scripts, raw=True))
    return "<h2>Confusions</h2>" + "".join(out) if out else ""


def _unit(unit: str) -> str:
    """A confusion's side: ∅ for none, ␣ for a space (blank otherwise), control characters by code."""
    return "∅" if not unit else "␣" if unit == " " else visible(unit)


def latency_section(run: RunData) -> str:
    rows = []
    for metrics_file in run.metrics.values():
        for name, result in (metrics_file.get("datasets") or {}).items():
            for system, latency in (result.get("latency") or {}).items():
                rows.append(latency_row(f"{name} / {system}", latency))
    if not rows:
        return ""
    return ("<h2>Inference latency and cost</h2>" + table(LATENCY_HEADERS, rows)
            + "<p class='muted'>Per-sample times: each batch's wall time (prompt encoding + generation) shared "
              "by its samples.</p>")


LATENCY_HEADERS = ["system", "samples", "batch size", "samples/s", "mean ms", "p50 ms", "p95 ms", "peak memory",
                   "device", "cost / 1000 images"]


def latency_row(label: str, latency: dict) -> list[str]:
    def ms(key):
        return "n/a" if latency.get(key) is None else f"{latency[key]:.1f}"

    cost = latency.get("cost_per_1000_images")
    rate = latency.get("samples_per_second")
    return [label, str(latency.get("samples")), str(latency.get("batch_size")),
            "n/a" if rate is None else f"{rate:.2f}", ms("mean_ms"), ms("p50_ms"), ms("p95_ms"),
            f"{latency.get('peak_memory_mb', 0):,.0f} MB ({latency.get('peak_memory_kind', '')})",
            str(latency.get("device", "")),
            "no price given" if cost is None else f"${cost:.4f} (at ${latency.get('price_per_hour')}/h)"]


def data_check_section(run: RunData) -> str:
    if not run.data_check:
        return ""
    from docvlm.datacheck import format_summary

    try:
        text = format_summary(run.data_check)
    except (KeyError, TypeError) as error:
        text = f"data_check.json has an unexpected layout ({error}); see the file itself"
    return f"<h2>Data check</h2><pre>{esc(text)}</pre>"


def retention_section(run: RunData) -> str:
    """metrics/retention.json, whatever its nesting: every object holding numeric ``base`` and
    ``tuned`` becomes a row labelled by its path (suite / metric)."""
    if not run.retention:
        return ""
    rows = []
    for path, entry in _base_tuned_entries(run.retention):
        base, tuned = _value(entry.get("base")), _value(entry.get("tuned"))
        delta = entry.get("delta") if isinstance(entry.get("delta"), (int, float)) else (
            None if base is None or tuned is None else tuned - base)
        retention = entry.get("retention")
        if not isinstance(retention, (int, float)):
            retention = tuned / base if base else None
        rows.append([" / ".join(path), _plain(base), _plain(tuned), _plain(delta, signed=True),
                     "n/a" if retention is None else f"{retention * 100:.1f}%", str(entry.get("verdict", ""))])
    if not rows:
        return ""
    return "<h2>Retention</h2>" + table(["suite / metric", "base", "tuned", "delta", "retention", "verdict"], rows)


def _value(value) -> float | None:
    if isinstance(value, dict):
        value = value.get("value")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _plain(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _base_tuned_entries(node: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], dict]]:
    if isinstance(node, dict):
        if _value(node.get("base")) is not None and _value(node.get("tuned")) is not None:
            return [(path, node)]
        found = []
        for key, value in node.items():
            found += _base_tuned_entries(value, path + (str(key),))
        return found
    if isinstance(node, list):
        found = []
        for i, value in enumerate(node):
            label = value.get("name", str(i)) if isinstance(value, dict) else str(i)
            found += _base_tuned_entries(value, path + (str(label),))
        return found
    return []


def run_body(run: RunData, with_images: bool = True) -> str:
    sections = [config_section(run), training_section(run), metrics_section(run), groups_section(run),
                failures_section(run), worst_section(run, with_images), confusions_section(run),
                latency_section(run), data_check_section(run), retention_section(run)]
    body = "".join(s for s in sections if s)
    return body or "<p>This run folder holds no results yet (train and evaluate it first).</p>"


# --------------------------------------------------------------------------------------------
# Several runs: the ablation table


ABLATION_HEADERS = ["run", "settings", "status", "dataset", "metric", "base", "tuned [95% CI]", "delta [95% CI]",
                    "p", "trainable params", "train s", "peak memory MB"]


def ablation_table(entries: list[dict]) -> str:
    """``entries``: one per run/point with name, settings, status, error, datasets (sweep.json layout)."""
    rows, classes = [], []
    for entry in entries:
        settings = ", ".join(f"{k}={v}" for k, v in entry.get("settings", {}).items())
        common = [esc(entry["name"]), esc(settings), esc(entry["status"])]
        figures = [num(_count(entry.get("trainable_parameters")) or ""), num(_number(entry.get("train_seconds")) or ""),
                   num("" if entry.get("peak_memory_mb") is None else f"{entry['peak_memory_mb']:,.0f}")]
        if not entry.get("datasets"):
            common[2] = f"{esc(entry['status'])}: {esc(entry.get('error') or 'no metrics')}"
            rows.append(common + ["", "", "", "", "", ""] + figures)
            classes.append("failed")
            continue
        for dataset, values in entry["datasets"].items():
            for metric, m in values["metrics"].items():
                rows.append(common + [esc(dataset), esc(metric.upper()), num(fmt(metric, m.get("base"))),
                                      num(fmt(metric, m.get("tuned")) + fmt_ci(metric, m.get("tuned_ci"))),
                                      num(fmt_delta(metric, m.get("delta")) + fmt_ci(metric, m.get("delta_ci")),
                                          delta_class(metric, m.get("delta"))),
                                      num("" if m.get("p_value") is None else f"{m['p_value']:.3f}")] + figures)
                classes.append("")
    return '<div class="wide">' + table(ABLATION_HEADERS, rows, raw=True, row_class=classes) + "</div>"


def run_entry(run: RunData, settings: dict) -> dict:
    """A run in the sweep.json point layout (for runs compared without a sweep)."""
    from docvlm.sweep import point_figures

    metrics_file = run.metrics.get((run.config.get("evaluate") or {}).get("split", "test")) or next(
        iter(run.metrics.values()), None)
    entry = {"name": run.name, "settings": settings, "run": str(run.path)}
    results = [r for r in (metrics_file or {}).get("datasets", {}).values() if "base" in r]
    if not results:
        return {**entry, "status": "not evaluated", "error": "no metrics with base and tuned"}
    return {**entry, "status": "ok", **point_figures(run.train_summary or {}, results)}


def differing_settings(runs: list[RunData]) -> list[dict]:
    """Per run, the config values that differ between the runs (what the comparison varies)."""
    flats = [flatten(r.config) for r in runs]
    keys = sorted(set().union(*flats)) if flats else []
    varying = [k for k in keys if k not in ("run_name", "output_root") and len({repr(f.get(k)) for f in flats}) > 1]
    return [{k: f.get(k) for k in varying} for f in flats]


# --------------------------------------------------------------------------------------------
# Pages


def document(title: str, body: str) -> str:
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{esc(title)}</h1><p class='muted'>docvlm report, generated {generated}</p>{body}</body></html>\n")


def run_page(run: RunData) -> str:
    return document(f"docvlm run {run.name}", run_body(run))


def comparison_page(title: str, entries: list[dict], runs: list[RunData], note: str = "") -> str:
    failed = sum(e["status"] not in ("ok", "reused") for e in entries)
    body = [f"<h2>Ablation</h2><p>{len(entries)} runs, {failed} without results. {esc(note)}</p>",
            ablation_table(entries)]
    plot = ablation_plot(entries)
    if plot:
        body.append(f'<div class="plot">{plot}</div>')
    for run in runs:
        body.append(f"<details><summary>{esc(run.name)}</summary>{run_body(run, with_images=True)}</details>")
    return document(title, "".join(body))


def build_report(paths: list[str | Path], output: str | Path | None = None) -> tuple[Path, str]:
    """Write the report of one run, a sweep folder, or several runs; returns (file, one-line summary)."""
    if not paths:
        raise ConfigError("report needs at least one run folder")
    runs = [read_run(p) for p in paths]
    if len(runs) == 1 and runs[0].sweep is None:
        run = runs[0]
        page, target = run_page(run), Path(output) if output else run.path / "report.html"
        summary = f"report of {run.name}: {len(run.metrics)} metrics file(s)"
    elif len(runs) == 1:
        sweep = runs[0]
        points = sweep.sweep["points"]
        point_runs = [read_run(p["run"]) for p in points if p["status"] != "failed" and Path(p["run"]).is_dir()]
        note = "axes: " + "; ".join(f"{k} = {', '.join(map(str, v))}" for k, v in sweep.sweep.get("axes", {}).items())
        page = comparison_page(f"docvlm sweep {sweep.name}", points, point_runs, note)
        target = Path(output) if output else sweep.path / "report.html"
        summary = f"sweep report of {sweep.name}: {len(points)} points"
    else:
        entries = [run_entry(run, settings) for run, settings in zip(runs, differing_settings(runs))]
        page = comparison_page("docvlm comparison: " + ", ".join(r.name for r in runs), entries, runs)
        target = Path(output) if output else Path(_common_parent(runs)) / "report.html"
        summary = f"comparison of {len(runs)} runs"
    write_text_atomic(target, page)  # a killed report leaves no half page
    return target, f"{summary}; written to {target} ({target.stat().st_size / 1024:.0f} KiB)"


def _common_parent(runs: list[RunData]) -> Path:
    import os

    return Path(os.path.commonpath([str(r.path.resolve().parent) for r in runs]))
