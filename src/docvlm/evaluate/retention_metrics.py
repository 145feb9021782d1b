"""Metrics of general ability for retention checks (issue 12): METEOR, image-text retrieval
Recall@K, and label-free drift (KL, cross-entropy). Pure functions, numpy only (no torch). The one
implementation: the scoring registry (:mod:`docvlm.evaluate.scoring`) and ``docvlm retention``
(:mod:`docvlm.retention.suites`, :mod:`docvlm.retention.run`) both call these.

- METEOR: NLTK's ``nltk.translate.meteor_score`` (Lavie & Agarwal 2007: exact, Porter-stem and
  WordNet-synonym matching, F-mean with alpha 0.9, fragmentation penalty gamma 0.5, beta 3; best
  reference), on the caption tokenizer of :mod:`docvlm.evaluate.caption` (lower case, punctuation
  split off, as for BLEU-4 and CIDEr-D; NLTK expects tokens, and "sat." must match "sat"); the
  corpus score is the
  mean of the per-caption scores. It is *not* the Java METEOR 1.5 that coco-caption runs
  (different matcher tables, paraphrase stage, parameters and corpus aggregation), so its numbers
  are not comparable with published COCO METEOR. NLTK reads WordNet from its data folder, which
  no pip package installs and which cannot be downloaded at run time here: when WordNet is not
  found, synonym matching is off (exact and stem matches only) and the metrics file says so
  (``wordnet: false``). Install it with ``python -m nltk.downloader wordnet`` to turn it on.
- Retrieval Recall@K from a score matrix (images x texts; higher = better match, e.g. the model's
  mean log-likelihood of a caption given an image), images with several captions each:
  image->text: an image is a hit at K when one of its own captions is among the K best texts;
  text->image: a caption is a hit at K when its image is among the K best images. Ties count
  against the model: the rank of the right answer is the number of wrong candidates scoring at
  least as high, so a constant score matrix finds nothing (an argsort would break ties by index).
- Drift: mean per-token KL(p || q) between two models' next-token distributions given as
  log-probabilities (p = base, q = tuned), averaged over all valid tokens of all samples (micro),
  and the cross-entropy of q on given tokens (the base model's greedy answers).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from docvlm.evaluate.caption import tokenize

RECALL_KS = (1, 5, 10)


# --------------------------------------------------------------------------------------------
# METEOR (NLTK)


class _NoSynonyms:
    """Stands in for NLTK's WordNet reader when its data is absent: no synonym matches."""

    @staticmethod
    def synsets(word: str) -> list:
        return []


_WORDNET: object | None = None


def wordnet_reader():
    """NLTK's WordNet when its data is installed, else :class:`_NoSynonyms` (looked up once)."""
    global _WORDNET
    if _WORDNET is None:
        from nltk.corpus import wordnet

        try:
            wordnet.ensure_loaded()
            _WORDNET = wordnet
        except LookupError:
            _WORDNET = _NoSynonyms()
    return _WORDNET


def has_wordnet() -> bool:
    return not isinstance(wordnet_reader(), _NoSynonyms)


def meteor_synonyms() -> str:
    """Which synonym stage ``meteor`` uses, as ``docvlm retention`` states it: ``wordnet`` or ``none``."""
    return "wordnet" if has_wordnet() else "none"


def meteor(prediction: str, references: Sequence[str], tokenizer: str = "ptb") -> float:
    """NLTK METEOR of one caption against its references (best reference); 0 without references.
    Tokenized as BLEU-4 and CIDEr-D (:func:`docvlm.evaluate.caption.tokenize`)."""
    from nltk.translate.meteor_score import meteor_score

    tokenized = [t for t in (tokenize(r, tokenizer) for r in references) if t]
    if not tokenized:  # no (non-empty) reference: nothing to match
        return 0.0
    return float(meteor_score(tokenized, tokenize(prediction, tokenizer), wordnet=wordnet_reader()))


# --------------------------------------------------------------------------------------------
# Retrieval


def _check_matrix(scores: np.ndarray, text_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=float)
    text_image = np.asarray(text_image, dtype=int)
    if scores.ndim != 2 or scores.shape[1] != len(text_image):
        raise ValueError(f"scores must be images x texts with one image index per text; got {scores.shape} "
                         f"and {len(text_image)} indices")
    if len(text_image) and (text_image.min() < 0 or text_image.max() >= scores.shape[0]):
        raise ValueError("an image index of a text is outside the score matrix")
    if np.isnan(scores).any():
        raise ValueError("the score matrix holds NaN")
    return scores, text_image


