"""CER as dinglehopper (qurator-spk/dinglehopper 0.11.0, PyPI) computes it, on random Unicode.

dinglehopper's oracle is reproduced here from its source (Apache-2.0), reading the wheel
dinglehopper-0.11.0-py3-none-any.whl (sha256 8d1bf203258801ec53151370a425924634bb31093b30407844d0c7a508836870);
it is not installed because it pulls in the whole OCR-D stack (``ocrd>=3.3``):

- ``character_error_rate.py: character_error_rate_n(str, str)``: both strings NFC-normalized, split
  into extended grapheme clusters with ``uniseg.graphemecluster.grapheme_clusters`` (the library
  itself, imported below), rapidfuzz Levenshtein distance over the clusters / reference clusters.
- ``cli_line_dirs.py: process``: a corpus of line files is the rolling, length-weighted mean of
  the line CERs (= edits summed / reference clusters summed, micro, as docvlm).
- ``ocr_files.py: plain_extract``: every line read from a file is ``line.strip()``-ed and put
  through ``extracted_text.py: normalize_sbb`` (NFC, ``unjoin_ligatures``,
  ``substitute_equivalences``), the tables of which are copied in the oracle below.

docvlm's settings for them: ``normalization: NFC, unit: grapheme, whitespace: none`` (the
function) and ``normalization: dinglehopper, unit: grapheme, whitespace: strip`` (the command-line
tools on text files).
"""

from __future__ import annotations

import random
import unicodedata

import pytest
from rapidfuzz.distance import Levenshtein
from uniseg.graphemecluster import grapheme_clusters

from docvlm.config import TextMetricConfig
from docvlm.errors import ConfigError
from docvlm.evaluate.metrics import cer

FUNCTION = TextMetricConfig(normalization="NFC", unit="grapheme", whitespace="none")
COMMAND_LINE = TextMetricConfig(normalization="dinglehopper", unit="grapheme", whitespace="strip")

# --------------------------------------------------------------------------------------------
# Oracle (dinglehopper 0.11.0)

LIGATURES = {  # extracted_text.py: unjoin_ligatures
    "\ueba6": "\u017f\u017f", "\ueba7": "\u017f\u017fi", "\uf502": "ch", "\ueec4": "ck", "\uf4f9": "ll",
    "\ueba2": "\u017fi", "\ueada": "\u017ft", "\ufb01": "fi", "\ufb00": "ff", "\ufb02": "fl", "\ufb03": "ffi",
    "\ueec5": "ct", "\ueedc": "tz", "\uf532": "as", "\uf533": "is", "\uf534": "us", "\uf535": "Qu",
    "\u0133": "ij", "\ue8bf": "q&", "\ueba5": "\u017fp", "\ufb06": "st",
}
EQUIVALENCES = {  # extracted_text.py: substitute_equivalences
    "\ue72b": "\xfc", "\ue42c": "\xe4", "==": "\u2013", "\u2014": "\u2013", "\ue644": "\xf6", "\u2019": "'",
    "\u2e17": "-", "a\u0364": "\xe4", "o\u0364": "\xf6", "u\u0364": "\xfc", "\uf50e": "q\u0301",
}


def normalize_sbb(s: str) -> str:
    s = unicodedata.normalize("NFC", s)
    for fr, to in LIGATURES.items():  # unjoin_ligatures (NFC again first: a no-op here)
        s = s.replace(fr, to)
    for fr, to in EQUIVALENCES.items():
        s = s.replace(fr, to)
    return s


def rate_n(d: int, n: int) -> tuple[float, int]:
    """dinglehopper's error rate of ``d`` edits over ``n`` reference units (0 edits: 0, even for
    an empty reference; edits against an empty reference: infinite)."""
    if d == 0:
        return 0, n
    if n == 0:
        return float("inf"), n
    return d / n, n


def character_error_rate_n(reference: str, compared: str) -> tuple[float, int]:
    seq1 = list(grapheme_clusters(unicodedata.normalize("NFC", reference)))
    seq2 = list(grapheme_clusters(unicodedata.normalize("NFC", compared)))
    return rate_n(Levenshtein.distance(seq1, seq2), len(seq1))


def line_dirs_rate(rate_n, references: list[str], predictions: list[str], read=lambda line: line):
    """dinglehopper's line-folder tools: the running length-weighted mean of each line pair's
    ``rate_n`` (``character_error_rate_n`` or ``word_error_rate_n``)."""
    rate, n_units = None, None
    for gt_line, ocr_line in zip(references, predictions):
        l_rate, l_n = rate_n(read(gt_line), read(ocr_line))
        if rate is None:
            rate, n_units = l_rate, l_n
        else:
            rate = (rate * n_units + l_rate * l_n) / (n_units + l_n)
            n_units = n_units + l_n
    return rate, n_units


