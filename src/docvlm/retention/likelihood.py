"""Answers scored under a model by teacher forcing: per-token log-probabilities of given targets.

Every batch is built by the training collator, so the scored span is exactly what training would
put the loss on (the answer and its end-of-turn token), after the same prompt and image tokens.
Used by multiple-choice suites (option likelihood), retrieval (caption likelihood given an image)
and the drift probes (KL between the base and the tuned model's next-token distributions).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from docvlm.data.schema import Sample
from docvlm.models.prompting import ChatFormat, TrainingCollator


def with_target(sample: Sample, target: str) -> Sample:
    """The same image and prompt with another answer."""
    return Sample(record=dataclasses.replace(sample.record, target=target, references=()), image=sample.image)


def batches(chat: ChatFormat, samples: Sequence[Sample], batch_size: int) -> Iterator[tuple[range, dict]]:
    """Collated batches (``labels`` = answer tokens) with the sample indices they hold."""
    collator = TrainingCollator(chat)
    for start in range(0, len(samples), batch_size):
        rows = range(start, min(start + batch_size, len(samples)))
        yield rows, collator([samples[i] for i in rows])


@torch.no_grad()
def labelled_log_probs(model: Any, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-softmax (float32) at every labelled position, the label there, and its batch row.

    The output head runs at the labelled positions only (``answer_logits``, as training's loss
    does): a page's prompt holds thousands of image tokens, and logits over a real vocabulary
    (151 936 rows for Qwen2-VL) at every one of them would take gigabytes per batch. A
    decoder-only model predicts token t+1 at position t, an encoder-decoder's decoder output at t
    label t; ``labelled_positions`` lines them up (which kind the model is, it tells itself).
    """
    from docvlm.train.losses import answer_logits

    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    labels = batch["labels"]
    was_training = model.training
    model.eval()
    try:
        found = answer_logits(model, {k: v for k, v in batch.items() if k != "labels"}, labels)
    finally:
        model.train(was_training)
    mask = found["mask"]
    rows = torch.arange(labels.shape[0], device=device)[:, None].expand_as(mask)[mask]
    return torch.log_softmax(found["logits"], dim=-1), found["targets"], rows


def token_sums(log_probs: torch.Tensor, targets: torch.Tensor, rows: torch.Tensor, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Per batch row: the summed log-probability of its target tokens and their count."""
    picked = log_probs.gather(1, targets[:, None])[:, 0]
    sums = torch.zeros(n_rows, device=picked.device).index_add_(0, rows, picked)
    counts = torch.zeros(n_rows, device=picked.device).index_add_(0, rows, torch.ones_like(picked))
    return sums.cpu().numpy(), counts.cpu().numpy()


def mean_log_likelihood(model: Any, chat: ChatFormat, samples: Sequence[Sample], batch_size: int) -> np.ndarray:
    """Mean per-token log-likelihood of each sample's target (its answer + end-of-turn token)."""
    out = np.zeros(len(samples))
    for rows, batch in batches(chat, samples, batch_size):
        log_probs, targets, row_of = labelled_log_probs(model, batch)
        sums, counts = token_sums(log_probs, targets, row_of, len(rows))
        out[rows.start:rows.stop] = sums / np.maximum(counts, 1)
    return out


def drift_stats(tuned: Any, base_logits: Callable[[dict], tuple], chat: ChatFormat, samples: Sequence[Sample],
                batch_size: int) -> np.ndarray:
    """Per sample: summed KL(base || tuned) over its target tokens, summed tuned and base
    cross-entropy, and the token count (columns kl, tuned_ce, base_ce, tokens).

    ``base_logits(batch)`` returns the base model's ``labelled_log_probs`` for the same batch
    (adapters disabled, or a second model).
    """
    out = np.zeros((len(samples), 4))
    for rows, batch in batches(chat, samples, batch_size):
        log_q, targets, row_of = labelled_log_probs(tuned, batch)
        log_p, _, _ = base_logits(batch)
        kl = (log_p.exp() * (log_p - log_q)).sum(dim=-1)
        n = len(rows)
        per_row = torch.zeros((n, 4), device=kl.device)
        per_row[:, 0].index_add_(0, row_of, kl)
        per_row[:, 1].index_add_(0, row_of, -log_q.gather(1, targets[:, None])[:, 0])
        per_row[:, 2].index_add_(0, row_of, -log_p.gather(1, targets[:, None])[:, 0])
        per_row[:, 3].index_add_(0, row_of, torch.ones_like(kl))
        out[rows.start:rows.stop] = per_row.cpu().numpy()
    return out
