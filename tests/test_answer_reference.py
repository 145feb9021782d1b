"""ANLS, ChartQA relaxed accuracy, exact match and contains against the reference implementations.

Each reference is reproduced below only as a test oracle, as its source reads (names shortened):

- ANLS, DocVQA/InfoVQA official RRC script (rrc.cvc.uab.es, ch=17), as vendored by QwenLM/Qwen-VL
  ``eval_mm/infographicsvqa_eval.py`` @ e6bbb9dd9e9fc44a4498d372e83b3b172dc1d808 and copied
  unchanged into EvolvingLMMs-Lab/lmms-eval ``lmms_eval/api/metrics.py: anls``
  @ 309242ce1a4ea1a89e37798a61d4e79201f734f5: distance between the normalized strings, divided by
  the longer *raw* string (``len(x.upper())``). docvlm: ``anls_denominator: raw`` (default).
- ANLS, open-compass/VLMEvalKit ``vlmeval/dataset/utils/vqa_eval.py: anls_compute,
  hit_calculate`` @ 0a04a1d23a57c404e93e34a76933095fdd46b3d9: divided by the longer *normalized*
  string. docvlm: ``anls_denominator: normalized``.
- Relaxed accuracy, google-research/pix2struct ``pix2struct/metrics.py: relaxed_correctness``
  @ 5b086ef5269a80d89fbdd37bdba263e492e83149 (identical in lmms-eval
  ``lmms_eval/tasks/chartqa/utils.py`` @ 2bb5e9852537729b4fb25fcaa2dce11eb1b2971d), best
  reference (pix2struct ``aggregate_metrics``). docvlm default (``relaxed_strip: false``).
- Relaxed accuracy as VLMEvalKit's ChartQA scores it (``vqa_eval.py: process_line`` with
  ``method='relaxed_accuracy'``, same commit): the prediction is stripped, the target is not,
  then pix2struct's function; ``hit_calculate`` takes the best reference. docvlm:
  ``relaxed_strip: prediction``.
- Exact match, VLMEvalKit ``process_line`` ``method='accuracy'``: stripped, lower-cased equality,
  best reference. Contains: VLMEvalKit ``vlmeval/dataset/image_vqa.py: OCRBench.evaluate``
  @ 5b395d4e10b1f213430260ed86f56591a072e994 (every category but handwritten math expressions).
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from docvlm.config import EvalConfig
from docvlm.evaluate import vqa
from docvlm.evaluate.scoring import score_rows

# --------------------------------------------------------------------------------------------
# Oracles


def levenshtein_distance(s1, s2):  # RRC script / lmms-eval / VLMEvalKit, verbatim
    if len(s1) > len(s2):
        s1, s2 = s2, s1
    distances = range(len(s1) + 1)
    for i2, c2 in enumerate(s2):
        distances_ = [i2 + 1]
        for i1, c1 in enumerate(s1):
            if c1 == c2:
                distances_.append(distances[i1])
            else:
                distances_.append(1 + min((distances[i1], distances[i1 + 1], distances_[-1])))
        distances = distances_
    return distances[-1]


def rrc_anls(prediction: str, answers: list[str], threshold: float = 0.5) -> float:
    values = []
    for answer in answers:
        gt_answer = " ".join(answer.strip().lower().split())
        det_answer = " ".join(prediction.strip().lower().split())
        dist = levenshtein_distance(gt_answer, det_answer)
        length = max(len(answer.upper()), len(prediction.upper()))
        values.append(0.0 if length == 0 else float(dist) / float(length))
    question_result = 1 - min(values)
    if question_result < threshold:
        question_result = 0
    return question_result


def vlmevalkit_anls(prediction: str, answers: list[str], threshold: float = 0.5) -> float:
    def anls_compute(groundtruth, prediction):
        gt_answer = " ".join(groundtruth.strip().lower().split())
        det_answer = " ".join(prediction.strip().lower().split())
        dist = levenshtein_distance(gt_answer, det_answer)
        length = max(len(gt_answer), len(det_answer))
        return 0.0 if length == 0 else float(dist) / float(length)

    match = [anls_compute(x, prediction) for x in answers]
    return 0.0 if 1 - np.min(match) < threshold else 1 - np.min(match)


def relaxed_correctness(target: str, prediction: str, max_relative_change: float = 0.05) -> bool:
    def _to_float(text: str):
        try:
            if text.endswith("%"):
                return float(text.rstrip("%")) / 100.0
            else:
                return float(text)
        except ValueError:
            return None

    prediction_float = _to_float(prediction)
    target_float = _to_float(target)
    if prediction_float is not None and target_float:
        relative_change = abs(prediction_float - target_float) / abs(target_float)
        return relative_change <= max_relative_change
    else:
        return prediction.lower() == target.lower()


def pix2struct_relaxed(prediction: str, targets: list[str]) -> float:
    return float(max(relaxed_correctness(t, prediction) for t in targets))


def vlmevalkit_relaxed(prediction: str, targets: list[str]) -> float:
    return float(np.max([relaxed_correctness(t, prediction.strip()) for t in targets]))


def vlmevalkit_accuracy(prediction: str, answers: list[str]) -> float:
    pred = prediction.strip()
    return float(np.max([1.0 if x.strip().lower() == pred.strip().lower() else 0.0 for x in answers]))


def ocrbench_contains(prediction: str, answers: list[str]) -> float:
    for answer in answers:
        answer = answer.lower().strip().replace("\n", " ")
        predict = prediction.lower().strip().replace("\n", " ")
        if answer in predict:
            return 1.0
    return 0.0


# --------------------------------------------------------------------------------------------
# Inputs: random strings over letters whose case mapping changes length (ß, İ), title-case
# digraphs, ligatures, combining marks, Unicode spaces, tabs and newlines; plus numbers.

ALPHABET = list("abAB xyz  \t\n15.0%-e") + ["ß", "İ", "ǅ", "ﬁ", "\u00a0", "\u2003", "\u0301", "\u3000"]
NUMBERS = ["12", "12%", "0.12", "0", "0.0", "-0", "-3", "1e2", "100", "105", "95", "105.1", "94.9", " 12",
           "12 ", "12%\n", " 12%", "nan", "inf", "1_000", "1,000", "abc", "Yes", "yes", "YES ", "", " ", "5.0%",
           "50%", "0.5", "+7", "7.35", "7", "%", "12%%", "0.05%", "٣"]


def text(rng: random.Random, longest: int = 8) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, longest)))


def cases(seed: int, count: int):
    rng = random.Random(seed)
    for _ in range(count):
        yield text(rng), [text(rng) for _ in range(rng.randint(1, 4))]


def test_anls_raw_equals_the_official_script_and_lmms_eval():
    worst = max(abs(vqa.anls(p, refs) - rrc_anls(p, refs)) for p, refs in cases(1, 5000))
    assert worst == 0.0


def test_anls_normalized_equals_vlmevalkit():
    worst = max(abs(vqa.anls(p, refs, denominator="normalized") - vlmevalkit_anls(p, refs))
                for p, refs in cases(2, 5000))
    assert worst == 0.0


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.75, 1.0])
def test_anls_threshold_matches_both_references(threshold):
    for p, refs in cases(3, 800):
        assert vqa.anls(p, refs, threshold) == rrc_anls(p, refs, threshold)
        assert vqa.anls(p, refs, threshold, "normalized") == vlmevalkit_anls(p, refs, threshold)


@pytest.mark.parametrize("prediction, answers", [
    ("", [""]), ("", ["a"]), (" ", [""]), ("  ", ["\t"]),  # empty and whitespace-only
    ("abxy", ["abcd"]), ("abxyz", ["abcd"]), ("ax", ["  ab  "]),  # similarity exactly / just under 0.5
    ("Straße", ["STRASSE"]), ("İstanbul", ["istanbul"]), ("ﬁle", ["file"]),  # case maps that change length
    ("Hello\n World", ["hello world"]), ("10 %", ["10%", "ten percent"]), ("x", ["y", "x ", "X"]),
])
def test_anls_edge_cases_match(prediction, answers):
    assert vqa.anls(prediction, answers) == rrc_anls(prediction, answers)
    assert vqa.anls(prediction, answers, denominator="normalized") == vlmevalkit_anls(prediction, answers)


def number_cases(seed: int, count: int):
    rng = random.Random(seed)
    for _ in range(count):
        prediction = rng.choice(NUMBERS + [text(rng, 3)])
        yield prediction, [rng.choice(NUMBERS) for _ in range(rng.randint(1, 3))]


def test_relaxed_accuracy_equals_pix2struct():
    for prediction, targets in number_cases(4, 5000):
        assert vqa.relaxed_accuracy(prediction, targets) == pix2struct_relaxed(prediction, targets), \
            (prediction, targets)


def test_relaxed_accuracy_strip_prediction_equals_vlmevalkit():
    for prediction, targets in number_cases(5, 5000):
        assert vqa.relaxed_accuracy(prediction, targets, strip="prediction") == \
            vlmevalkit_relaxed(prediction, targets), (prediction, targets)
    # The three conventions differ only where whitespace surrounds an answer:
    assert vqa.relaxed_accuracy("Yes\n", ["Yes"]) == 0.0  # pix2struct, lmms-eval
    assert vqa.relaxed_accuracy("Yes\n", ["Yes"], strip="prediction") == 1.0  # VLMEvalKit
    assert vqa.relaxed_accuracy("12%", ["12%\n"], strip="prediction") == 0.0  # target kept as is
    assert vqa.relaxed_accuracy("12%", ["12%\n"], strip=True) == 1.0  # docvlm's both-sides option


def test_relaxed_tolerance_boundary_matches_pix2struct():
    # Exactly 5% off is accepted by both; float rounding decides the same way in both.
    for target in ("100", "20", "0.3", "12%", "-40", "7.35"):
        value = float(target.rstrip("%")) / (100 if target.endswith("%") else 1)
        for factor in (0.95, 1.05, 0.949, 1.051, 1.0):
            prediction = repr(value * factor)
            assert vqa.relaxed_accuracy(prediction, [target]) == pix2struct_relaxed(prediction, [target])


def test_relaxed_strip_prediction_is_a_config_option():
    rows = [{"id": "1", "prediction": "Yes\n", "references": ["Yes"]},
            {"id": "2", "prediction": "12%", "references": ["12%\n"]}]
    for strip, expected in ((False, 0.0), ("prediction", 0.5), (True, 1.0)):
        score = score_rows(rows, ("relaxed_accuracy",), EvalConfig(relaxed_strip=strip))
        assert score.value("relaxed_accuracy") == expected


def test_exact_match_equals_vlmevalkit_accuracy():
    for prediction, answers in cases(6, 5000):
        assert vqa.exact_match(prediction, answers) == vlmevalkit_accuracy(prediction, answers)


def test_contains_equals_ocrbench():
    rng = random.Random(7)
    for _ in range(5000):
        # Short answers so that containment happens often.
        prediction, answers = text(rng, 10), [text(rng, 2) for _ in range(rng.randint(1, 3))]
        assert vqa.contains(prediction, answers) == ocrbench_contains(prediction, answers), (prediction, answers)
