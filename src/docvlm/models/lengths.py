"""Sequence lengths estimated without decoding an image: for length-grouped training batches and
length-ordered prediction batches.

An image's visual tokens follow from its header (or a line's crop box) and the pixel budget by the
processor's own rule (``models.budget.visual_tokens``); the answer's tokens from the tokenizer.
"""

from __future__ import annotations

import logging
from typing import Any

from PIL import Image

from docvlm.data.schema import LineCrop, Record

log = logging.getLogger(__name__)


def image_size(record: Record) -> tuple[int, int] | None:
    """``(width, height)`` of a record's image from its header or crop box; None when unknown
    without decoding (rows of a Hugging Face dataset) or unreadable (skipped when loaded)."""
    ref = record.image_ref
    if isinstance(ref, LineCrop):
        left, top, right, bottom = ref.box
        return right - left, bottom - top
    if isinstance(ref, str):
        try:
            with Image.open(ref) as image:  # reads the header only
                return image.size
        except (OSError, ValueError, Image.DecompressionBombError):
            return None
    return None


def visual_token_counts(records: list[Record], processor: Any, spec: Any,
                        sizes: list[tuple[int, int]] | None = None) -> list[int | None]:
    """Visual tokens of each record's image at its budget (resolved against the processor's);
    None where the size is unknown or the family has no area-based budget. ``sizes``: the images'
    (width, height) when already decoded (else read from the headers)."""
    from docvlm.models.budget import resolved, visual_tokens
    from docvlm.models.prompting import pixel_budget_of

    default = pixel_budget_of(processor, spec)
    counts = []
    for record, size in zip(records, sizes or [image_size(record) for record in records]):
        try:
            counts.append(visual_tokens(processor.image_processor, size, resolved(record.budget, default))
                          if size else None)
        except ValueError:  # e.g. an aspect ratio the processor refuses: named when the sample is read
            counts.append(None)
    return counts


def sample_lengths(records: list[Record], processor: Any, spec: Any) -> list[int]:
    """Estimated training length of each record: visual tokens + answer tokens. The prompt's text
    is left out: it is the same for all samples of a dataset."""
    answers = processor.tokenizer([r.target for r in records], add_special_tokens=False)["input_ids"]
    visual = visual_token_counts(records, processor, spec)
    unknown = sum(v is None for v in visual)
    if unknown:
        log.info("%d of %d samples are grouped by answer length only (image size unknown without "
                 "decoding, or no area-based budget)", unknown, len(records))
    return [(v or 0) + len(a) for v, a in zip(visual, answers)]


def longest_first(visual: list[int | None]) -> list[int]:
    """Indices by expected generation cost (``visual[i]``: an image's visual tokens), largest image
    first (stable, so equal images keep their order); images of unknown size come last in their
    original order."""
    return sorted(range(len(visual)), key=lambda i: (visual[i] is None, -(visual[i] or 0)))


def generation_batches(records: list[Record], processor: Any, spec: Any, batch_size: int,
                       max_visual_tokens: int | None, sizes: list[tuple[int, int]] | None = None) -> list[list[int]]:
    """Record indices in generation batches: longest images first, at most ``batch_size`` per
    batch, and a batch closed early when its images' visual tokens would pass
    ``max_visual_tokens`` (None: no limit). Batch size 1 keeps the input order. ``sizes``: the
    images' (width, height) when already decoded (else read from the headers)."""
    if batch_size <= 1:
        return [[i] for i in range(len(records))]
    visual = visual_token_counts(records, processor, spec, sizes)
    return budget_batches(longest_first(visual), visual, batch_size, max_visual_tokens)


def budget_batches(order: list[int], visual: list[int | None], batch_size: int,
                   max_visual_tokens: int | None) -> list[list[int]]:
    """``order`` cut into consecutive batches of at most ``batch_size`` indices whose visual tokens
    (``visual[i]``; None counts as 0: unknown without decoding) sum to at most
    ``max_visual_tokens``; a single image above the limit gets a batch of its own."""
    batches: list[list[int]] = []
    current: list[int] = []
    tokens = 0
    for index in order:
        cost = visual[index] or 0
        over = max_visual_tokens is not None and current and tokens + cost > max_visual_tokens
        if len(current) == batch_size or over:
            batches.append(current)
            current, tokens = [], 0
        current.append(index)
        tokens += cost
    if current:
        batches.append(current)
    return batches
