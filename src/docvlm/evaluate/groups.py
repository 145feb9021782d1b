"""Performance by document type: each ``evaluate.group_by`` field's values with base, tuned, delta.

Metrics files already hold every metric per group value for each system (``analysis.<system>.groups``);
this module pairs the base and tuned entries into the rows of the seed's table (type, base, tuned,
delta), for ``docvlm compare`` and the report. Pure: reads result dicts only.
"""

from __future__ import annotations


def group_comparison(result: dict) -> list[dict]:
    """One row per (group field, value, metric): n, base, tuned, delta (base/delta None for a
    single-system result)."""
    analysis = result.get("analysis") or {}
    paired = "tuned" in analysis or "base" in analysis
    tuned = (analysis.get("tuned") if paired else analysis) or {}
    base = (analysis.get("base") or {}) if paired else {}
    rows = []
    for field_name, values in (tuned.get("groups") or {}).items():
        for value, entry in values.items():
            base_entry = (base.get("groups") or {}).get(field_name, {}).get(value) or {}
            for metric in result.get("metrics", []):
                b, t = base_entry.get(metric), entry.get(metric)
                rows.append({"field": field_name, "value": value, "n": entry.get("n"), "metric": metric,
                             "base": b, "tuned": t, "delta": None if b is None or t is None else t - b})
    return rows


def _show(metric: str, value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    if metric == "cider_d":
        return f"{value:+.3f}" if signed else f"{value:.3f}"
    return f"{value:+.2%}" if signed else f"{value:.2%}"


def format_groups(label: str, result: dict) -> str:
    """A text table per group field: type, n, metric, base, tuned, delta; empty without groups."""
    rows = group_comparison(result)
    if not rows:
        return ""
    lines = []
    for field_name in dict.fromkeys(r["field"] for r in rows):
        header = f"{label} by {field_name}"
        lines += [header, f"  {'type':<24} {'n':>6} {'metric':<8} {'base':>10} {'tuned':>10} {'delta':>10}"]
        for row in (r for r in rows if r["field"] == field_name):
            lines.append(f"  {str(row['value'])[:24]:<24} {row['n']:>6} {row['metric'].upper():<8} "
                         f"{_show(row['metric'], row['base']):>10} {_show(row['metric'], row['tuned']):>10} "
                         f"{_show(row['metric'], row['delta'], signed=True):>10}")
    return "\n".join(lines)
