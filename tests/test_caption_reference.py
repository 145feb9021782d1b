"""BLEU-4 and CIDEr-D against coco-caption's own scorers (pycocoevalcap ``Bleu``, ``Cider``).

The reference numbers come from pycocoevalcap 1.2 itself: stored once in
``fixtures/caption/coco_caption_reference.json`` by ``fixtures/caption/make_coco_reference.py``
(the wheel is ~100 MB of Java jars, too heavy for the ``test`` extra), and recomputed live on
fresh random corpora when pycocoevalcap is installed. Inputs are lower-case words without
punctuation, so both sides see the same tokens and the scoring alone is compared.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
from pathlib import Path

import pytest

from docvlm.evaluate import caption
from docvlm.evaluate.ptb import ptb_tokenize

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "caption" / "coco_caption_reference.json")
                     .read_text(encoding="utf-8"))
TOLERANCE = 1e-12


def docvlm_scores(predictions: list[str], references: list[list[str]]) -> dict:
    stats = [caption.bleu_stats(p, r) for p, r in zip(predictions, references)]
    per_image_cider = caption.cider_d_scores(predictions, references)
    return {"bleu4": caption.bleu4(predictions, references),
            "bleu4_per_image": [float(caption.bleu_from_stats(s)) for s in stats],
            "cider_d": caption.cider_d(predictions, references), "cider_d_per_image": per_image_cider}


def max_difference(ours: dict, theirs: dict) -> float:
    worst = max(abs(ours[k] - theirs[k]) for k in ("bleu4", "cider_d"))
    for key in ("bleu4_per_image", "cider_d_per_image"):
        assert len(ours[key]) == len(theirs[key])
        worst = max([worst] + [abs(a - b) for a, b in zip(ours[key], theirs[key])])
    return worst


def test_fixture_corpora_tokenize_to_themselves():
    # The comparison is only about scoring if docvlm's tokenizer leaves these inputs as they are.
    for corpus in FIXTURE["corpora"]:
        for text in corpus["predictions"] + [r for refs in corpus["references"] for r in refs]:
            assert " ".join(caption.tokenize(text)) == " ".join(text.split())


def test_bleu4_and_cider_d_equal_pycocoevalcap_on_stored_corpora():
    assert len(FIXTURE["corpora"]) >= 150
    worst = 0.0
    for corpus in FIXTURE["corpora"]:
        ours = docvlm_scores(corpus["predictions"], corpus["references"])
        worst = max(worst, max_difference(ours, corpus))
    assert worst <= TOLERANCE


def test_stored_corpora_exercise_the_edge_cases():
    corpora = FIXTURE["corpora"]
    assert any(p == "" for c in corpora for p in c["predictions"])  # empty candidates
    assert any(all(p == "" for p in c["predictions"]) for c in corpora)  # a corpus of them (BLEU 0)
    assert any(len(refs) >= 4 for c in corpora for refs in c["references"])  # several references
    assert any(len(c["predictions"]) == 1 for c in corpora)  # one image: CIDEr-D's idf is 0
    assert any(0 < c["cider_d"] for c in corpora) and any(0.1 < c["bleu4"] < 1 for c in corpora)
    repeated = [p.split() for c in corpora for p in c["predictions"]]
    assert any(len(set(zip(w, w[1:]))) < len(w) - 1 for w in repeated)  # repeated bigrams (clipping)


def random_corpus(rng: random.Random) -> tuple[list[str], list[list[str]]]:
    vocab = [f"w{i}" for i in range(rng.choice([2, 3, 6, 40]))]
    predictions, references = [], []
    for _ in range(rng.randint(1, 8)):
        references.append([" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 12)))
                           for _ in range(rng.randint(1, 5))])
        predictions.append(" ".join(rng.choice(vocab) for _ in range(rng.choice([0, 1, 2, rng.randint(0, 15)]))))
    return predictions, references


def test_bleu4_and_cider_d_equal_live_pycocoevalcap_on_random_corpora():
    bleu = pytest.importorskip("pycocoevalcap.bleu.bleu")
    cider = pytest.importorskip("pycocoevalcap.cider.cider")
    rng = random.Random(11)
    worst = 0.0
    for _ in range(250):
        predictions, references = random_corpus(rng)
        gts = {str(i): r for i, r in enumerate(references)}
        res = {str(i): [p] for i, p in enumerate(predictions)}
        with contextlib.redirect_stdout(io.StringIO()):
            b, b_images = bleu.Bleu(4).compute_score(gts, res, verbose=0)
        c, c_images = cider.Cider().compute_score(gts, res)
        theirs = {"bleu4": b[3], "bleu4_per_image": b_images[3], "cider_d": c, "cider_d_per_image": list(c_images)}
        worst = max(worst, max_difference(docvlm_scores(predictions, references), theirs))
    assert worst <= TOLERANCE


# --------------------------------------------------------------------------------------------
# Tokenization: coco-caption's PTBTokenizer (Java, stored output) against docvlm's ``ptb``


def test_ptb_tokenizer_equals_coco_caption_ptbtokenizer():
    ptb = FIXTURE["ptb"]
    assert len(ptb["captions"]) >= 1500
    differing = [(c, t, ptb_tokenize(c)) for c, t in zip(ptb["captions"], ptb["tokens"])
                 if ptb_tokenize(c) != t.split(" ") and not (t == "" and ptb_tokenize(c) == [])]
    assert differing == []
    # What the scorers see: the tokens split again on any whitespace (the U+00A0 in "3 1/2").
    assert caption.tokenize("3 1/2 cups") == ["3", "1/2", "cups"] and ptb_tokenize("3 1/2") == ["3\u00a01/2"]


def test_raw_captions_score_as_the_coco_caption_pipeline():
    # Untokenized captions: coco-caption = PTBTokenizer (Java) + Bleu + Cider; docvlm = its ptb tokenizer.
    worst = 0.0
    for corpus in FIXTURE["raw_corpora"]:
        predictions, references = corpus["predictions"], corpus["references"]
        stats = [caption.bleu_stats(p, r, "ptb") for p, r in zip(predictions, references)]
        ours = {"bleu4": caption.bleu4(predictions, references, "ptb"),
                "bleu4_per_image": [float(caption.bleu_from_stats(s)) for s in stats],
                "cider_d": caption.cider_d(predictions, references, "ptb"),
                "cider_d_per_image": caption.cider_d_scores(predictions, references, "ptb")}
        worst = max(worst, max_difference(ours, corpus))
    assert len(FIXTURE["raw_corpora"]) >= 50 and worst <= TOLERANCE


def test_whitespace_tokenizer_scores_pre_tokenized_text_exactly():
    # Already tokenized text is only split, as coco-caption's scorers split it: the stored token
    # corpora score exactly as pycocoevalcap scored them.
    for corpus in FIXTURE["corpora"]:
        assert caption.bleu4(corpus["predictions"], corpus["references"], "whitespace") == pytest.approx(
            corpus["bleu4"], abs=TOLERANCE)
        assert caption.cider_d(corpus["predictions"], corpus["references"], "whitespace") == pytest.approx(
            corpus["cider_d"], abs=TOLERANCE)
    # The Java PTBTokenizer's output, scored with "whitespace", equals the raw captions scored with "ptb".
    captions, tokens = FIXTURE["ptb"]["captions"], FIXTURE["ptb"]["tokens"]
    rng = random.Random(5)
    compared = 0
    for _ in range(40):
        picks = [rng.sample(range(len(captions)), rng.randint(1, 4)) for _ in range(rng.randint(2, 6))]
        raw = ([captions[p[0]] for p in picks], [[captions[i] for i in p[1:] or p] for p in picks])
        java = ([tokens[p[0]] for p in picks], [[tokens[i] for i in p[1:] or p] for p in picks])
        if not any(caption.tokenize(r, "whitespace") for refs in java[1] for r in refs):
            continue  # pycocoevalcap's CIDEr fails on a corpus without any reference word
        assert caption.bleu4(*java, "whitespace") == pytest.approx(caption.bleu4(*raw, "ptb"), abs=TOLERANCE)
        assert caption.cider_d(*java, "whitespace") == pytest.approx(caption.cider_d(*raw, "ptb"), abs=TOLERANCE)
        compared += 1
    assert compared >= 30
    assert caption.tokenize("Man 's dog", "whitespace") == ["Man", "'s", "dog"]  # not even lower-cased


def test_simple_tokenizer_is_the_documented_deviation():
    assert caption.tokenize("A man's t-shirt, 3.5 m.", "simple") == ["a", "man", "s", "t", "shirt", "3", "5", "m"]
    assert caption.tokenize("A man's t-shirt, 3.5 m.") == ["a", "man", "'s", "t-shirt", "3.5", "m."]
    with pytest.raises(ValueError, match="tokenizer"):
        caption.tokenize("a", "ptb3")


def test_caption_tokenizer_is_a_config_option_stated_in_metrics_files():
    from docvlm.config import EvalConfig
    from docvlm.evaluate.scoring import metric_options, score_rows

    rows = [{"id": "1", "prediction": "a red t-shirt", "references": ["A blue t-shirt."]},
            {"id": "2", "prediction": "two cats", "references": ["Two cats sleeping."]}]
    ptb = score_rows(rows, ("bleu4", "cider_d"), EvalConfig())
    simple = score_rows(rows, ("bleu4", "cider_d"), EvalConfig(caption_tokenizer="simple"))
    assert ptb.value("bleu4") != simple.value("bleu4")
    assert metric_options(EvalConfig(caption_tokenizer="simple"), ("bleu4",))["caption"]["tokenizer"].startswith(
        "simple")