def line_dirs_cer(references: list[str], predictions: list[str], read=lambda line: line) -> tuple[float, int]:
    return line_dirs_rate(character_error_rate_n, references, predictions, read)


def plain_line(line: str) -> str:  # ocr_files.py: plain_extract, one line
    return normalize_sbb(line.strip())


# --------------------------------------------------------------------------------------------
# Random Unicode: combining marks (precomposable or not), Devanagari conjuncts and viramas,
# emoji with modifiers, ZWJ sequences and flags, Arabic with harakat, Hangul jamo, CR LF, tabs,
# Unicode spaces, ligatures and the characters dinglehopper's tables substitute.

POOL = (list("abcé ") + ["e\u0301", "\u0301", "\u0308", "a\u0308", "\u00e4", "q\u0301"]
        + list("नमस्तेक्षत्र") + ["\u094d", "\u0924", "\u0915", "\u0930\u094d"]
        + ["👍", "👍🏽", "👨\u200d👩\u200d👧", "🇩🇪", "🇫🇷", "\u200d", "\ufe0f"]
        + list("مرحبا بالعالم") + ["\u064e", "\u0651", "لا", "\u0600"]
        + ["\r\n", "\n", "\t", "\u00a0", "\u2003", "한", "\u1100", "\u1161", "\u11a8", "ǅ", "\u0e33"]
        + ["\ufb01", "\ufb00", "\ufb06", "\u0133", "\ueba6", "\uf535", "\u2019", "'", "\u2014", "\u2013", "==",
           "=", "\u2e17", "a\u0364", "u\u0364", "\u0364", "\uf50e", "\u017f"])


def corpus(rng: random.Random) -> tuple[list[str], list[str]]:
    references = ["".join(rng.choice(POOL) for _ in range(rng.randint(1, 20))) for _ in range(rng.randint(1, 6))]
    predictions = ["".join(rng.choice(POOL) for _ in range(rng.randint(0, 20))) for _ in references]
    return references, predictions


def test_grapheme_cer_equals_dinglehopper_function():
    rng = random.Random(0)
    worst, compared = 0.0, 0
    for _ in range(500):
        references, predictions = corpus(rng)
        expected, n = line_dirs_cer(references, predictions)
        if n == 0:
            continue  # every reference empty after all: dinglehopper says inf, docvlm None
        ours = cer(references, predictions, FUNCTION)
        assert ours.reference_length == n
        worst = max(worst, abs(ours.rate - expected))
        compared += 1
    assert compared > 450 and worst < 1e-12


def test_grapheme_cer_equals_dinglehopper_command_line_on_text_lines():
    rng = random.Random(1)
    worst, differs_from_function = 0.0, 0
    for _ in range(500):
        references, predictions = corpus(rng)
        references = [rng.choice(["", " ", "\t"]) + r + rng.choice(["", " ", "\u00a0"]) for r in references]
        expected, n = line_dirs_cer(references, predictions, plain_line)
        if n == 0:
            continue
        ours = cer(references, predictions, COMMAND_LINE)
        assert ours.reference_length == n
        worst = max(worst, abs(ours.rate - expected))
        differs_from_function += cer(references, predictions, FUNCTION).rate != ours.rate
    assert worst < 1e-12
    assert differs_from_function > 150  # the substitutions and the strip matter on this input


def test_dinglehopper_equivalences_by_hand():
    # ’ and ' are one character to dinglehopper; so are the ligature ﬁ and "fi", an em and an en dash.
    assert cer(["it\u2019s \ufb01ne \u2014 ok"], ["it's fine \u2013 ok"], COMMAND_LINE).rate == 0.0
    assert cer(["it\u2019s"], ["it's"], FUNCTION).rate == pytest.approx(1 / 4)
    # "u" + combining small e (old German umlaut) is ü; q + acute stays two code points, one cluster.
    assert cer(["mu\u0364de"], ["müde"], COMMAND_LINE).rate == 0.0
    # Only the ends are stripped; an inner tab stays a tab.
    assert cer(["  a\tb  "], ["a\tb"], COMMAND_LINE).rate == 0.0
    assert cer(["a\tb"], ["a b"], COMMAND_LINE).rate == pytest.approx(1 / 3)


def test_new_text_options_are_checked_by_the_config():
    from docvlm.config import from_dict

    loaded = from_dict(TextMetricConfig, {"normalization": "dinglehopper", "whitespace": "strip", "words": "dinglehopper"})
    assert loaded == TextMetricConfig(normalization="dinglehopper", whitespace="strip", words="dinglehopper")
    with pytest.raises(ConfigError, match="normalization"):
        from_dict(TextMetricConfig, {"normalization": "sbb"})


