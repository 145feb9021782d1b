"""Character-level diff of a reference and a prediction, as HTML spans (like dinglehopper's report).

The columns come from the metric's own alignment (:func:`docvlm.evaluate.metrics.aligned_pairs`
on the units :func:`~docvlm.evaluate.metrics.units` makes under the run's text options), so the
coloured operations are exactly the edits the CER counted.
"""

from __future__ import annotations

import html
import unicodedata

from docvlm.config import TextMetricConfig
from docvlm.evaluate.metrics import GAP, aligned_pairs, prepare, units

CLASSES = {"equal": "diff-eq", "substitution": "diff-sub", "insertion": "diff-ins", "deletion": "diff-del"}


def operations(reference: str, prediction: str, options: TextMetricConfig) -> list[tuple[str, str, str]]:
    """(operation, reference unit, predicted unit) per alignment column; the gap side is ``GAP``."""
    ref_units = units(prepare(reference, options), options)
    hyp_units = units(prepare(prediction, options), options)
    columns = []
    for ref, hyp in aligned_pairs(ref_units, hyp_units):
        if ref == GAP:
            columns.append(("insertion", ref, hyp))
        elif hyp == GAP:
            columns.append(("deletion", ref, hyp))
        else:
            columns.append(("equal" if ref == hyp else "substitution", ref, hyp))
    return columns


def visible(unit: str) -> str:
    """A unit as it can be seen: control and format characters as U+XXXX, a space as a middle dot
    inside a changed column (it would be invisible), a lone combining mark on a dotted circle."""
    if unit == GAP:
        return GAP
    out = []
    for char in unit:
        category = unicodedata.category(char)
        if category in ("Cc", "Cf", "Cs", "Co", "Cn"):
            out.append(f"U+{ord(char):04X}")
        elif category.startswith("M") and not out:
            out.append("\u25cc" + char)
        else:
            out.append(char)
    return "".join(out)


def diff_html(reference: str, prediction: str, options: TextMetricConfig) -> str:
    """Two aligned rows (reference above, prediction below), one span per changed run of columns."""
    rows = {"ref": [], "hyp": []}
    for op, ref, hyp in operations(reference, prediction, options):
        css = CLASSES[op]
        for side, unit in (("ref", ref), ("hyp", hyp)):
            text = visible(unit)
            if op != "equal" and unit == " ":
                text = "\u00b7"
            title = "" if op == "equal" else f' title="{op}: {html.escape(visible(ref))} → {html.escape(visible(hyp))}"'
            gap = " diff-gap" if unit == GAP else ""
            rows[side].append(f'<span class="{css}{gap}"{title}>{html.escape(text)}</span>')
    return ('<div class="diff"><div class="diff-row"><span class="diff-label">reference</span>'
            + "".join(rows["ref"]) + '</div><div class="diff-row"><span class="diff-label">prediction</span>'
            + "".join(rows["hyp"]) + "</div></div>")


def counts(reference: str, prediction: str, options: TextMetricConfig) -> dict[str, int]:
    tally = {op: 0 for op in CLASSES}
    for op, _, _ in operations(reference, prediction, options):
        tally[op] += 1
    return tally
