"""The one sample shape every source is read into.

A ``Record`` is what indexing a source produces: ids, text and a *reference* to the image (a file
path or a row of a Hugging Face dataset), never decoded pixels, so a 100 000-line dataset costs
only its text in memory. A ``Sample`` is a record with its image decoded, made on demand.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from PIL import Image, ImageDraw

from docvlm.errors import DataError


@dataclass(frozen=True)
class PixelBudget:
    """Image area bounds after resizing; ``None`` keeps the processor's own value."""

    min_pixels: int | None = None
    max_pixels: int | None = None


@dataclass(frozen=True, slots=True)
class LineCrop:
    """A text line inside a page image: cropped when the sample is loaded, never at indexing."""

    page: str
    """Path of the page image."""
    box: tuple[int, int, int, int]
    """``(left, top, right, bottom)`` in page pixels, padding included, clipped to the page."""
    polygon: tuple[tuple[int, int], ...] | None = None
    """The line outline in page pixels; with ``mask`` set, pixels outside it are painted white."""
    mask: bool = False
    baseline: tuple[tuple[int, int], ...] | None = None
    region_type: str | None = None
    """The enclosing region's type (PAGE ``TextRegion@type``, ALTO ``TextBlock``)."""


@dataclass
class Record:
    id: str
    target: str
    image_ref: Any
    """A path (str), a ``LineCrop`` or a row index into the source's dataset; resolved by ``load_image``."""
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

    options: tuple[str, ...] = ()
    """Multiple choice: the options offered (``options_column``)."""

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
    adjusted: Counter = field(default_factory=Counter)
    """Samples kept after a repair (e.g. a polygon clipped to its page), by kind."""

    def skip(self, reason: str, message: str) -> None:
        self.skipped[reason] += 1
        if len(self.examples) < 20:
            self.examples.append(message)

    def as_dict(self) -> dict:
        return {"total": self.total, "kept": self.kept, "skipped": dict(self.skipped),
                "skipped_total": sum(self.skipped.values()), "examples": self.examples,
                "adjusted": dict(self.adjusted)}


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


@lru_cache(maxsize=4)
def _page_image(path: str) -> Image.Image:
    # Consecutive lines usually share a page; keeping a few decoded pages avoids re-decoding it.
    # Keyed on the path alone: the line's own context is added to an error by the caller.
    return open_image(path, f"page image {path}")


def crop_line(crop: LineCrop, where: str) -> Image.Image:
    """The line image: the page cut to ``crop.box``, optionally masked outside the polygon."""
    try:
        page = _page_image(crop.page)
    except BadSample as bad:
        raise BadSample(bad.reason, f"{where}: {bad}") from None
    line = page.crop(crop.box)
    if crop.mask and crop.polygon:
        left, top = crop.box[0], crop.box[1]
        mask = Image.new("L", line.size, 0)
        ImageDraw.Draw(mask).polygon([(x - left, y - top) for x, y in crop.polygon], fill=255)
        white = Image.new("RGB", line.size, (255, 255, 255))
        line = Image.composite(line, white, mask)
    return line


def resolve_inside(root: Path, relative: str, where: str, allow_outside: bool) -> Path:
    """``root / relative``, refusing a path that leaves ``root`` unless the config allows it.

    A manifest from elsewhere must not make the toolkit read arbitrary files (``../../``).
    """
    path = (root / relative).resolve()
    if not allow_outside and not path.is_relative_to(root.resolve()):
        raise BadSample("outside_root", f"{where}: image path '{relative}' leaves the dataset folder {root}; "
                                        "set allow_outside_root: true for this dataset to accept it")
    return path


ImageLoader = Callable[[Record], Image.Image]
