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


# --------------------------------------------------------------------------------------------
# VQAv2 accuracy as lmms-eval and VLMEvalKit compute it (the official vqaEval.py is checked in
# test_metric_conventions.py). Their punctuation and digit/article steps, as their sources read:
# - VLMEvalKit ``vqa_eval.py: process_answer`` (newlines/tabs to spaces, strip,
#   ``vlmeval.smp.process_punctuation``, ``_process_digit_article``) on every answer and the
#   prediction, then leave-one-out (``process_line`` with ``method='vqa_score'``); same commit as above.
# - lmms-eval ``lmms_eval/tasks/vqav2/utils.py: vqav2_process_results``
#   @ 039307892132f4c28522616af355009da6cacb66 with ``lmms_eval/tasks/_task_utils/vqa_eval_metric.py:
#   EvalAIAnswerProcessor`` @ 61e5060b4e8611b360b037779652cd735801581c: the prediction always goes
#   through the processor (lower-case, commas and "?" removed, "'s" split off, then the official
#   steps); the human answers are cleaned, and normalized (the prediction once more) only when they
#   disagree. Its comma rule is ``(?<=\d)(\,)+(?=\d)`` (the official one: ``(\d)(\,)(\d)``).
# The contraction table is docvlm's (the same 121 entries in all three; spot-checked in
# test_answer_metrics.py).

import re  # noqa: E402

from docvlm.evaluate.vqa import _CONTRACTIONS  # noqa: E402

