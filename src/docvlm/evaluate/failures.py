"""Failure analysis: each wrong answer gets one error type; frequencies and a few examples per type.

Pure functions (no torch). A sample gets exactly one type: the *first* that matches in the fixed
priority order below, so the counts of a system add up to its number of wrong samples. The order
goes from the most specific diagnosis (an empty answer, a generation loop, a difference that one
normalization removes) to the least (other).

Transcription (a sample is wrong when its character edit distance is not 0; the texts compared
are those CER compares, after ``evaluate.text`` options; lengths are in CER units):

1. ``empty``: the prediction is empty.
2. ``repetition``: a generation loop: the prediction is longer than the reference and some unit
   of 2-50 characters is repeated 3+ times in a row (or one character 5+ times) where the
   reference has no such run.
3. ``case``: equal after case folding.
4. ``diacritics``: equal once combining marks are removed (after NFD) from both sides.
5. ``punctuation``: equal once punctuation (Unicode P*) is removed and whitespace collapsed.
6. ``truncation``: the prediction is at most 0.9 of the reference's length and an optimal
   alignment drops the reference's tail, which is at least half of the edits.
7. ``hallucination``: the same at the other end: the prediction is at least 1.1 of the
   reference's length and carries extra text at its end that is at least half of the edits.
8. ``confusable``: every edit is a substitution, and each of its ``expected -> got`` pairs occurs
   at least twice in the corpus's confusion counts (a systematic glyph confusion, not noise).
9. ``other``.

Answers (VQA, DocVQA, ChartQA, exact match: a sample is wrong when its primary metric gives it
less than full credit):

1. ``empty``: the answer is empty.
2. ``numeric_format``: the answer and a reference are the same number written differently
   (``1,000`` / ``1000``, ``50%`` / ``50`` / ``0.5``, ``$3`` / ``3``, ``2.50`` / ``2.5``).
3. ``numeric_wrong``: the answer and a reference are numbers, and no reference has its value.
4. ``copied_from_question``: the answer (3+ characters) occurs in the row's ``question`` or
   ``prompt`` field (when the row has one) and in no reference.
5. ``partial_overlap``: ANLS (raw lengths, best reference) is at least 0.5 and below 1.
6. ``other``.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Sequence

import regex
from rapidfuzz.distance import Levenshtein

from docvlm.evaluate.vqa import anls

TRANSCRIPTION_TYPES = ("empty", "repetition", "case", "diacritics", "punctuation", "truncation",
                       "hallucination", "confusable", "other")
ANSWER_TYPES = ("empty", "numeric_format", "numeric_wrong", "copied_from_question", "partial_overlap", "other")
EXAMPLES = 3
TRUNCATION_RATIO = 0.9
HALLUCINATION_RATIO = 1.1
MIN_CONFUSION_COUNT = 2
# A loop: a unit of 2+ characters three times in a row, or one character five times.
_LOOP = re.compile(r"(.{2,50}?)\1{2,}|(.)\2{4,}", re.DOTALL)
_MARKS = regex.compile(r"\p{M}+")
_PUNCTUATION = regex.compile(r"\p{P}+")
_LOOP_SCAN = 2000  # characters of a prediction searched for a loop (the regex is quadratic)


# --------------------------------------------------------------------------------------------
# Transcription


def _loop(prediction: str, reference: str) -> bool:
    if len(prediction) <= len(reference):
        return False  # a loop adds text; the regex is the costliest check, so many lines skip it
    for match in _LOOP.finditer(prediction[:_LOOP_SCAN]):
        if match.group(0) not in reference:
            return True
    return False


def _without_marks(text: str) -> str:
    return _MARKS.sub("", unicodedata.normalize("NFD", text))


def _without_punctuation(text: str) -> str:
    return " ".join(_PUNCTUATION.sub("", text).split())


def _end_error(reference: Sequence[str], prediction: Sequence[str], distance: int) -> str | None:
    """``truncation`` / ``hallucination`` when an optimal alignment puts most edits at the end."""
    n, m = len(reference), len(prediction)
    if n and m <= TRUNCATION_RATIO * n and 2 * (n - m) >= distance:
        if Levenshtein.distance(reference[:m], prediction) + (n - m) == distance:
            return "truncation"
    if m >= HALLUCINATION_RATIO * n and 2 * (m - n) >= distance:
        if Levenshtein.distance(reference, prediction[:n]) + (m - n) == distance:
            return "hallucination"
    return None


def _confusable(reference: Sequence[str], prediction: Sequence[str], confusions: Counter) -> bool:
    ops = Levenshtein.editops(reference, prediction)
    return bool(ops) and all(op.tag == "replace" and confusions[(reference[op.src_pos], prediction[op.dest_pos])]
                             >= MIN_CONFUSION_COUNT for op in ops)


def transcription_error(reference: Sequence[str], prediction: Sequence[str],
                        confusions: Counter | None = None) -> str | None:
    """The error type of one line (sequences of CER units), or None when it is right."""
    distance = Levenshtein.distance(reference, prediction)
    if distance == 0:
        return None
    ref_text, pred_text = "".join(reference), "".join(prediction)
    if not pred_text.strip():
        return "empty"
    if _loop(pred_text, ref_text):
        return "repetition"
    if ref_text.casefold() == pred_text.casefold():
        return "case"
    if not (ref_text.isascii() and pred_text.isascii()) and _without_marks(ref_text) == _without_marks(pred_text):
        return "diacritics"
    if _without_punctuation(ref_text) == _without_punctuation(pred_text):
        return "punctuation"
    end = _end_error(reference, prediction, distance)
    if end:
        return end
    if confusions is not None and _confusable(reference, prediction, confusions):
        return "confusable"
    return "other"


# --------------------------------------------------------------------------------------------
# Answers

_CURRENCY = "$€£¥₹"


def parse_number(text: str) -> tuple[float, bool] | None:
    """(value, had a percent sign) of an answer written as a number, or None."""
    text = text.strip().lower().replace(" ", "")
    percent = text.endswith("%")
    text = text.rstrip("%").lstrip(_CURRENCY)
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?", text):
        text = text.replace(",", "")  # thousands separators
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", text):
        return None
    return float(text), percent


def _same_number(a: tuple[float, bool], b: tuple[float, bool]) -> bool:
    candidates = {a[0]}
    if a[1] != b[1]:  # one side has a percent sign: 50% may be written 50 or 0.5
        candidates.add(a[0] / 100 if a[1] else a[0] * 100)
    return any(abs(c - b[0]) <= 1e-9 * max(1.0, abs(b[0])) for c in candidates)


def answer_error(prediction: str, references: Sequence[str], question: str | None = None) -> str:
    """The error type of one answer that did not get full credit."""
    if not prediction.strip():
        return "empty"
    predicted = parse_number(prediction)
    numbers = [n for n in (parse_number(r) for r in references) if n is not None]
    if predicted is not None and numbers:
        return "numeric_format" if any(_same_number(predicted, n) for n in numbers) else "numeric_wrong"
    answer = " ".join(prediction.lower().split())
    if question and len(answer) >= 3 and answer in " ".join(question.lower().split()) and not any(
            answer in " ".join(r.lower().split()) for r in references):
        return "copied_from_question"
    if 0.5 <= anls(prediction, references) < 1:
        return "partial_overlap"
    return "other"


def closest_reference(prediction: str, references: Sequence[str]) -> str:
    """The reference an example shows: the one nearest to the answer."""
    return min(references, key=lambda r: Levenshtein.normalized_distance(r.lower().strip(), prediction.lower().strip()))


# --------------------------------------------------------------------------------------------
# The report


def failure_report(task: str, total: int, labelled: list[tuple[str, dict]], examples: int = EXAMPLES) -> dict:
    """``{"task", "wrong", "total", "types": {type: {"count", "share", "examples"}}}`` from
    (type, example) pairs of the wrong samples; types by falling count, then priority order;
    ``share`` is of the wrong samples; examples are the first ones in sample order."""
    order = TRANSCRIPTION_TYPES if task == "transcription" else ANSWER_TYPES
    counts = Counter(kind for kind, _ in labelled)
    wrong = len(labelled)
    types = {}
    for kind in sorted(counts, key=lambda k: (-counts[k], order.index(k))):
        types[kind] = {"count": counts[kind], "share": counts[kind] / wrong,
                       "examples": [example for k, example in labelled if k == kind][:examples]}
    return {"task": task, "wrong": wrong, "total": total, "types": types}


def transcription_failures(ids: Sequence[str], alignments: Sequence[tuple[Sequence[str], Sequence[str]]],
                           confusions: Counter | None = None, examples: int = EXAMPLES) -> dict:
    """Failure analysis of a transcription system from its (reference units, prediction units)."""
    labelled = []
    for sample_id, (reference, prediction) in zip(ids, alignments):
        kind = transcription_error(reference, prediction, confusions)
        if kind is not None:
            labelled.append((kind, {"id": sample_id, "reference": "".join(reference),
                                    "prediction": "".join(prediction)}))
    return failure_report("transcription", len(ids), labelled, examples)


def answer_failures(task: str, rows: Sequence[dict], scores: Sequence[float | None],
                    examples: int = EXAMPLES) -> dict:
    """Failure analysis of an answer system: rows with ``prediction``, ``references`` and
    optionally ``question``/``prompt``; ``scores`` the primary metric per row (1 = full credit)."""
    labelled = []
    for row, score in zip(rows, scores):
        if score is not None and score >= 1:
            continue
        question = row.get("question") if isinstance(row.get("question"), str) else row.get("prompt")
        kind = answer_error(row["prediction"], row["references"], question if isinstance(question, str) else None)
        labelled.append((kind, {"id": row["id"], "reference": closest_reference(row["prediction"], row["references"]),
                                "prediction": row["prediction"]}))
    return failure_report(task, len(rows), labelled, examples)
