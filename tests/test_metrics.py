import random
import sys

import jiwer
import pytest

from docvlm.evaluate.metrics import cer, sample_cer, transcription_scores, wer


def test_cer_is_micro_averaged_over_the_corpus():
    # "abcd" -> "abxd": 1 substitution; "ef" -> "": 2 deletions; total 3 edits over 6 characters.
    result = cer(["abcd", "ef"], ["abxd", ""])
    assert (result.edits, result.reference_length) == (3, 6)
    assert result.rate == pytest.approx(0.5)
    # A per-line (macro) mean would give (0.25 + 1.0) / 2 = 0.625; the corpus rate does not.
    assert result.rate != pytest.approx(0.625)


def test_wer_counts_words():
    result = wer(["the cat sat", "on the mat"], ["the cat sat", "on a mat down"])
    # second line: substitution (the->a) + insertion (down) = 2 edits over 6 words
    assert (result.edits, result.reference_length) == (2, 6)
    assert result.rate == pytest.approx(1 / 3)


def test_insertions_can_exceed_one():
    assert cer(["ab"], ["abcdef"]).rate == pytest.approx(2.0)
    assert sample_cer("ab", "") == 1.0


def test_empty_references():
    assert cer([""], [""]).rate == 0.0
    assert cer([""], ["x"]).rate == float("inf")


def test_scores_record_counts():
    scores = transcription_scores(["12 34"], ["12 35"])
    assert scores["n"] == 1
    assert scores["cer"] == {"rate": pytest.approx(0.2), "edits": 1, "reference_length": 5}
    assert scores["wer"]["rate"] == pytest.approx(0.5)


def test_agrees_with_jiwer_on_random_corpus():
    rng = random.Random(0)
    alphabet = "ab cdé"
    refs = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))).strip() or "a" for _ in range(1000)]
    # jiwer strips both ends by default; strip here so both sides score identical strings.
    hyps = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))).strip() for _ in range(1000)]
    assert cer(refs, hyps).rate == pytest.approx(jiwer.cer(refs, hyps))
    refs_w = [r for r in refs if r.split()]
    hyps_w = [h if h.split() else "x" for h, r in zip(hyps, refs) if r.split()]
    assert wer(refs_w, hyps_w).rate == pytest.approx(jiwer.wer(refs_w, hyps_w))


def test_metrics_module_does_not_import_torch():
    import importlib
    import subprocess

    code = "import sys, docvlm.evaluate.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert importlib.import_module("docvlm.evaluate.metrics")