PUNCT = [";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
MANUAL_MAP = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
              "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}


def process_punctuation(in_text, comma_strip=re.compile(r"(\d)(\,)(\d)")):
    out_text = in_text
    for p in PUNCT:
        if (p + " " in in_text or " " + p in in_text) or (re.search(comma_strip, in_text) is not None):
            out_text = out_text.replace(p, "")
        else:
            out_text = out_text.replace(p, " ")
    out_text = PERIOD_STRIP.sub("", out_text, re.UNICODE)
    return out_text


def process_digit_article(in_text):
    out_text = []
    for word in in_text.lower().split():
        word = MANUAL_MAP.get(word, word)
        if word not in ["a", "an", "the"]:
            out_text.append(word)
    for word_id, word in enumerate(out_text):
        if word in _CONTRACTIONS:
            out_text[word_id] = _CONTRACTIONS[word]
    return " ".join(out_text)


def vlmevalkit_vqa_score(prediction: str, answers: list[str]) -> float:
    def process_answer(answer):
        answer = answer.replace("\n", " ").replace("\t", " ").strip()
        return process_digit_article(process_punctuation(answer))

    gt = [process_answer(x) for x in answers]
    pred = process_answer(prediction)
    match = []
    for current_idx, _ in enumerate(gt):
        other = [item for idx, item in enumerate(gt) if idx != current_idx]
        match.append(min(1, float(len([item for item in other if item == pred])) / 3))
    return float(np.mean(match))


LMMS_COMMA = re.compile(r"(?<=\d)(\,)+(?=\d)")


def lmms_eval_vqav2(prediction: str, answers: list[str]) -> float:
    def processor(item):  # EvalAIAnswerProcessor.__call__
        item = item.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
        item = item.replace("\n", " ").replace("\t", " ").strip()
        return process_digit_article(process_punctuation(item, LMMS_COMMA))

    res_ans = processor(prediction)
    gts = [{"answer": a, "answer_id": i} for i, a in enumerate(answers)]
    for ans in gts:
        ans["answer"] = ans["answer"].replace("\n", " ").replace("\t", " ").strip()
    if len({ans["answer"] for ans in gts}) > 1:
        for ans in gts:
            ans["answer"] = process_digit_article(process_punctuation(ans["answer"], LMMS_COMMA))
        res_ans = process_digit_article(process_punctuation(res_ans, LMMS_COMMA))
    accuracies = []
    for gt in gts:
        others = [item for item in gts if item != gt]
        accuracies.append(min(1, float(len([item for item in others if item["answer"] == res_ans])) / 3))
    return sum(accuracies) / len(accuracies)


VQA_POOL = ["no", "No", "no!", "yes", "Yes.", "2", "two", "Two", "1,000", "1000", "1,,000", "the dog", "a dog",
            "dog", "dogs", "dont", "don't", "red and white", "red/white", " red ", "3.5", "3.5.", "none", "0",
            "zero", "left\n", "left", "an apple", "New York", "new york", "cant", "10", "ten", "man's hat",
            "man 's hat", "what?", "yes, sir", "Yes, Sir", "a, b", "one-two", "\tblue"]


def vqa_cases(seed: int, count: int):
    rng = random.Random(seed)
    for _ in range(count):
        distinct = rng.sample(VQA_POOL, rng.choice([1, 1, 2, 3, 5]))
        yield rng.choice(VQA_POOL + distinct), [rng.choice(distinct) for _ in range(10)]


def test_vqa_accuracy_always_equals_vlmevalkit():
    for prediction, answers in vqa_cases(8, 3000):
        assert vqa.vqa_accuracy(prediction, answers, "always") == pytest.approx(
            vlmevalkit_vqa_score(prediction, answers)), (prediction, answers)


def test_vqa_accuracy_lmms_eval_equals_lmms_eval():
    differs_from_official = 0
    for prediction, answers in vqa_cases(9, 3000):
        ours = vqa.vqa_accuracy(prediction, answers, "lmms-eval")
        assert ours == pytest.approx(lmms_eval_vqav2(prediction, answers)), (prediction, answers)
        differs_from_official += ours != vqa.vqa_accuracy(prediction, answers)
    assert differs_from_official > 30
    # Ten unanimous "no": lmms-eval normalizes the prediction anyway, vqaEval.py does not.
    assert vqa.vqa_accuracy("No!", ["no"] * 10, "lmms-eval") == 1.0
    assert vqa.vqa_accuracy("No!", ["no"] * 10) == 0.0
    # Ten unanimous "two": lmms-eval turns the prediction "two" into "2" and the answers stay "two".
    assert vqa.vqa_accuracy("two", ["two"] * 10, "lmms-eval") == 0.0
    assert vqa.vqa_accuracy("two", ["two"] * 10, "always") == 1.0


def test_vqa_lmms_eval_is_a_config_option():
    rows = [{"id": "1", "prediction": "No!", "references": ["no"] * 10}]
    score = score_rows(rows, ("vqa_accuracy",), EvalConfig(vqa_normalization="lmms-eval"))
    assert score.value("vqa_accuracy") == 1.0


def official_vqa(prediction: str, answers: list[str]) -> float:
    """GT-Vision-Lab vqaEval.py ``evaluate`` on one question (see test_metric_conventions.py)."""
    gts = [{"answer": a.replace("\n", " ").replace("\t", " ").strip(), "answer_id": i} for i, a in enumerate(answers)]
    res = prediction.replace("\n", " ").replace("\t", " ").strip()
    if len({ans["answer"] for ans in gts}) > 1:
        for ans in gts:
            ans["answer"] = process_digit_article(process_punctuation(ans["answer"]))
        res = process_digit_article(process_punctuation(res))
    accuracies = []
    for gt in gts:
        others = [item for item in gts if item != gt]
        accuracies.append(min(1, float(len([item for item in others if item["answer"] == res])) / 3))
    return sum(accuracies) / len(accuracies)


def test_vqa_single_reference_leave_one_out_equals_the_references():
    rng = random.Random(10)
    for _ in range(2000):
        distinct = rng.sample(VQA_POOL, rng.choice([1, 2, 3]))
        answers = [rng.choice(distinct) for _ in range(rng.choice([1, 1, 2, 3, 10]))]
        prediction = rng.choice(VQA_POOL + distinct)
        assert vqa.vqa_accuracy(prediction, answers, single_reference="leave_one_out") == pytest.approx(
            official_vqa(prediction, answers))
        assert vqa.vqa_accuracy(prediction, answers, "always", "leave_one_out") == pytest.approx(
            vlmevalkit_vqa_score(prediction, answers))
        assert vqa.vqa_accuracy(prediction, answers, "lmms-eval", "leave_one_out") == pytest.approx(
            lmms_eval_vqav2(prediction, answers))
    # docvlm's default scores a lone reference as exact match; the scripts give it 0.
    assert vqa.vqa_accuracy("dog", ["dog"]) == 1.0
    assert vqa.vqa_accuracy("dog", ["dog"], single_reference="leave_one_out") == 0.0
    rows = [{"id": "1", "prediction": "dog", "references": ["dog"]}]
    cfg = EvalConfig(vqa_single_reference="leave_one_out")
    assert score_rows(rows, ("vqa_accuracy",), cfg).value("vqa_accuracy") == 0.0
