"""METEOR (NLTK), retrieval Recall@K and drift KL / cross-entropy: hand-computed values (issue 12)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from nltk.translate.meteor_score import meteor_score as nltk_meteor

from docvlm.config import EvalConfig
from docvlm.evaluate import retention_metrics as rm
from docvlm.evaluate.caption import tokenize
from docvlm.evaluate.scoring import ALL_METRICS, METRICS, TASK_METRICS, metric_options, score_rows


def test_meteor_hand_computed():
    # the / sat exact, cats -> cat by the Porter stem: 3 matches of 3 and 3 words, one chunk.
    # P = R = 1, F-mean = 1, fragmentation 1/3, penalty 0.5 * (1/3)^3 -> 1 - 1/54.
    assert rm.meteor("The cats sat.", ["the cat sat"]) == pytest.approx(1 - 1 / 54)
    # hyp "a dog runs fast", ref "dog runs": 2 matches, P = 2/4, R = 2/2,
    # F = P R / (0.9 P + 0.1 R) = 0.5 / 0.55; one chunk of 2 matches: penalty 0.5 * (1/2)^3 = 1/16.
    assert rm.meteor("a dog runs fast", ["dog runs"]) == pytest.approx((0.5 / 0.55) * (1 - 1 / 16))
    assert rm.meteor("nothing alike", ["a cat"]) == 0.0
    assert rm.meteor("a cat", ["zzz", "a cat"]) == pytest.approx(1 - 0.5 * (1 / 2) ** 3)  # best reference


PAIRS = [
    ("a man is riding a horse on the beach", ["a person rides a horse along the beach", "man on a horse"]),
    ("two dogs playing in the snow", ["two dogs play in snow", "dogs running through the snow"]),
    ("a plate of food with broccoli", ["a plate with meat and broccoli"]),
    ("an empty street at night", ["a city street at night with lights"]),
]


@pytest.mark.parametrize("prediction, references", PAIRS)
def test_meteor_equals_nltk_on_fixed_pairs(prediction, references):
    expected = nltk_meteor([tokenize(r) for r in references], tokenize(prediction), wordnet=rm.wordnet_reader())
    assert rm.meteor(prediction, references) == pytest.approx(expected)


def test_meteor_is_registered_for_captions_and_states_wordnet():
    assert "meteor" in TASK_METRICS["caption"] and "meteor" in ALL_METRICS
    rows = [{"id": str(i), "prediction": p, "references": r} for i, (p, r) in enumerate(PAIRS)]
    score = score_rows(rows, ("meteor",), EvalConfig(bootstrap_resamples=0))
    assert score.value("meteor") == pytest.approx(np.mean([rm.meteor(p, r) for p, r in PAIRS]))
    options = metric_options(EvalConfig(), ("meteor",))["meteor"]
    assert options["wordnet"] == rm.has_wordnet() and "not the Java METEOR" in options["reference"]


def test_recall_at_k_hand_computed():
    # 3 images, 5 captions: image 0 has captions 0, 1; image 1 has 2, 3; image 2 has 4.
    text_image = [0, 0, 1, 1, 2]
    scores = np.array([
        [0.1, 0.9, 0.8, 0.2, 0.0],   # image 0: its caption 1 is the best text -> rank 0
        [0.9, 0.1, 0.2, 0.5, 0.3],   # image 1: best own 0.5; caption 0 (0.9) above -> rank 1
        [0.7, 0.6, 0.9, 0.1, 0.5],   # image 2: own 0.5; 0.7, 0.6, 0.9 above -> rank 3
    ])
    assert list(rm.image_to_text_ranks(scores, text_image)) == [0, 1, 3]
    # text -> image: caption 0 (own image 0: 0.1; 0.9, 0.7 above -> 2), caption 1 (0.9: 0),
    # caption 2 (own 0.2; 0.8, 0.9 above -> 2), caption 3 (0.5: 0), caption 4 (0.5: 0).
    assert list(rm.text_to_image_ranks(scores, text_image)) == [2, 0, 2, 0, 0]
    result = rm.retrieval_recall(scores, text_image, ks=(1, 2, 5))
    assert result["image_to_text"] == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3), 5: 1.0}
    assert result["text_to_image"] == {1: pytest.approx(3 / 5), 2: pytest.approx(3 / 5), 5: 1.0}


def test_recall_ties_count_against_the_model():
    scores = np.zeros((3, 3))
    assert rm.retrieval_recall(scores, [0, 1, 2], ks=(1, 3)) == {
        "image_to_text": {1: 0.0, 3: 1.0}, "text_to_image": {1: 0.0, 3: 1.0}}
    with pytest.raises(ValueError, match="no caption"):
        rm.image_to_text_ranks(np.zeros((2, 2)), [0, 0])


def test_kl_on_known_distributions():
    with np.errstate(divide="ignore"):
        p = np.log(np.array([[0.5, 0.5], [1.0, 0.0]]))
    q = np.log(np.array([[0.25, 0.75], [0.5, 0.5]]))
    kl = rm.token_kl(p, q)
    # 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75) = 0.5 ln 2 + 0.5 ln(2/3); second: 1 * ln(1/0.5) = ln 2.
    assert kl[0] == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3))
    assert kl[1] == pytest.approx(math.log(2))  # p's zero entry adds nothing
    assert rm.token_kl(q, q).tolist() == [0.0, 0.0]
    # Micro mean over all tokens of all samples: sample 1 has 2 tokens, sample 2 one token.
    result = rm.mean_token_kl([p, p[:1]], [q, q[:1]])
    assert result["value"] == pytest.approx((kl[0] + kl[1] + kl[0]) / 3) and result["tokens"] == 3
    assert result["per_sample"] == [pytest.approx((kl[0] + kl[1]) / 2), pytest.approx(kl[0])]


def test_cross_entropy_of_given_tokens():
    q = np.log(np.array([[0.25, 0.75], [0.5, 0.5]]))
    result = rm.mean_cross_entropy([q], [[1, 0]])
    assert result["value"] == pytest.approx((-math.log(0.75) - math.log(0.5)) / 2)
    with pytest.raises(ValueError):
        rm.mean_cross_entropy([q], [[1]])


def test_external_metrics_are_registered_but_not_for_prediction_files():
    for name in ("i2t_recall_at_1", "t2i_recall_at_10", "kl_base_tuned", "tuned_cross_entropy"):
        assert METRICS[name].kind == "external" and name not in ALL_METRICS
    assert METRICS["kl_base_tuned"].lower_is_better and not METRICS["i2t_recall_at_5"].lower_is_better
