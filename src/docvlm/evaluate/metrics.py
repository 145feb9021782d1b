"""Text-recognition metrics as pure functions (no torch import).

CER and WER are micro-averaged over the corpus, as kraken's ``ketos test`` and torchmetrics do:
the edit operations of all samples summed, divided by the summed reference length. A corpus of
long lines therefore weighs each character equally, not each line. Units are Unicode code points
and whitespace-separated words; no normalization is applied here (callers state what they did).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from rapidfuzz.distance import Levenshtein


@dataclass(frozen=True)
class ErrorRate:
    rate: float
    """Edits / reference length; ``None`` in JSON when the references are all empty."""
    edits: int
    reference_length: int

    def as_dict(self) -> dict:
        return asdict(self)


def _rate(edits: int, length: int) -> float:
    if length == 0:
        # No reference units: only a perfect (empty) prediction has a defined rate.
        return 0.0 if edits == 0 else float("inf")
    return edits / length


def words(text: str) -> list[str]:
    return text.split()


def error_rate(references: Sequence[Sequence], hypotheses: Sequence[Sequence]) -> ErrorRate:
    """Corpus edit rate over paired sequences (strings for characters, lists for words)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} predictions")
    edits = sum(Levenshtein.distance(r, h) for r, h in zip(references, hypotheses))
    length = sum(len(r) for r in references)
    return ErrorRate(_rate(edits, length), edits, length)


def cer(references: Sequence[str], hypotheses: Sequence[str]) -> ErrorRate:
    return error_rate(references, hypotheses)


def wer(references: Sequence[str], hypotheses: Sequence[str]) -> ErrorRate:
    return error_rate([words(r) for r in references], [words(h) for h in hypotheses])


def sample_cer(reference: str, hypothesis: str) -> float:
    return _rate(Levenshtein.distance(reference, hypothesis), len(reference))


def transcription_scores(references: Sequence[str], hypotheses: Sequence[str]) -> dict:
    """CER, WER and the sample count, as stored in ``metrics/<split>.json``."""
    return {
        "n": len(references),
        "cer": cer(references, hypotheses).as_dict(),
        "wer": wer(references, hypotheses).as_dict(),
    }