# --------------------------------------------------------------------------------------------
# WER: dinglehopper's ``word_error_rate.py``: ``words`` splits at UAX #29 word boundaries
# (``uniseg.wordbreak.words``) and drops every "word" made only of characters of the categories
# M*, P*, Z*, S*, Cc, Cf; ``words_normalized`` NFC-normalizes first; line directories are micro.
# dinglehopper also rebinds ``uniseg.wordbreak.word_break`` so that private-use characters count
# as letters, but uniseg 0.10 binds that function as a default argument of ``words``, so the
# rebinding does not reach it (checked below): with the uniseg every install gets today,
# private-use characters break words.

import uniseg.wordbreak  # noqa: E402

from docvlm.evaluate.metrics import wer  # noqa: E402

WER_FUNCTION = TextMetricConfig(normalization="NFC", whitespace="none", words="dinglehopper")
WER_COMMAND_LINE = TextMetricConfig(normalization="dinglehopper", whitespace="strip", words="dinglehopper")


def dinglehopper_words(s: str) -> list[str]:
    def unwanted(c):
        subcat = unicodedata.category(c)
        return subcat[0] in ("O", "M", "P", "Z", "S") or subcat in ("Cc", "Cf")

    return [w for w in uniseg.wordbreak.words(unicodedata.normalize("NFC", s)) if not all(unwanted(c) for c in w)]


def word_error_rate_n(reference: str, compared: str) -> tuple[float, int]:
    reference_seq, compared_seq = dinglehopper_words(reference), dinglehopper_words(compared)
    return rate_n(Levenshtein.distance(reference_seq, compared_seq), len(reference_seq))


def line_dirs_wer(references, predictions, read=lambda line: line):
    return line_dirs_rate(word_error_rate_n, references, predictions, read)


WORD_POOL = POOL + ["word", "Wort", "can't", "3.5", "1,000", "e-mail", "a.m.", "\u3001", "犬", "ねこ", "\ue000",
                    ",", ".", "!", "(", ")", "-", "\u2014", "  ", "@", "#1", "$5", "50%"]


def test_wer_equals_dinglehopper_on_random_unicode():
    rng = random.Random(2)
    worst, compared, differs_from_whitespace = 0.0, 0, 0
    for _ in range(300):
        references = [" ".join(rng.choice(WORD_POOL) for _ in range(rng.randint(1, 10))) for _ in range(4)]
        predictions = [" ".join(rng.choice(WORD_POOL) for _ in range(rng.randint(0, 10))) for _ in range(4)]
        for options, read in ((WER_FUNCTION, lambda line: line), (WER_COMMAND_LINE, plain_line)):
            if not all(dinglehopper_words(read(r)) for r in references):
                continue  # a line without words: dinglehopper's rate is inf (or it divides by zero)
            expected, n = line_dirs_wer(references, predictions, read)
            ours = wer(references, predictions, options)
            assert ours.reference_length == n
            worst = max(worst, abs(ours.rate - expected))
            compared += 1
        differs_from_whitespace += wer(references, predictions, WER_FUNCTION).rate != wer(
            references, predictions, TextMetricConfig(normalization="NFC", whitespace="none")).rate
    assert compared > 300 and worst < 1e-12 and differs_from_whitespace > 100


def test_dinglehopper_words_by_hand():
    # Punctuation and spaces are no words; "can't" and "3.5" stay whole (UAX #29 MidLetter/MidNum).
    assert wer(["Hello, world! can't 3.5"], ["hello world can't 3.5"], WER_FUNCTION).as_dict() == {
        "rate": 0.25, "edits": 1, "reference_length": 4}
    assert wer(["Hello, world!"], ["Hello world"]).as_dict()["edits"] == 2  # whitespace words: "Hello," "world!"
    # Ideographs are one word each; whitespace splitting sees one word.
    assert wer(["犬猫"], ["犬"], WER_FUNCTION).reference_length == 2
    assert wer(["犬猫"], ["犬"]).reference_length == 1


def test_dinglehoppers_private_use_patch_does_not_reach_uniseg():
    original = uniseg.wordbreak.word_break
    uniseg.wordbreak.word_break = lambda c: (uniseg.wordbreak.WordBreak.ALETTER if 0xE000 <= ord(c) <= 0xF8FF
                                             else original(c))
    try:
        assert list(uniseg.wordbreak.words("a\ue000b")) == ["a", "\ue000", "b"]
    finally:
        uniseg.wordbreak.word_break = original
