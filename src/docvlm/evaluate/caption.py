"""Caption metrics for general-ability checks: BLEU-4 and CIDEr-D in pure Python (no Java).

Both follow coco-caption (tylin/coco-caption ``pycocoevalcap``; CIDEr-D as in vrama91/cider
``ciderD_scorer.py``), the code behind published COCO caption numbers:

- BLEU-4 is corpus-level: clipped n-gram matches and candidate n-grams summed over the corpus,
  geometric mean of the four precisions, brevity penalty exp(1 - r/c) when the candidate corpus is
  shorter, r summing for each sample the reference length closest to its candidate (ties: the
  shorter). coco-caption's 1e-15 / 1e-9 guards against zero counts are kept.
- CIDEr-D: TF-IDF n-gram vectors (n = 1..4) with document frequencies counted over the
  *references of the scored corpus*, cosine similarity with clipping of the candidate's weights by
  the reference's, a Gaussian length penalty exp(-(l_c - l_r)^2 / (2 * 6^2)), mean over n and over
  references, times 10. The "length" coco-caption uses there is its bigram count, kept as is.

Tokenization (``tokenizer``): coco-caption runs the Stanford PTB tokenizer (Java) and drops
punctuation tokens. ``ptb`` (the default) reproduces that in pure Python (:mod:`docvlm.evaluate.ptb`:
``man's`` -> ``man 's``, ``don't`` -> ``do n't``, ``t-shirt`` and ``3.5`` kept whole ...);
``whitespace`` only splits on whitespace, which is exactly what coco-caption's scorers do with
text that is already PTB-tokenized (e.g. by pycocoevalcap's ``PTBTokenizer``); ``simple``, docvlm's
earlier rule, lower-cases, turns every Unicode punctuation character into a space and splits (not
coco-caption's: ``man's`` -> ``man s``, ``t-shirt`` -> ``t shirt``). With the same tokens the
scores equal pycocoevalcap's ``Bleu`` and ``Cider`` to 1e-12 (``tests/test_caption_reference.py``).
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter, defaultdict
from functools import lru_cache
from typing import Sequence

import numpy as np

from docvlm.evaluate.ptb import ptb_tokenize

MAX_N = 4
SIGMA = 6.0
_TINY, _SMALL = 1e-15, 1e-9


TOKENIZERS = ("ptb", "whitespace", "simple")


def tokenize(text: str, tokenizer: str = "ptb") -> list[str]:
    """The caption's tokens under one of :data:`TOKENIZERS` (see the module docstring)."""
    return list(_cached_tokens(text, tokenizer))


@lru_cache(maxsize=1 << 16)
def _cached_tokens(text: str, tokenizer: str) -> tuple[str, ...]:
    # BLEU-4, CIDEr-D and METEOR each tokenize the same predictions and references; the PTB rules
    # are most of a caption suite's scoring time, so each text is tokenized once.
    return tuple(_tokens(text, tokenizer))


def _tokens(text: str, tokenizer: str) -> list[str]:
    if tokenizer == "ptb":
        # coco-caption's scorers split the tokenizer's output with str.split(), which also splits
        # the U+00A0 inside a PTB token such as "3 1/2".
        return [part for token in ptb_tokenize(text) for part in token.split()]
    if tokenizer == "whitespace":
        return text.split()
    if tokenizer == "simple":
        text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text.lower())
        return text.split()
    raise ValueError(f"caption tokenizer must be one of {TOKENIZERS}, not {tokenizer!r}")


def ngrams(tokens: Sequence[str], n: int = MAX_N) -> Counter:
    counts: Counter = Counter()
    for k in range(1, n + 1):
        for i in range(len(tokens) - k + 1):
            counts[tuple(tokens[i:i + k])] += 1
    return counts


# --------------------------------------------------------------------------------------------
# BLEU-4

BLEU_STATS = 2 * MAX_N + 2
"""Per-sample sufficient statistics: matches 1..4, candidate n-grams 1..4, candidate length,
closest reference length. Corpus BLEU is a function of their sums, so a bootstrap resample is a
weighted sum of these rows."""


