"""Retention metrics as pure functions (numpy and NLTK, no torch).

- ``recall_at_k``: image->text and text->image Recall@k from a score matrix (higher = better
  match), the way Flickr30k/COCO retrieval is reported: an image query is a hit when *any* of its
  captions ranks in the top k; a caption query when its own image does. Ties are broken against
  the query (a tied wrong candidate ranks first), so a constant scorer earns no recall.
- ``meteor``: NLTK's METEOR (``nltk.translate.meteor_score``, alpha 0.9, beta 3, gamma 0.5, best
  over references). It is *not* the Java METEOR 1.5 of coco-caption (no paraphrase table, other
  defaults), so values are comparable with other NLTK METEOR figures only. Its synonym stage needs
  the WordNet corpus (``python -m nltk.downloader wordnet``); without it, exact and Porter-stem
  matches are used and ``meteor_synonyms()`` says so in every metrics file. NLTK also aligns a
  repeated word with its last occurrence rather than the alignment with fewest chunks.
- ``kl_divergence``: KL(p || q) per row from log-probabilities.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

RECALL_KS = (1, 5, 10)


def _rank_hits(scores: np.ndarray, positives: np.ndarray, k: int) -> np.ndarray:
    """Per query (row): does a positive candidate rank in the top ``k``? Ties count against it."""
    hits = np.zeros(len(scores), dtype=bool)
    for row, (values, positive) in enumerate(zip(scores, positives)):
        best_positive = values[positive].max()
        # Rank of the best positive = negatives scoring >= it (ties resolved pessimistically).
        better_negatives = int(np.sum(values[~positive] >= best_positive))
        hits[row] = better_negatives < k
    return hits


def recall_hits(scores: np.ndarray, text_image: Sequence[int], ks: Sequence[int] = RECALL_KS) -> dict[str, np.ndarray]:
    """Per-query hits (0/1) of image->text (``i2t_r@k``, one per image) and text->image
    (``t2i_r@k``, one per caption). ``scores[i, t]``: how well caption ``t`` matches image ``i``;
    ``text_image[t]``: the image caption ``t`` belongs to."""
    scores = np.asarray(scores, dtype=float)
    owner = np.asarray(text_image)
    if scores.shape != (scores.shape[0], len(owner)):
        raise ValueError(f"scores {scores.shape} do not match {len(owner)} captions")
    images = np.arange(scores.shape[0])
    image_positives = owner[None, :] == images[:, None]  # (images, texts)
    if not image_positives.any(axis=1).all():
        raise ValueError("every image needs at least one caption")
    out = {}
    for k in ks:
        out[f"i2t_r@{k}"] = _rank_hits(scores, image_positives, k).astype(float)
        out[f"t2i_r@{k}"] = _rank_hits(scores.T, image_positives.T, k).astype(float)
    return out


def recall_at_k(scores: np.ndarray, text_image: Sequence[int], ks: Sequence[int] = RECALL_KS) -> dict[str, float]:
    """Recall@k (fraction of queries with a hit) in both directions."""
    return {name: float(hits.mean()) for name, hits in recall_hits(scores, text_image, ks).items()}


class _NoSynonyms:
    """Stands in for WordNet when its corpus is not installed: no synonym matches."""

    def synsets(self, *args, **kwargs) -> list:
        return []


def _wordnet():
    from nltk.corpus import wordnet

    try:
        wordnet.ensure_loaded()
        return wordnet
    except LookupError:
        return _NoSynonyms()


_WORDNET = None


def meteor_synonyms() -> str:
    """Which synonym stage ``meteor`` uses: ``wordnet`` or ``none`` (corpus not installed)."""
    global _WORDNET
    if _WORDNET is None:
        _WORDNET = _wordnet()
    return "none" if isinstance(_WORDNET, _NoSynonyms) else "wordnet"


def meteor(prediction: str, references: Sequence[str]) -> float:
    """NLTK METEOR of one caption against its references (whitespace tokens, lower-cased)."""
    from nltk.translate.meteor_score import meteor_score

    meteor_synonyms()
    hypothesis = prediction.split()
    refs = [r.split() for r in references if r.split()]
    if not refs or not hypothesis:
        return 0.0
    return float(meteor_score(refs, hypothesis, wordnet=_WORDNET))


def kl_divergence(log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """KL(p || q) along the last axis, from natural-log probabilities (``-inf`` allowed where p = 0)."""
    log_p, log_q = np.asarray(log_p, dtype=float), np.asarray(log_q, dtype=float)
    p = np.exp(log_p)
    with np.errstate(invalid="ignore"):
        terms = np.where(p > 0, p * (log_p - log_q), 0.0)
    return terms.sum(axis=-1)


def retention(base: float | None, tuned: float | None) -> float | None:
    """tuned / base for a higher-is-better metric; ``None`` when the base scores 0 (undefined)."""
    if base is None or tuned is None or base == 0:
        return None
    return tuned / base