def image_to_text_ranks(scores: np.ndarray, text_image: Sequence[int]) -> np.ndarray:
    """Per image: how many texts of *other* images score at least as high as its best caption."""
    scores, text_image = _check_matrix(scores, text_image)
    ranks = np.empty(scores.shape[0], dtype=int)
    for image in range(scores.shape[0]):
        own = text_image == image
        if not own.any():
            raise ValueError(f"image {image} has no caption")
        best = scores[image, own].max()
        ranks[image] = int((scores[image, ~own] >= best).sum())
    return ranks


def text_to_image_ranks(scores: np.ndarray, text_image: Sequence[int]) -> np.ndarray:
    """Per text: how many *other* images score at least as high as its own image."""
    scores, text_image = _check_matrix(scores, text_image)
    columns = np.arange(scores.shape[1])
    right = scores[text_image, columns]
    at_least = (scores >= right[None, :]).sum(axis=0)
    return at_least - 1  # minus its own image


def recall_at_k(ranks: np.ndarray, ks: Sequence[int] = RECALL_KS) -> dict[int, float]:
    """Share of queries whose right answer has rank < k (0-based: rank 0 is the top)."""
    ranks = np.asarray(ranks)
    return {k: float((ranks < k).mean()) if len(ranks) else float("nan") for k in ks}


def retrieval_recall(scores: np.ndarray, text_image: Sequence[int], ks: Sequence[int] = RECALL_KS) -> dict:
    """``{"image_to_text": {k: recall}, "text_to_image": {k: recall}}``."""
    return {"image_to_text": recall_at_k(image_to_text_ranks(scores, text_image), ks),
            "text_to_image": recall_at_k(text_to_image_ranks(scores, text_image), ks)}


def recall_hits(scores: np.ndarray, text_image: Sequence[int], ks: Sequence[int] = RECALL_KS) -> dict[str, np.ndarray]:
    """Per-query hits (0/1) for a bootstrap: ``i2t_r@k`` one per image, ``t2i_r@k`` one per text."""
    i2t, t2i = image_to_text_ranks(scores, text_image), text_to_image_ranks(scores, text_image)
    out = {}
    for k in ks:
        out[f"i2t_r@{k}"] = (i2t < k).astype(float)
        out[f"t2i_r@{k}"] = (t2i < k).astype(float)
    return out


# --------------------------------------------------------------------------------------------
# Drift between two models' next-token distributions


def token_kl(p_logprobs: np.ndarray, q_logprobs: np.ndarray) -> np.ndarray:
    """KL(p || q) per position from log-probabilities over the vocabulary (last axis)."""
    p_logprobs, q_logprobs = np.asarray(p_logprobs, dtype=float), np.asarray(q_logprobs, dtype=float)
    if p_logprobs.shape != q_logprobs.shape:
        raise ValueError(f"log-probabilities differ in shape: {p_logprobs.shape} vs {q_logprobs.shape}")
    p = np.exp(p_logprobs)
    with np.errstate(invalid="ignore"):
        # 0 * log(0 / q) = 0: positions where p has no mass add nothing, whatever q says.
        terms = np.where(p > 0, p * (p_logprobs - q_logprobs), 0.0)
    return terms.sum(axis=-1)


def mean_token_kl(p_logprobs: Sequence[np.ndarray], q_logprobs: Sequence[np.ndarray]) -> dict:
    """Mean per-token KL(p || q) over all tokens of all samples (each sample: tokens x vocab), and
    each sample's own mean (for a bootstrap)."""
    per_sample, total, count = [], 0.0, 0
    for p, q in zip(p_logprobs, q_logprobs, strict=True):
        kl = token_kl(p, q)
        total += float(kl.sum())
        count += kl.size
        per_sample.append(float(kl.mean()) if kl.size else None)
    return {"value": total / count if count else None, "tokens": count, "per_sample": per_sample}


def mean_cross_entropy(q_logprobs: Sequence[np.ndarray], tokens: Sequence[Sequence[int]]) -> dict:
    """Mean per-token cross-entropy (nats) of q on the given tokens (e.g. the base's greedy answer)."""
    per_sample, total, count = [], 0.0, 0
    for q, ids in zip(q_logprobs, tokens, strict=True):
        q, ids = np.asarray(q, dtype=float), np.asarray(ids, dtype=int)
        if q.shape[:-1] != ids.shape:
            raise ValueError(f"{ids.shape} tokens for log-probabilities of shape {q.shape}")
        nll = -np.take_along_axis(q, ids[..., None], axis=-1)[..., 0]
        total += float(nll.sum())
        count += nll.size
        per_sample.append(float(nll.mean()) if nll.size else None)
    return {"value": total / count if count else None, "tokens": count, "per_sample": per_sample}


# --------------------------------------------------------------------------------------------
# Retention


def retention(base: float | None, tuned: float | None) -> float | None:
    """tuned / base for a higher-is-better metric; ``None`` when either is missing or the base scores 0."""
    if base is None or tuned is None or base == 0:
        return None
    return tuned / base
