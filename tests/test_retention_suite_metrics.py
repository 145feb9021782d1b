"""Retention metrics against hand-computed values (pure functions, no model)."""

import math

import numpy as np
import pytest

from docvlm.retention import metrics as rm

SCORES = np.array([[0.9, 0.1, 0.5, 0.2],
                   [0.3, 0.8, 0.4, 0.1],
                   [0.2, 0.3, 0.6, 0.7]])
OWNER = [0, 0, 1, 2]


def test_recall_at_k_by_hand():
    # i2t: image 0 has its caption 0 on top; image 1's caption (0.4) is beaten by caption 1 (0.8);
    # image 2's caption 3 (0.7) is on top. t2i: captions 0 and 3 find their image first; caption 1
    # (0.1 vs 0.8, 0.3) and caption 2 (0.4 vs 0.5, 0.6) rank theirs third.
    recall = rm.recall_at_k(SCORES, OWNER, ks=(1, 2, 3))
    assert recall["i2t_r@1"] == pytest.approx(2 / 3)
    assert recall["i2t_r@2"] == 1.0
    assert recall["t2i_r@1"] == 0.5
    assert recall["t2i_r@2"] == 0.5
    assert recall["t2i_r@3"] == 1.0


def test_recall_ties_count_against_the_query():
    recall = rm.recall_at_k(np.zeros((3, 3)), [0, 1, 2], ks=(1, 3))
    assert recall["i2t_r@1"] == 0.0 and recall["t2i_r@1"] == 0.0
    assert recall["i2t_r@3"] == 1.0


def test_recall_rejects_an_image_without_caption():
    with pytest.raises(ValueError):
        rm.recall_at_k(np.zeros((2, 2)), [0, 0])


def test_meteor_by_hand():
    # Identical 3-word caption: P = R = 1, one chunk of 3 matches: penalty 0.5 * (1/3)^3.
    assert rm.meteor("a cat sat", ["a cat sat"]) == pytest.approx(1 - 0.5 / 27)
    # 4 exact matches (the, cat, on, mat) out of 5 hypothesis / 6 reference words, in 3 chunks.
    p, r = 4 / 5, 4 / 6
    fmean = p * r / (0.9 * p + 0.1 * r)
    expected = fmean * (1 - 0.5 * (3 / 4) ** 3)
    assert rm.meteor("the cat sits on mat", ["the cat sat on a mat"]) == pytest.approx(expected, abs=1e-6)
    # NLTK aligns a repeated word with its *last* occurrence (Java METEOR minimises chunks): here
    # "the" pairs with the second "the", so every match is its own chunk (penalty 0.5).
    assert rm.meteor("the cat sits on mat", ["the cat sat on the mat"]) == pytest.approx(fmean * 0.5, abs=1e-6)
    # Best over references; the Porter stem stage matches "dogs" with "dog".
    assert rm.meteor("two dogs", ["a cat", "two dog"]) == pytest.approx(rm.meteor("two dog", ["two dog"]))
    assert rm.meteor("", ["a cat"]) == 0.0


def test_meteor_agrees_with_nltk():
    from nltk.translate.meteor_score import meteor_score

    rm.meteor_synonyms()
    pairs = [("a man rides a horse", ["a man is riding a horse", "someone on a horse"]),
             ("red circles", ["two red circles", "2 red circles"])]
    for hypothesis, references in pairs:
        expected = meteor_score([r.split() for r in references], hypothesis.split(), wordnet=rm._WORDNET)
        assert rm.meteor(hypothesis, references) == pytest.approx(expected)


def test_kl_by_hand():
    kl = rm.kl_divergence(np.log([[0.5, 0.5], [1.0, 1e-300]]), np.log([[0.25, 0.75], [0.5, 0.5]]))
    assert kl[0] == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3))
    assert kl[1] == pytest.approx(math.log(2))
    with np.errstate(divide="ignore"):
        zero = rm.kl_divergence(np.log([[1.0, 0.0]]), np.log([[0.5, 0.5]]))
    assert zero[0] == pytest.approx(math.log(2))
    assert rm.kl_divergence(np.log([[0.2, 0.8]]), np.log([[0.2, 0.8]]))[0] == pytest.approx(0.0)


def test_retention_ratio():
    assert rm.retention(0.8, 0.6) == pytest.approx(0.75)
    assert rm.retention(0.0, 0.5) is None


# --------------------------------------------------------------------------------------------
# Multiple choice reading and the retention config's rules


def _choice(target: str, options=("circle", "square", "triangle")):
    from docvlm.data.schema import PixelBudget, Record, Sample

    record = Record(id="q1", target=target, image_ref="x.png", prompt="What shape is it?", dataset="mc",
                    task="exact", budget=PixelBudget(), where="mc.jsonl:1 (sample 'q1')", options=tuple(options))
    return Sample(record=record, image=None)


def test_multiple_choice_answer_by_text_letter_or_index():
    from docvlm.errors import DataError
    from docvlm.retention.suites import _answer_index, _letter_of, choice_prompt

    assert _answer_index(_choice("Square"), "suite") == 1
    assert _answer_index(_choice("C"), "suite") == 2
    assert _answer_index(_choice("0"), "suite") == 0
    with pytest.raises(DataError, match="mc.jsonl:1 .*'hexagon' is none of the options"):
        _answer_index(_choice("hexagon"), "suite")
    assert choice_prompt(_choice("A")).splitlines()[1:3] == ["A. circle", "B. square"]
    assert [_letter_of(a, 3) for a in ("B", "(c) triangle", "b.", "Both", "D", "")] == [1, 2, 1, None, None, None]


@pytest.mark.parametrize("override, message", [
    (["--retention.floor", "1.5"], "retention.floor"),
    (["--retention.suites", "[{kind: multiple_choice, dataset: {name: mc, test_split: test}}]"], "options_column"),
    (["--retention.suites", "[{kind: vqa, dataset: {name: a}}, {kind: caption, dataset: {name: a}}]"], "names two"),
    (["--retention.suites", "[{kind: vqa, dataset: {name: a, text_column: ''}}]"], "needs answers"),
    (["--retention.suites", "[{kind: retrieval, max_candidates: 1, dataset: {name: a}}]"], "max_candidates"),
    (["--train.kl_to_base", "-1"], "kl_to_base"),
])
def test_retention_config_rules(override, message):
    from docvlm.config import load_config
    from docvlm.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_config(None, override)


def test_probe_suites_need_no_answers():
    from docvlm.config import load_config

    cfg = load_config(None, ["--retention.suites", "[{kind: probes, dataset: {name: p, text_column: ''}}]"])
    assert cfg.retention.suites[0].kind == "probes"


def test_retention_metrics_import_no_torch():
    import subprocess
    import sys

    code = "import sys, docvlm.retention.metrics; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
