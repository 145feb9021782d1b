"""Failure analysis (issue 13, item 3): one hand-made case per error type, and the schema the
report renders."""

from __future__ import annotations

from collections import Counter

import pytest

from docvlm.config import EvalConfig
from docvlm.evaluate.failures import answer_error, answer_failures, transcription_error, transcription_failures
from docvlm.evaluate.scoring import dataset_result, score_rows


@pytest.mark.parametrize("reference, prediction, expected", [
    ("the old mill", "", "empty"),
    ("the old mill", "  ", "empty"),
    ("the old mill", "the old mill mill mill mill", "repetition"),
    ("the old mill", "the the the the", "repetition"),
    ("the old mill", "the old milllllll", "repetition"),
    ("The Old Mill", "the old mill", "case"),
    ("Müller café", "Muller cafe", "diacritics"),
    ("Mu\u0308ller", "Muller", "diacritics"),  # a combining diaeresis lost
    ("Hello, world.", "Hello world", "punctuation"),
    ("the old mill by the river", "the old mill by", "truncation"),
    ("the old mill by the river", "the olb mill by", "truncation"),  # plus one error before the cut
    ("the old mill", "the old mill by the river bank", "hallucination"),
    ("the old mill", "tbe old rnill", "other"),  # substitutions, but not seen twice in the corpus
    ("abc", "xyz", "other"),
    ("the old mill", "the old mill", None),
])
def test_transcription_types(reference, prediction, expected):
    assert transcription_error(reference, prediction, Counter()) == expected


def test_confusable_needs_recurring_confusions():
    confusions = Counter({("h", "b"): 3, ("m", "rn"): 1, ("u", "n"): 2})
    assert transcription_error("the hour", "tbe honr", confusions) == "confusable"
    assert transcription_error("the hour", "tbe hoxr", confusions) == "other"  # u->x is not recurring
    assert transcription_error("the hour", "tbe ho!ur", confusions) == "other"  # an insertion too


def test_repetition_already_in_the_reference_is_not_a_loop():
    # A dotted leader in the reference is no generation loop.
    assert transcription_error("Chapter 1 ..........", "Chapter I ..........", Counter()) == "other"


@pytest.mark.parametrize("prediction, references, question, expected", [
    ("", ["Paris"], None, "empty"),
    ("1,000", ["1000"], None, "numeric_format"),
    ("50%", ["50"], None, "numeric_format"),
    ("0.5", ["50%"], None, "numeric_format"),
    ("$3.50", ["3.5"], None, "numeric_format"),
    ("1200", ["1000"], None, "numeric_wrong"),
    ("12%", ["15%"], None, "numeric_wrong"),
    ("total amount", ["$12.00"], "What is the total amount on the invoice?", "copied_from_question"),
    ("total amount", ["$12.00"], None, "other"),  # no question in the row: cannot be told
    ("Acme Corp", ["Acme Corporation"], None, "partial_overlap"),
    ("Berlin", ["Paris"], None, "other"),
])
def test_answer_types(prediction, references, question, expected):
    assert answer_error(prediction, references, question) == expected


def test_transcription_failures_schema_counts_add_up():
    pairs = [("a1", "The mill", "the mill"), ("a2", "The mill", "the mill"), ("a3", "the mill", "the mill"),
             ("a4", "the mill by the river", "the mill"), ("a5", "x", ""), ("a6", "Hi", "hi"),
             ("a7", "Yo", "yo")]
    report = transcription_failures([p[0] for p in pairs], [(p[1], p[2]) for p in pairs], Counter(), examples=2)
    assert report["task"] == "transcription" and report["total"] == 7 and report["wrong"] == 6
    assert list(report["types"]) == ["case", "empty", "truncation"]  # by count, then priority
    case = report["types"]["case"]
    assert case["count"] == 4 and case["share"] == pytest.approx(4 / 6)
    assert case["examples"] == [{"id": "a1", "reference": "The mill", "prediction": "the mill"},
                                {"id": "a2", "reference": "The mill", "prediction": "the mill"}]
    assert sum(t["count"] for t in report["types"].values()) == report["wrong"]


def test_answer_failures_use_the_question_field_and_closest_reference():
    rows = [{"id": "q1", "prediction": "invoice date", "references": ["12 May"],
             "question": "What is the invoice date?"},
            {"id": "q2", "prediction": "Paris", "references": ["paris"]},
            {"id": "q3", "prediction": "1,000", "references": ["500", "1000"], "prompt": "How many?"}]
    report = answer_failures("vqa", rows, [0.0, 1.0, 0.0])
    assert report["wrong"] == 2 and report["total"] == 3
    assert report["types"]["copied_from_question"]["examples"][0]["id"] == "q1"
    assert report["types"]["numeric_format"]["examples"] == [{"id": "q3", "reference": "1000", "prediction": "1,000"}]


def test_failures_are_in_each_systems_analysis():
    rows = [{"id": "1", "prediction": "the mill", "references": ["The mill"]},
            {"id": "2", "prediction": "the mill", "references": ["the mill"]}]
    cfg = EvalConfig(bootstrap_resamples=0)
    single = dataset_result("d", "-", "transcription", ("cer", "wer"), cfg, score_rows(rows, ("cer", "wer"), cfg))
    assert single["analysis"]["failures"]["types"]["case"]["count"] == 1
    answers = [{"id": "1", "prediction": "", "references": ["x"]}, {"id": "2", "prediction": "x", "references": ["x"]}]
    paired = dataset_result("d", "-", "vqa", ("anls",), cfg, score_rows(answers, ("anls",), cfg),
                            base=score_rows(answers, ("anls",), cfg))
    for system in ("base", "tuned"):
        failures = paired["analysis"][system]["failures"]
        assert failures == {"task": "vqa", "wrong": 1, "total": 2, "types": {"empty": {
            "count": 1, "share": 1.0, "examples": [{"id": "1", "reference": "x", "prediction": ""}]}}}