def bleu_stats(prediction: str, references: Sequence[str], tokenizer: str = "ptb") -> np.ndarray:
    candidate = tokenize(prediction, tokenizer)
    tokenized = [tokenize(r, tokenizer) for r in references]
    counts = ngrams(candidate)
    max_ref: dict = defaultdict(int)
    for reference in tokenized:
        for gram, count in ngrams(reference).items():
            max_ref[gram] = max(max_ref[gram], count)
    stats = np.zeros(BLEU_STATS)
    for gram, count in counts.items():
        stats[len(gram) - 1] += min(count, max_ref.get(gram, 0))
    for k in range(MAX_N):
        stats[MAX_N + k] = max(0, len(candidate) - k)
    stats[2 * MAX_N] = len(candidate)
    stats[2 * MAX_N + 1] = min((abs(len(r) - len(candidate)), len(r)) for r in tokenized)[1] if tokenized else 0
    return stats


def bleu_from_stats(sums: np.ndarray) -> np.ndarray:
    """Corpus BLEU-4 from summed statistics; works on one row or a batch of rows (last axis)."""
    sums = np.asarray(sums, dtype=float)
    correct, guess = sums[..., :MAX_N], sums[..., MAX_N:2 * MAX_N]
    log_precision = np.log((correct + _TINY) / (guess + _SMALL)).mean(axis=-1)
    ratio = (sums[..., 2 * MAX_N] + _TINY) / (sums[..., 2 * MAX_N + 1] + _SMALL)
    brevity = np.where(ratio < 1, 1 - 1 / np.minimum(ratio, 1), 0.0)
    return np.exp(log_precision + brevity)


def bleu4(predictions: Sequence[str], references: Sequence[Sequence[str]], tokenizer: str = "ptb") -> float:
    stats = np.sum([bleu_stats(p, r, tokenizer) for p, r in zip(predictions, references)], axis=0)
    return float(bleu_from_stats(stats))


# --------------------------------------------------------------------------------------------
# CIDEr-D


def cider_d_scores(predictions: Sequence[str], references: Sequence[Sequence[str]],
                   tokenizer: str = "ptb") -> list[float]:
    """Per-sample CIDEr-D; the corpus score is their mean."""
    candidates = [ngrams(tokenize(p, tokenizer)) for p in predictions]
    reference_counts = [[ngrams(tokenize(r, tokenizer)) for r in refs] for refs in references]
    document_frequency: Counter = Counter()
    for refs in reference_counts:
        document_frequency.update({gram for counts in refs for gram in counts})
    log_corpus = math.log(float(len(reference_counts))) if reference_counts else 0.0

    def vector(counts: Counter):
        vec = [dict() for _ in range(MAX_N)]
        norm = [0.0] * MAX_N
        length = 0
        for gram, tf in counts.items():
            n = len(gram) - 1
            weight = tf * (log_corpus - math.log(max(1.0, document_frequency[gram])))
            vec[n][gram] = weight
            norm[n] += weight * weight
            if n == 1:  # coco-caption counts bigrams as the "length" (see module docstring)
                length += tf
        return vec, [math.sqrt(x) for x in norm], length

    scores = []
    for candidate, refs in zip(candidates, reference_counts):
        vec, norm, length = vector(candidate)
        total = np.zeros(MAX_N)
        for ref in refs:
            vec_ref, norm_ref, length_ref = vector(ref)
            penalty = math.exp(-((length - length_ref) ** 2) / (2 * SIGMA ** 2))
            for n in range(MAX_N):
                dot = sum(min(w, vec_ref[n].get(g, 0.0)) * vec_ref[n].get(g, 0.0) for g, w in vec[n].items())
                if norm[n] and norm_ref[n]:
                    dot /= norm[n] * norm_ref[n]
                total[n] += dot * penalty
        scores.append(float(total.mean() / len(refs) * 10.0) if refs else 0.0)
    return scores


def cider_d(predictions: Sequence[str], references: Sequence[Sequence[str]], tokenizer: str = "ptb") -> float:
    scores = cider_d_scores(predictions, references, tokenizer)
    return sum(scores) / len(scores) if scores else 0.0
