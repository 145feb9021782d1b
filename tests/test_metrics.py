"""CER/WER, their options and the error analysis, with hand-computed values."""

import random
import subprocess
import sys

import jiwer
import pytest

from docvlm.config import TextMetricConfig
from docvlm.evaluate.metrics import ErrorAnalysis, aligned, cer, line_errors, prepare, sample_cer, transcription_scores, wer


def opts(**kw) -> TextMetricConfig:
    return TextMetricConfig(**kw)


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


def test_empty_references_are_never_divided_by():
    # No reference unit at all: the rate is undefined (None), not inf or a ZeroDivisionError.
    assert cer([""], [""]).rate is None
    assert cer([""], ["x"]).rate is None and cer([""], ["x"]).edits == 1
    # Mixed: the empty line's 1 inserted unit counts, its length is 0: 1 edit / 2 units.
    assert cer(["", "ab"], ["x", "ab"]).rate == pytest.approx(0.5)


def test_scores_record_counts():
    scores = transcription_scores(["12 34"], ["12 35"])
    assert scores["n"] == 1
    assert scores["cer"] == {"rate": pytest.approx(0.2), "edits": 1, "reference_length": 5}
    assert scores["wer"]["rate"] == pytest.approx(0.5)


def test_nfc_and_nfd_give_different_cer():
    nfc_ref = "caf\u00e9"  # 4 code points
    # NFC: "café" vs "cafe": 1 substitution / 4 = 0.25
    assert cer([nfc_ref], ["cafe"], opts(normalization="NFC")).rate == pytest.approx(1 / 4)
    # NFD: "cafe\u0301" (5 code points) vs "cafe": 1 deletion (the accent) / 5 = 0.2
    assert cer([nfc_ref], ["cafe"], opts(normalization="NFD")).rate == pytest.approx(1 / 5)
    # Graphemes under NFD: c, a, f, e+◌́ = 4 units; "e" replaces "é": 1 / 4
    assert cer([nfc_ref], ["cafe"], opts(normalization="NFD", unit="grapheme")).rate == pytest.approx(1 / 4)
    # No normalization, NFD reference vs NFC prediction: "e\u0301" vs "\u00e9" = 1 sub + 1 del over 5.
    assert cer(["cafe\u0301"], [nfc_ref]).rate == pytest.approx(2 / 5)
    assert cer(["cafe\u0301"], [nfc_ref], opts(normalization="NFC")).rate == 0.0


def test_right_to_left_arabic_is_scored_in_logical_order():
    reference = "مرحبا بكم"  # 5 letters + space + 3 letters = 9 code points
    prediction = "مرحبا بكن"  # last letter meem -> noon
    assert cer([reference], [prediction]).rate == pytest.approx(1 / 9)
    assert wer([reference], [prediction]).rate == pytest.approx(1 / 2)
    analysis = ErrorAnalysis()
    line_errors(reference, prediction, TextMetricConfig(), analysis)
    report = analysis.as_dict(top=5)
    assert report["top_confusions"] == [{"expected": "م", "got": "ن", "count": 1}]
    # 8 Arabic letters, 1 error -> 7/8; the space is Common and correct.
    assert report["scripts"]["Arabic"] == {"characters": 8, "errors": 1, "accuracy": pytest.approx(7 / 8)}
    assert report["scripts"]["Common"] == {"characters": 1, "errors": 0, "accuracy": 1.0}


def test_emoji_and_flags_as_graphemes_or_code_points():
    # "👍🏽ok": thumbs up + skin-tone modifier + o + k = 4 code points, 3 grapheme clusters.
    assert cer(["👍🏽ok"], ["👍ok"]).rate == pytest.approx(1 / 4)  # 1 deletion (the modifier)
    assert cer(["👍🏽ok"], ["👍ok"], opts(unit="grapheme")).rate == pytest.approx(1 / 3)  # 1 substitution
    # A flag is 2 regional indicators: 🇫🇷 -> 🇫🇮 is 1 of 2 code points, 1 of 1 grapheme.
    assert cer(["🇫🇷"], ["🇫🇮"]).rate == pytest.approx(1 / 2)
    assert cer(["🇫🇷"], ["🇫🇮"], opts(unit="grapheme")).rate == pytest.approx(1.0)


def test_whitespace_case_and_punctuation_options():
    reference = "a\u00a0b  c\n"
    # kraken's normalization: each whitespace char -> space, ends stripped: "a b  c" (6) vs "a b c": 1 deletion.
    assert prepare(reference) == "a b  c"
    assert cer([reference], ["a b c"]).rate == pytest.approx(1 / 6)
    assert cer([reference], ["a b c"], opts(whitespace="collapse")).rate == 0.0
    # As given: nbsp->space (1 sub), one space deleted, newline deleted: 3 edits / 7 code points.
    assert cer([reference], ["a b c"], opts(whitespace="none")).rate == pytest.approx(3 / 7)
    assert cer(["Abc"], ["abc"]).rate == pytest.approx(1 / 3)
    assert cer(["Abc"], ["abc"], opts(case_fold=True)).rate == 0.0
    assert cer(["Straße"], ["STRASSE"], opts(case_fold=True)).rate == 0.0  # ß casefolds to ss
    # "a, b." (5) vs "a b": 2 deletions; without punctuation both are "a b".
    assert cer(["a, b."], ["a b"]).rate == pytest.approx(2 / 5)
    assert cer(["a, b."], ["a b"], opts(remove_punctuation=True)).rate == 0.0


def test_error_analysis_counts_and_alignment():
    analysis = ErrorAnalysis()
    first = line_errors("abcd", "xbcde", TextMetricConfig(), analysis)  # a->x, insert e
    second = line_errors("hello", "helo", TextMetricConfig(), analysis)  # delete one l
    assert (first.substitutions, first.insertions, first.deletions, first.char_edits) == (1, 1, 0, 2)
    assert (second.char_edits, second.char_length) == (1, 5)
    report = analysis.as_dict(top=10)
    assert (report["substitutions"], report["insertions"], report["deletions"]) == (1, 1, 1)
    assert {(c["expected"], c["got"], c["count"]) for c in report["top_confusions"]} == {
        ("a", "x", 1), ("", "e", 1), ("l", "", 1)}
    assert aligned("abcd", "abd") == ("abcd", "ab\u2205d")
    assert aligned("ab", "abc") == ("ab\u2205", "abc")


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
    # Per line too, and through the analysis path (editops) as well as the distance path.
    analysis = ErrorAnalysis()
    for r, h in zip(refs[:200], hyps[:200]):
        assert line_errors(r, h, TextMetricConfig(), analysis).char_edits == round(jiwer.cer(r, h) * len(r))


@pytest.mark.parametrize("module", ["metrics", "vqa", "caption", "bootstrap", "scoring", "predictions", "graphemes",
                                    "failures", "retention_metrics", "ptb", "equivalences"])
def test_metric_modules_do_not_import_torch(module):
    code = f"import sys, docvlm.evaluate.{module}; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
