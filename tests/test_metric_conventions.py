"""Metric conventions against their references (issue 9, items 2, 3, 5): VQAv2's official
vqaEval.py, pix2struct's relaxed_correctness, several references for CER/WER."""

from __future__ import annotations

import random

import pytest

from docvlm.config import EvalConfig
from docvlm.evaluate.scoring import evaluate_predictions, score_rows
from docvlm.evaluate.vqa import normalize_vqa_answer, relaxed_accuracy, vqa_accuracy


def official_vqa(prediction: str, human_answers: list[str]) -> float:
    """The per-question accuracy of GT-Vision-Lab/VQA vqaEval.py (``VQAEval.evaluate``), written
    out on its data structures: answers are dicts with an id, cleaned in place, normalized (both
    the answers and the prediction) only when the cleaned answers hold more than one distinct
    string, then for each answer dict the *other* dicts whose answer equals the prediction are
    counted. Normalization itself is docvlm's (its tables are tested separately)."""
    gts = [{"answer": a, "answer_id": i + 1} for i, a in enumerate(human_answers)]
    for ans in gts:
        ans["answer"] = ans["answer"].replace("\n", " ").replace("\t", " ").strip()
    res = prediction.replace("\n", " ").replace("\t", " ").strip()
    if len({ans["answer"] for ans in gts}) > 1:
        for ans in gts:
            ans["answer"] = normalize_vqa_answer(ans["answer"])
        res = normalize_vqa_answer(res)
    accuracies = []
    for gt in gts:
        others = [item for item in gts if item != gt]
        accuracies.append(min(1, len([item for item in others if item["answer"] == res]) / 3))
    return sum(accuracies) / len(accuracies)


def test_vqa_official_does_not_normalize_unanimous_answers():
    # The example: ten identical "no" and the prediction "no!" -> 0 officially.
    assert vqa_accuracy("no!", ["no"] * 10) == 0.0
    assert official_vqa("no!", ["no"] * 10) == 0.0
    assert vqa_accuracy("no!", ["no"] * 10, normalization="always") == 1.0
    # Cleaning (newline/tab to space, strip) always applies, to both sides.
    assert vqa_accuracy(" no\n", ["no"] * 10) == 1.0
    assert vqa_accuracy("No", ["no"] * 10) == 0.0  # not even lower-cased
    assert vqa_accuracy("No", ["no"] * 9 + ["no "]) == 0.0  # "no " cleans to "no": still unanimous
    # Once the answers disagree, the prediction is normalized too.
    assert vqa_accuracy("No!", ["no"] * 9 + ["yes"]) == pytest.approx(official_vqa("No!", ["no"] * 9 + ["yes"]))
    assert vqa_accuracy("No!", ["no"] * 9 + ["yes"]) == 1.0
    assert vqa_accuracy("two", ["2"] * 3 + ["3"] * 7) == pytest.approx(0.9)


POOL = ["no", "No", "no!", "yes", "Yes.", "2", "two", "Two", "1,000", "1000", "the dog", "a dog", "dog",
        "dogs", "dont", "don't", "red and white", "red/white", "red white", " red ", "3.5", "3.5.", "none",
        "0", "zero", "left\n", "left", "an apple", "apple", "New York", "new york", "cant", "can't", "10", "ten"]


def test_vqa_matches_official_script_on_random_cases():
    rng = random.Random(7)
    for _ in range(3000):
        distinct = rng.sample(POOL, rng.choice([1, 1, 2, 3, 5]))
        answers = [rng.choice(distinct) for _ in range(10)]
        prediction = rng.choice(POOL + distinct)
        assert vqa_accuracy(prediction, answers) == pytest.approx(official_vqa(prediction, answers)), \
            (prediction, answers)


def test_relaxed_accuracy_strips_nothing_like_pix2struct():
    assert relaxed_accuracy("Yes\n", ["Yes"]) == 0.0
    assert relaxed_accuracy("12%\n", ["12%"]) == 0.0  # "12%\n" does not end with "%": compared as text
    assert relaxed_accuracy("12\n", ["12"]) == 1.0  # Python's float() itself ignores the newline
    assert relaxed_accuracy(" yes", ["Yes"]) == 0.0
    assert relaxed_accuracy("Yes\n", ["Yes"], strip=True) == 1.0
    assert relaxed_accuracy("12%\n", ["0.12"], strip=True) == 1.0


def test_relaxed_strip_option_reaches_the_scores():
    rows = [{"id": "1", "prediction": "Yes\n", "references": ["Yes"]}]
    assert score_rows(rows, ("relaxed_accuracy",), EvalConfig()).value("relaxed_accuracy") == 0.0
    assert score_rows(rows, ("relaxed_accuracy",), EvalConfig(relaxed_strip=True)).value("relaxed_accuracy") == 1.0
    rows = [{"id": "1", "prediction": "no!", "references": ["no"] * 10}]
    assert score_rows(rows, ("vqa_accuracy",), EvalConfig(vqa_normalization="always")).value("vqa_accuracy") == 1.0


def test_multi_reference_first_or_best(tmp_path):
    rows = [{"id": "1", "prediction": "colour", "references": ["color", "colour"]},
            {"id": "2", "prediction": "grey cat", "references": ["gray cat", "grey cat sat"]}]
    first = score_rows(rows, ("cer", "wer"), EvalConfig(multi_reference="first"))
    best = score_rows(rows, ("cer", "wer"), EvalConfig(multi_reference="best"))
    # first: "color" (1 edit / 5) and "gray cat" (1 / 8) -> 2 / 13.
    assert first.value("cer") == pytest.approx(2 / 13)
    # best per metric: CER "colour" (0 / 6) and "gray cat" (1 edit) vs "grey cat sat" (4) -> 1 / 14;
    # WER "colour" (0 / 1), "gray cat" (1 / 2) vs "grey cat sat" (1 / 3): tie -> the first -> 1 / 3.
    assert best.value("cer") == pytest.approx(1 / 14)
    assert best.value("wer") == pytest.approx(1 / 3)
    # A row that names its 'reference' is scored against it whatever the rule.
    named = [{"id": "1", "prediction": "colour", "reference": "color", "references": ["color", "colour"]}]
    assert score_rows(named, ("cer",), EvalConfig(multi_reference="best")).value("cer") == pytest.approx(1 / 5)


def test_metrics_file_states_the_multi_reference_rule(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "1", "prediction": "a", "references": ["a", "b"]}\n', encoding="utf-8")
    report = evaluate_predictions(str(path), ("cer",), EvalConfig(multi_reference="best"))
    assert report["options"]["cer_wer"]["multi_reference"] == "best"
    assert "fewest edits" in report["options"]["cer_wer"]["multi_reference_rule"]


def test_cer_wer_agree_with_torchmetrics_on_random_corpus():
    torchmetrics_text = pytest.importorskip("torchmetrics.functional.text")
    from docvlm.evaluate.metrics import cer, wer

    rng = random.Random(3)
    alphabet = "ab cdéñ"
    refs = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 25))).strip() or "a" for _ in range(500)]
    hyps = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 25))).strip() for _ in range(500)]
    assert cer(refs, hyps).rate == pytest.approx(float(torchmetrics_text.char_error_rate(hyps, refs)))
    refs_w = [r for r in refs if r.split()]
    hyps_w = [h for h, r in zip(hyps, refs) if r.split()]
    assert wer(refs_w, hyps_w).rate == pytest.approx(float(torchmetrics_text.word_error_rate(hyps_w, refs_w)))
