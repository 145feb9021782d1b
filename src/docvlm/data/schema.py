"""The one sample shape every source is read into.

A ``Record`` is what indexing a source produces: ids, text and a *reference* to the image (a file
path or a row of a Hugging Face dataset), never decoded pixels, so a 100 000-line dataset costs
only its text in memory. A ``Sample`` is a record with its image decoded, made on demand.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from PIL import Image

from docvlm.errors import DataError


@dataclass(frozen=True)
class PixelBudget:
    """Image area bounds after resizing; ``None`` keeps the processor's own value."""

    min_pixels: int | None = None
    max_pixels: int | None = None


@dataclass
class Record:
    id: str
    target: str
    image_ref: Any
    """A path (str) or a row index into the source's dataset; resolved by ``load_image``."""
    prompt: str
    dataset: str
    task: str
    budget: PixelBudget
    group: str | None = None
    language: str | None = None
    where: str = ""
    """Human-readable origin (file and line, or dataset and split) for error messages."""
    references: tuple[str, ...] = ()
    """Every acceptable answer when there are several (VQA); empty means ``(target,)``. The model
    is trained on ``target``; metrics such as ANLS score against all of them."""

    @property
    def all_references(self) -> tuple[str, ...]:
        return self.references or ((self.target,) if self.target else ())


@dataclass
class Sample:
    record: Record
    image: Image.Image

    # Shortcuts so collators read naturally.
    @property
    def id(self) -> str:
        return self.record.id

    @property
    def prompt(self) -> str:
        return self.record.prompt

    @property
    def target(self) -> str:
        return self.record.target


@dataclass
class SkipReport:
    """Counts of samples dropped under ``on_bad_sample: skip``, by reason, with a few examples."""

    total: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def skip(self, reason: str, message: str) -> None:
        self.skipped[reason] += 1
        if len(self.examples) < 20:
            self.examples.append(message)

    def as_dict(self) -> dict:
        return {"total": self.total, "kept": self.kept, "skipped": dict(self.skipped),
                "skipped_total": sum(self.skipped.values()), "examples": self.examples}


class BadSample(DataError):
    """A sample that cannot be used; ``reason`` is a short key for counting skips."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def open_image(path_or_file: Any, where: str) -> Image.Image:
    """Decode an image to RGB, turning every PIL/OS failure into a message that names it."""
    try:
        with Image.open(path_or_file) as image:
            image.load()
            return image.convert("RGB")
    except FileNotFoundError:
        raise BadSample("missing_image", f"{where}: image not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise BadSample("unreadable_image", f"{where}: image cannot be read ({error})") from None


def check_image_header(path: str, where: str) -> None:
    """Cheap check that a file exists and is an image: reads the header, decodes no pixels."""
    try:
        with Image.open(path) as image:
            image.size  # noqa: B018 - the header parse is the check
    except FileNotFoundError:
        raise BadSample("missing_image", f"{where}: image not found") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise BadSample("unreadable_image", f"{where}: image cannot be read ({error})") from None


ImageLoader = Callable[[Record], Image.Image]
