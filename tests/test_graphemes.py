"""Grapheme clusters: UAX #29 as ICU / dinglehopper / uniseg segment them (issue 9, item 1)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from uniseg.graphemecluster import grapheme_clusters as uniseg_clusters

from docvlm.config import TextMetricConfig
from docvlm.evaluate.graphemes import grapheme_clusters
from docvlm.evaluate.metrics import cer


def _parse(line: str) -> list[str]:
    """One GraphemeBreakTest.txt line ('÷ 0061 × 094D ÷ 0924 ÷') as its expected clusters."""
    clusters, current = [], ""
    for token in line.split():
        if token == "÷":
            if current:
                clusters.append(current)
            current = ""
        elif token != "×":
            current += chr(int(token, 16))
    return clusters


# Lines of the official GraphemeBreakTest-16.0.0.txt (Unicode, auxiliary/), one per rule, with the
# GB9c cases that the ``regex`` module's \X gets wrong (it follows Unicode 18's relaxed GB9c).
OFFICIAL_CASES = [
    "÷ 000D × 000A ÷",  # GB3
    "÷ 0061 ÷ 000A ÷ 0308 ÷",  # GB4/GB5
    "÷ 1100 × 1160 × 11A8 ÷ AC00 ÷",  # GB6-GB8
    "÷ AC01 × 11A8 × 11A8 ÷ 1100 ÷",
    "÷ 0061 × 0308 × 200D ÷ 0062 ÷",  # GB9
    "÷ 0061 × 0903 ÷ 0062 ÷",  # GB9a
    "÷ 0600 × 0061 ÷ 0062 ÷",  # GB9b
    "÷ 0915 × 094D × 0924 ÷",  # GB9c
    "÷ 0915 × 094D × 094D × 0924 ÷",
    "÷ 0915 × 093C × 200D × 094D × 0924 ÷",
    "÷ 0915 × 094D × 200D × 0924 ÷",
    "÷ 0061 × 094D ÷ 0924 ÷",  # GB9c needs a consonant before the Linker
    "÷ 003F × 094D ÷ 0924 ÷",
    "÷ 094D ÷ 0915 ÷",
    "÷ 094D × 0308 ÷ 0915 ÷",
    "÷ 0915 × 0308 ÷ 0924 ÷",  # an Extend that is no Linker does not join
    "÷ 2701 × 200D × 2701 ÷",  # GB11
    "÷ 1F476 × 1F3FF × 0308 × 200D × 1F476 × 1F3FF ÷",
    "÷ 0061 × 200D ÷ 1F6D1 ÷",
    "÷ 1F1E6 × 1F1E7 ÷ 1F1E8 ÷ 0062 ÷",  # GB12/GB13
    "÷ 0061 ÷ 1F1E6 × 1F1E7 × 200D ÷ 1F1E8 ÷ 0062 ÷",
]


@pytest.mark.parametrize("line", OFFICIAL_CASES)
def test_official_cases(line):
    expected = _parse(line)
    assert grapheme_clusters("".join(expected)) == expected


def test_issue_example_virama_after_non_consonant_is_two_clusters():
    options = TextMetricConfig(normalization="NFC", unit="grapheme")
    reference = "a\u094d\u0924"  # a + virama + ta: {a + virama} {ta}
    assert cer([reference], ["a\u094d"], options).reference_length == 2
    assert cer([reference], ["a\u094d"], options).edits == 1


# One code point per property combination that the rules look at (GCB x InCB x ExtPict), plus the
# Hangul syllable types, so random strings exercise every rule and their interactions.
ALPHABET = [
    "a", "\r", "\n", "\x01", "\u0308", "\u200d", "\U0001F1E6", "\U0001F1E7", "\u0600", "\u0903",
    "\u1100", "\u1160", "\u11a8", "\uac00", "\uac01", "\u0915", "\u0924", "\u094d", "\u09cd", "\u0995",
    "\u093c", "\u2701", "\U0001F476", "\U0001F3FF", "\u00e9", "?", "\u0d4d", "\u0d15", "\u0e33",
    "\u1b44", "\u1019", "\u1039", "\u17d2", "\ufe0f",
]


def test_matches_uniseg_on_random_strings():
    rng = random.Random(0)
    for _ in range(3000):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 8)))
        assert grapheme_clusters(text) == list(uniseg_clusters(text)), [hex(ord(c)) for c in text]


def test_ascii_fast_path():
    assert grapheme_clusters("ab c") == ["a", "b", " ", "c"]
    assert grapheme_clusters("a\r\nb") == ["a", "\r\n", "b"]
    assert grapheme_clusters("") == []


FIXTURE = Path(__file__).parent / "fixtures" / "unicode" / "GraphemeBreakTest-16.0.0.txt"


def test_every_case_of_an_official_test_file():
    """Every line of the official GraphemeBreakTest-16.0.0.txt (Unicode's ucd/auxiliary/, kept as a
    fixture; see fixtures/unicode/SOURCES.md)."""
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# GraphemeBreakTest-16.0.0"), "the segmenter follows Unicode 16.0"
    cases = [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]
    failed = [case for case in cases if grapheme_clusters("".join(_parse(case))) != _parse(case)]
    assert not failed and len(cases) == 1093, failed[:5]
