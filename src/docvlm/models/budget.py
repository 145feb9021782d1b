"""Pixel budgets per sample: the size an image is resized to, and the visual tokens it becomes.

Both follow the processor's own rule (Qwen-VL's ``smart_resize`` with the image processor's
patch and merge sizes), not a copy of it, so what ``data check`` counts is what training feeds.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from docvlm.data.schema import PixelBudget
from docvlm.errors import DataError


def _area_rule(image_processor: Any):
    """The processor's resize rule as ``(height, width, min_pixels, max_pixels) -> (h, w)``, or None."""
    if not (hasattr(image_processor, "patch_size") and hasattr(image_processor, "merge_size")):
        return None
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    factor = image_processor.patch_size * image_processor.merge_size
    return lambda height, width, low, high: smart_resize(height, width, factor, min_pixels=low, max_pixels=high)


def resolved(budget: PixelBudget, default: PixelBudget) -> PixelBudget:
    return PixelBudget(budget.min_pixels if budget.min_pixels is not None else default.min_pixels,
                       budget.max_pixels if budget.max_pixels is not None else default.max_pixels)


def resized_size(image_processor: Any, size: tuple[int, int], budget: PixelBudget) -> tuple[int, int]:
    """``(width, height)`` the processor turns an image of ``size`` into under ``budget`` (resolved)."""
    rule = _area_rule(image_processor)
    if rule is None:
        raise DataError(f"{type(image_processor).__name__} has no area-based resize rule; datasets with "
                        "different min_pixels/max_pixels cannot share a batch with this model")
    try:
        height, width = rule(size[1], size[0], budget.min_pixels, budget.max_pixels)
    except ValueError as error:  # e.g. an aspect ratio above 200
        raise DataError(f"image of {size[0]}x{size[1]} cannot be resized by the processor: {error}") from None
    return width, height


def fit_to_budget(image_processor: Any, image: Image.Image, budget: PixelBudget) -> Image.Image:
    """The image resized as the processor would resize it under its own ``budget``."""
    width, height = resized_size(image_processor, image.size, budget)
    return image if (width, height) == image.size else image.resize((width, height), Image.Resampling.BICUBIC)


def visual_tokens(image_processor: Any, size: tuple[int, int], budget: PixelBudget) -> int | None:
    """Visual tokens of an image of ``size`` under a resolved ``budget``; None when unknown."""
    count = getattr(image_processor, "get_number_of_image_patches", None)
    if count is None or not hasattr(image_processor, "merge_size"):
        return None
    patches = count(size[1], size[0], {"min_pixels": budget.min_pixels, "max_pixels": budget.max_pixels})
    return patches // image_processor.merge_size ** 2
