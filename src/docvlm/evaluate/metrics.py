"""Text-recognition metrics as pure functions (no torch import).

CER and WER are micro-averaged over the corpus, as kraken's ``ketos test`` and torchmetrics do:
the edit operations of all samples summed, divided by the summed reference length. A corpus of
long lines therefore weighs each character equally, not each line. dinglehopper's CER is
``normalization: NFC, unit: grapheme, whitespace: none`` (its ``character_error_rate``) or
``normalization: dinglehopper, unit: grapheme, whitespace: strip`` (its command-line tools on text
lines, which strip each line and apply its character equivalences); its line-directory corpus CER
is micro too. Its WER needs ``words: dinglehopper`` as well (UAX #29 words, not whitespace). How text is prepared first
(Unicode normalization, unit, whitespace, case, punctuation) is a :class:`TextMetricConfig`; its
defaults are kraken's, and every metrics file states the options used.

Edit distances and alignments come from rapidfuzz, which accepts any sequence of hashables, so a
grapheme cluster or a word is one unit exactly as a code point is.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Sequence

import regex
from rapidfuzz.distance import Levenshtein
from uniseg.wordbreak import words as uniseg_words

from docvlm.config import TextMetricConfig
from docvlm.evaluate.equivalences import dinglehopper_normalize
from docvlm.evaluate.graphemes import grapheme_clusters

KRAKEN_DEFAULTS = TextMetricConfig()
# kraken's whitespace normalization is ``regex.sub(r'\s', ' ', text).strip()`` (kraken/lib/dataset);
# the ``regex`` module's \s is the Unicode White_Space property, which Python's ``re`` differs from.
_WHITESPACE = regex.compile(r"\s")
GAP = "\u2205"
"""Marks a missing unit in aligned reference/prediction strings (an insertion or a deletion)."""


@dataclass(frozen=True)
class ErrorRate:
    rate: float | None
    """Edits / reference length; ``None`` when the references hold no unit at all."""
    edits: int
    reference_length: int

    def as_dict(self) -> dict:
        return asdict(self)


def _rate(edits: int, length: int) -> float | None:
    # An empty reference has no defined rate: it is reported, never divided by.
    return edits / length if length else None


def prepare(text: str, options: TextMetricConfig = KRAKEN_DEFAULTS) -> str:
    """The text as CER/WER compare it."""
    if options.case_fold:
        text = text.casefold()
    if options.normalization == "dinglehopper":
        text = dinglehopper_normalize(text)
    elif options.normalization != "none":
        text = unicodedata.normalize(options.normalization, text)
    if options.remove_punctuation:
        text = "".join(c for c in text if not unicodedata.category(c).startswith("P"))
    if options.whitespace == "normalize":
        text = _WHITESPACE.sub(" ", text).strip()
    elif options.whitespace == "collapse":
        text = " ".join(_WHITESPACE.sub(" ", text).split())
    elif options.whitespace == "strip":  # dinglehopper's line.strip() of every line it reads
        text = text.strip()
    return text


def units(text: str, options: TextMetricConfig = KRAKEN_DEFAULTS) -> Sequence[str]:
    """CER units of prepared text: the string itself (code points) or its extended grapheme clusters
    (UAX #29 as ICU, dinglehopper and uniseg segment them; see :mod:`docvlm.evaluate.graphemes`)."""
    return grapheme_clusters(text) if options.unit == "grapheme" else text


def words(text: str, options: TextMetricConfig = KRAKEN_DEFAULTS) -> list[str]:
    """WER units of prepared text: whitespace-separated words, or dinglehopper's words (UAX #29
    word boundaries as uniseg finds them, without the pieces that hold only punctuation, symbols,
    separators, marks or control/format characters)."""
    if options.words == "dinglehopper":
        return [w for w in uniseg_words(text) if not all(_not_a_word(c) for c in w)]
    return text.split()


def _not_a_word(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in "MPZS" or category in ("Cc", "Cf")


def error_rate(references: Sequence[Sequence], hypotheses: Sequence[Sequence]) -> ErrorRate:
    """Corpus edit rate over paired unit sequences (strings for characters, lists for words)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} predictions")
    edits = sum(Levenshtein.distance(r, h) for r, h in zip(references, hypotheses))
    length = sum(len(r) for r in references)
    return ErrorRate(_rate(edits, length), edits, length)


def cer(references: Sequence[str], hypotheses: Sequence[str],
        options: TextMetricConfig = KRAKEN_DEFAULTS) -> ErrorRate:
    return error_rate([units(prepare(r, options), options) for r in references],
                      [units(prepare(h, options), options) for h in hypotheses])


def wer(references: Sequence[str], hypotheses: Sequence[str],
        options: TextMetricConfig = KRAKEN_DEFAULTS) -> ErrorRate:
    return error_rate([words(prepare(r, options), options) for r in references],
                      [words(prepare(h, options), options) for h in hypotheses])


def sample_cer(reference: str, hypothesis: str, options: TextMetricConfig = KRAKEN_DEFAULTS) -> float | None:
    return cer([reference], [hypothesis], options).rate


def transcription_scores(references: Sequence[str], hypotheses: Sequence[str],
                         options: TextMetricConfig = KRAKEN_DEFAULTS) -> dict:
    """CER, WER and the sample count of a corpus."""
    return {"n": len(references), "cer": cer(references, hypotheses, options).as_dict(),
            "wer": wer(references, hypotheses, options).as_dict()}


# --------------------------------------------------------------------------------------------
# Per-sample edit counts and the error analysis built from the alignments


@dataclass
class LineErrors:
    """One sample's character and word edits, from one rapidfuzz alignment each."""

    reference: Sequence[str]
    prediction: Sequence[str]
    char_edits: int
    char_length: int
    word_edits: int
    word_length: int
    substitutions: int
    insertions: int
    deletions: int


@dataclass
class ErrorAnalysis:
    """Substitutions/insertions/deletions, confusions and per-script counts of a corpus.

    Per-script accuracy follows kraken's report: characters of each script in the references,
    errors charged to the script of the reference unit (substitution, deletion) or of the inserted
    unit (insertion), accuracy = 1 - errors / characters (negative when insertions dominate).
    """

    substitutions: int = 0
    insertions: int = 0
    deletions: int = 0
    confusions: Counter = field(default_factory=Counter)
    script_units: Counter = field(default_factory=Counter)
    script_errors: Counter = field(default_factory=Counter)

    def add(self, reference: Sequence[str], prediction: Sequence[str]) -> tuple[int, int, int]:
        """Align one sample, count its operations; returns (substitutions, insertions, deletions)."""
        self.script_units.update(reference)  # per unit; mapped to scripts once, in as_dict
        subs = ins = dels = 0
        for op in Levenshtein.editops(reference, prediction):
            if op.tag == "replace":
                expected, got = reference[op.src_pos], prediction[op.dest_pos]
                subs += 1
            elif op.tag == "insert":
                expected, got = "", prediction[op.dest_pos]
                ins += 1
            else:
                expected, got = reference[op.src_pos], ""
                dels += 1
            self.confusions[(expected, got)] += 1
            self.script_errors[expected or got] += 1
        self.substitutions += subs
        self.insertions += ins
        self.deletions += dels
        return subs, ins, dels

    def as_dict(self, top: int) -> dict:
        units_by_script, errors_by_script = _by_script(self.script_units), _by_script(self.script_errors)
        scripts = {}
        for script in sorted(set(units_by_script) | set(errors_by_script)):
            count, errors = units_by_script.get(script, 0), errors_by_script.get(script, 0)
            scripts[script] = {"characters": count, "errors": errors,
                               "accuracy": 1 - errors / count if count else None}
        return {
            "substitutions": self.substitutions, "insertions": self.insertions, "deletions": self.deletions,
            "top_confusions": [{"expected": e, "got": g, "count": c}
                               for (e, g), c in self.confusions.most_common(top)],
            "scripts": scripts,
        }


def line_errors(reference: str, prediction: str, options: TextMetricConfig,
                analysis: ErrorAnalysis | None = None) -> LineErrors:
    ref_text, hyp_text = prepare(reference, options), prepare(prediction, options)
    ref_units, hyp_units = units(ref_text, options), units(hyp_text, options)
    if analysis is not None:
        subs, ins, dels = analysis.add(ref_units, hyp_units)
        char_edits = subs + ins + dels
    else:
        char_edits, subs, ins, dels = Levenshtein.distance(ref_units, hyp_units), 0, 0, 0
    ref_words = words(ref_text, options)
    return LineErrors(ref_units, hyp_units, char_edits, len(ref_units),
                      Levenshtein.distance(ref_words, words(hyp_text, options)), len(ref_words), subs, ins, dels)


def aligned(reference: Sequence[str], prediction: Sequence[str]) -> tuple[str, str]:
    """Reference and prediction padded with :data:`GAP` so equal positions line up."""
    pairs = aligned_pairs(reference, prediction)
    return "".join(r for r, _ in pairs), "".join(h for _, h in pairs)


def aligned_pairs(reference: Sequence[str], prediction: Sequence[str]) -> list[tuple[str, str]]:
    """The alignment behind the edit counts, one (reference unit, predicted unit) pair per column;
    :data:`GAP` stands for the missing side of an insertion or deletion. Units stay whole (a
    grapheme cluster is one column), which the report's character diff relies on."""
    pairs: list[tuple[str, str]] = []
    for op in Levenshtein.opcodes(reference, prediction):
        ref_part = list(reference[op.src_start:op.src_end])
        hyp_part = list(prediction[op.dest_start:op.dest_end])
        width = max(len(ref_part), len(hyp_part))
        pairs += zip(ref_part + [GAP] * (width - len(ref_part)), hyp_part + [GAP] * (width - len(hyp_part)))
    return pairs


# Scripts are looked up with the ``regex`` module's Unicode Script property. The list holds the
# scripts of living and historical writing that document collections use; a unit outside all of
# them is reported as "Other". Common (digits, punctuation, space) and Inherited (combining marks)
# are scripts in their own right in Unicode, and kraken reports them the same way.
SCRIPTS = (
    "Latin", "Greek", "Cyrillic", "Armenian", "Hebrew", "Arabic", "Syriac", "Thaana", "NKo", "Samaritan",
    "Devanagari", "Bengali", "Gurmukhi", "Gujarati", "Oriya", "Tamil", "Telugu", "Kannada", "Malayalam",
    "Sinhala", "Thai", "Lao", "Tibetan", "Myanmar", "Georgian", "Hangul", "Ethiopic", "Cherokee", "Khmer",
    "Mongolian", "Hiragana", "Katakana", "Bopomofo", "Han", "Yi", "Runic", "Ogham", "Gothic", "Coptic",
    "Glagolitic", "Tifinagh", "Old_Italic", "Cuneiform", "Egyptian_Hieroglyphs", "Javanese", "Balinese",
    "Vai", "Canadian_Aboriginal", "Common", "Inherited",
)
_SCRIPT_PATTERNS = [(name, regex.compile(rf"\p{{Script={name}}}")) for name in SCRIPTS]
_script_cache: dict[str, str] = {}


def script_of(unit: str) -> str:
    """Unicode script of a unit (of its first code point for a grapheme cluster)."""
    char = unit[:1]
    if char not in _script_cache:
        _script_cache[char] = next((name for name, pattern in _SCRIPT_PATTERNS if pattern.match(char)), "Other")
    return _script_cache[char]


def _by_script(counts: Counter) -> Counter:
    out: Counter = Counter()
    for unit, count in counts.items():
        out[script_of(unit)] += count
    return out
