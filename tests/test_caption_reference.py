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
