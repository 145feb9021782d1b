"""ANLS, relaxed accuracy, VQAv2 accuracy, exact match, contains, BLEU-4, CIDEr-D: hand-computed values."""

import math

import pytest

from docvlm.evaluate.caption import bleu4, cider_d, cider_d_scores
from docvlm.evaluate.vqa import anls, contains, exact_match, normalize_vqa_answer, relaxed_accuracy, vqa_accuracy


def test_anls_normalizes_case_and_whitespace():
    assert anls("hello  world ", ["Hello World"]) == 1.0


def test_anls_denominator_conventions_differ():
    # Normalized strings "ab" vs "ax": distance 1.
    # lmms-eval (raw): length max(len("  ab  "), len("ax")) = 6 -> 1 - 1/6 = 5/6.
    assert anls("ax", ["  ab  "], denominator="raw") == pytest.approx(5 / 6)
    # VLMEvalKit (normalized): length max(2, 2) = 2 -> 1 - 1/2 = 0.5, which is kept (not below 0.5).
    assert anls("ax", ["  ab  "], denominator="normalized") == pytest.approx(0.5)


def test_anls_threshold_edges():
    assert anls("abxy", ["abcd"]) == pytest.approx(0.5)  # 2 edits / 4: similarity exactly 0.5, kept
    assert anls("axyz", ["abcd"]) == 0.0  # 3 / 4: similarity 0.25 < 0.5 -> 0
    assert anls("", [""]) == 1.0  # both empty: distance 0, no division


def test_anls_takes_the_closest_reference():
    # "10 kg" vs "10kg": 1 edit, length max(5, 4) = 5 -> 0.8; "ten kilograms" is far -> best is 0.8.
    assert anls("10kg", ["ten kilograms", "10 kg"]) == pytest.approx(0.8)


def test_relaxed_accuracy_tolerance_edges():
    assert relaxed_accuracy("105", ["100"]) == 1.0  # |105-100|/100 = 0.05 exactly: accepted
    assert relaxed_accuracy("95", ["100"]) == 1.0
    assert relaxed_accuracy("105.1", ["100"]) == 0.0  # 0.051 > 0.05
    assert relaxed_accuracy("21", ["abc", "20"]) == 1.0  # 1/20 = 0.05 against the second reference
    assert relaxed_accuracy("0.12", ["12%"]) == 1.0  # trailing % divides by 100
    assert relaxed_accuracy("50", ["50%"]) == 0.0  # 50 vs 0.5
    assert relaxed_accuracy("Yes", ["yes"]) == 1.0  # non-numeric: case-insensitive exact match


def test_relaxed_accuracy_zero_target_falls_back_to_text():
    # pix2struct: a zero target has no relative error, so the strings are compared.
    assert relaxed_accuracy("0", ["0"]) == 1.0
    assert relaxed_accuracy("0.0", ["0"]) == 0.0
    assert relaxed_accuracy("0.01", ["0"]) == 0.0


def test_vqa_normalization_rules():
    assert normalize_vqa_answer("Two") == "2"  # number word
    assert normalize_vqa_answer("the dog") == "dog"  # article
    assert normalize_vqa_answer("dont") == "don't"  # contraction
    assert normalize_vqa_answer("yes.") == "yes"  # period not before a digit: removed
    assert normalize_vqa_answer("2.5") == "2.5"  # period before a digit: kept
    assert normalize_vqa_answer("1,000") == "1000"  # digit,digit: punctuation deleted, not spaced
    assert normalize_vqa_answer("yes/no") == "yes no"  # mark not touching a space: becomes a space
    assert normalize_vqa_answer("a cat, a dog") == "cat dog"  # ", " touches a space: deleted; articles go


def test_vqa_accuracy_leave_one_out_averaging():
    # 10 human answers, 3 say "2": for each of those 3, the other 9 hold 2 matches -> 2/3;
    # for the 7 others, 3 matches -> 1. (3 * 2/3 + 7 * 1) / 10 = 0.9.
    answers = ["2", "2", "2"] + ["3"] * 7
    assert vqa_accuracy("two", answers) == pytest.approx(0.9)
    # 2 matches: (2 * 1/3 + 8 * 2/3) / 10 = 0.6; 4 matches: every subset has >= 3 -> 1.0.
    assert vqa_accuracy("2", ["2", "2"] + ["3"] * 8) == pytest.approx(0.6)
    assert vqa_accuracy("2", ["2"] * 4 + ["3"] * 6) == pytest.approx(1.0)
    assert vqa_accuracy("The Dog.", ["dog"], "always") == 1.0  # one reference: normalized exact match
    assert vqa_accuracy("The Dog.", ["dog"]) == 0.0  # official: one distinct answer, nothing normalized


def test_exact_match_and_contains():
    assert exact_match(" Paris ", ["paris"]) == 1.0
    assert exact_match("Paris, France", ["paris"]) == 0.0
    assert contains("The answer is Paris.", ["paris"]) == 1.0
    assert contains("The answer is Paris.", ["london", "Rome"]) == 0.0


def test_bleu4_is_corpus_level_with_brevity_penalty():
    assert bleu4(["the cat sat on the mat"], [["the cat sat on the mat"]]) == pytest.approx(1.0)
    # Precisions all 1 (4/4, 3/3, 2/2, 1/1), c = 4, r = 6: BP = exp(1 - 6/4).
    assert bleu4(["the cat sat on"], [["the cat sat on the mat"]]) == pytest.approx(math.exp(1 - 6 / 4))
    # Corpus: identical 6-word line + "a b c d" vs "a b c e".
    # 1-grams (6+3)/(6+4), 2-grams (5+2)/(5+3), 3-grams (4+1)/(4+2), 4-grams (3+0)/(3+1); c = r = 10.
    expected = (9 / 10 * 7 / 8 * 5 / 6 * 3 / 4) ** 0.25
    assert bleu4(["the cat sat on the mat", "a b c d"],
                 [["the cat sat on the mat"], ["a b c e"]]) == pytest.approx(expected, rel=1e-6)
    # Closest reference length is used: c = 4 with references of 4 and 7 words -> no penalty.
    assert bleu4(["a b c d"], [["a b c d", "a b c d e f g"]]) == pytest.approx(1.0)


def test_cider_d_hand_computed():
    # Two images, every n-gram in one document: idf = ln 2 for all. Candidate == reference gives
    # cosine 1 for n = 1, 2 and 0 for n = 3, 4 (no n-grams): mean 0.5, times 10 = 5.
    assert cider_d(["a b", "c d"], [["a b"], ["c d"]]) == pytest.approx(5.0)
    # "a" is in both documents: idf 0. "a x" vs "a b": nothing weighted in common -> 0; image 2: 5.
    assert cider_d_scores(["a x", "a c"], [["a b"], ["a c"]]) == pytest.approx([0.0, 5.0])
    # Clipping and the length penalty: "a b b" vs "a b" (second image as before).
    # n=1: weights a:ln2, b:2ln2 vs a:ln2, b:ln2 -> (ln2*ln2 + min(2ln2, ln2)*ln2) / (sqrt5 ln2 * sqrt2 ln2)
    #      = 2 / sqrt(10); n=2: "a b" shared, "b b" not -> 1 / (sqrt2 * 1) = 1/sqrt2.
    # "length" = bigram count: 2 vs 1 -> penalty exp(-1 / (2 * 36)).
    expected = (2 / math.sqrt(10) + 1 / math.sqrt(2)) / 4 * math.exp(-1 / 72) * 10
    assert cider_d_scores(["a b b", "c d"], [["a b"], ["c d"]])[0] == pytest.approx(expected)
