"""The one sample shape every source is read into.

A ``Record`` is what indexing a source produces: ids, text and a *reference* to the image (a file
path or a row of a Hugging Face dataset), never decoded pixels, so a 100 000-line dataset costs
only its text in memory. A ``Sample`` is a record with its image decoded, made on demand.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
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


@dataclass(frozen=True)
class SourceRef:
    """Where a record came from inside a layout file, so that a prediction can be written back."""

    xml: str
    """Path of the PAGE-XML or ALTO file."""
    line_index: int
    """Position of the ``TextLine`` among all ``TextLine`` elements of the file, in document order."""
    element_id: str | None = None
    """The line's ``id`` (PAGE) or ``ID`` (ALTO) attribute, when it has one."""
    root: str | None = None
    """The folder the file was found under (its path below it is kept when writing back)."""


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
    source: SourceRef | None = None
    """For PAGE/ALTO lines: the file and element the line was read from."""

    options: tuple[str, ...] = ()
    """Multiple choice: the options offered (``options_column``)."""

    @property
    def all_references(self) -> tuple[str, ...]:
        return self.references or ((self.target,) if self.target else ())

    @property
    def key(self) -> tuple[str, str, str]:
        """Identifies the sample within its dataset's skip report (counted once however often met)."""
        return (self.dataset, self.id, self.where)


@dataclass
class Sample:
    record: Record
    image: Image.Image
    report: "SkipReport | None" = None
    """The skip report of the sample's dataset split, so a sample refused later (too long at
    collation) moves from kept to skipped there, once."""
    skips: tuple = ()
    """Samples skipped in a data-loader worker and replaced by this one (``docvlm.data.skips``
    markers): the collator hands them to the main process, which counts them."""

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
    unread_files: dict = field(default_factory=dict)
    """Files in a source folder that were not read, with the reason (e.g. a METS file, an ALTO
    file under ``format: page``)."""

    failed: set = field(default_factory=set, repr=False)
    """Keys of kept samples that later failed to decode; each is moved from kept to skipped once."""

    def skip(self, reason: str, message: str) -> None:
        self.skipped[reason] += 1
        if len(self.examples) < 20:
            self.examples.append(message)

    def skip_kept(self, key: Any, reason: str, message: str) -> bool:
        """A sample counted as kept at indexing turned out bad (decode time): count it as skipped
        instead, once however often it is asked for (epochs, evaluations). True the first time."""
        if key in self.failed:
            return False
        self.failed.add(key)
        self.kept -= 1
        self.skip(reason, message)
        return True

    def one_line(self, label: str) -> str:
        """``label: kept K of T; skipped S (reason: n, ...)`` for the console."""
        return count_line(label, self.as_dict())

    def as_dict(self) -> dict:
        return {"total": self.total, "kept": self.kept, "skipped": dict(self.skipped),
                "skipped_total": sum(self.skipped.values()), "examples": self.examples,
                "adjusted": dict(self.adjusted), "unread_files": dict(self.unread_files)}


def skip_reasons(skipped: dict[str, int]) -> str:
    """``reason: n, ...``, the most frequent reason first."""
    return ", ".join(f"{reason}: {n}" for reason, n in Counter(skipped).most_common())


def count_line(label: str, counts: dict) -> str:
    """``label: kept K of T; skipped S (reason: n, ...)`` from :meth:`SkipReport.as_dict` counts:
    the one line per split every command prints."""
    skipped = counts["skipped_total"]
    return (f"{label}: kept {counts['kept']} of {counts['total']}"
            + (f"; skipped {skipped} ({skip_reasons(counts['skipped'])})" if skipped else ""))


class BadSample(DataError):
    """A sample that cannot be used; ``reason`` is a short key for counting skips."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ImageChecks:
    """Geometry limits a sample image must meet (``data.min_image_side``, ``data.max_aspect_ratio``,
    ``data.wide_images``); a failing image is a ``BadSample`` (an error, or a counted skip)."""

    min_side: int = 8
    max_aspect_ratio: float = 200.0
    wide_images: str = "reject"
    """``reject`` or ``pad`` (pad the short side with white up to ``max_aspect_ratio``)."""


def _bomb_message(where: str, error: Exception) -> BadSample:
    return BadSample("decompression_bomb", f"{where}: image too large to decode safely ({error}); "
                                           "PIL refuses images above 2 x Image.MAX_IMAGE_PIXELS")


def open_image(path_or_file: Any, where: str) -> Image.Image:
    """Decode an image to 8-bit RGB, turning every PIL/OS failure into a message that names it.

    Transparency is composited on white (a text line with a transparent background is black on
    black otherwise) and 16-bit / 32-bit greyscale is scaled to 8 bits (PIL's ``convert`` clips it,
    which turns a 16-bit scan into a black-and-white one).
    """
    try:
        with Image.open(path_or_file) as image:
            image.load()
            return to_rgb(image)
    except FileNotFoundError:
        raise BadSample("missing_image", f"{where}: image not found") from None
    except Image.DecompressionBombError as error:
        raise _bomb_message(where, error) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise BadSample("unreadable_image", f"{where}: image cannot be read ({error})") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB of any PIL mode: alpha composited on white, high bit depths scaled, not clipped."""
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        return Image.fromarray(_scaled_to_8_bits(np.asarray(image)), "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info or image.mode in ("PA", "LA", "La", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image).convert("RGB")
    return image.convert("RGB")


def _scaled_to_8_bits(pixels: np.ndarray) -> np.ndarray:
    # A float image in [0, 1] is scaled by 255; integers by the bit depth they use: 8 (kept),
    # 16 (the PNG/TIFF case, / 257 maps 65535 to 255 exactly) or more (scaled by their maximum).
    values = pixels.astype(np.float64)
    top = float(values.max()) if values.size else 0.0
    if pixels.dtype.kind == "f" and top <= 1.0:
        scale = 255.0
    elif top <= 255:
        scale = 1.0
    elif top <= 65535:
        scale = 1 / 257
    else:
        scale = 255.0 / top
    return np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)


def check_image_header(path: str, where: str) -> tuple[int, int]:
    """Cheap check that a file exists and is an image: reads the header, decodes no pixels."""
    try:
        return _header_size(path, *_stamp(path))
    except FileNotFoundError:
        raise BadSample("missing_image", f"{where}: image not found") from None
    except Image.DecompressionBombError as error:
        raise _bomb_message(where, error) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise BadSample("unreadable_image", f"{where}: image cannot be read ({error})") from None


def _stamp(path: str) -> tuple[int, int]:
    stat = Path(path).stat()
    return stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=1 << 17)
def _header_size(path: str, mtime: int, size: int) -> tuple[int, int]:
    # Indexing reads each header once and the geometry check reads it again: cache the size,
    # keyed on the file's modification stamp so a rewritten file is read anew.
    with Image.open(path) as image:
        return image.size


def check_geometry(size: tuple[int, int], checks: ImageChecks, where: str) -> None:
    """Refuse an image too small to hold text, or too elongated for the processors (Qwen-VL's
    raises ``absolute aspect ratio must be smaller than 200``) unless it is to be padded."""
    width, height = size
    if min(width, height) < checks.min_side:
        raise BadSample("too_small", f"{where}: image of {width}x{height} pixels is below "
                                     f"data.min_image_side ({checks.min_side})")
    if max(width, height) / min(width, height) > checks.max_aspect_ratio and checks.wide_images != "pad":
        raise BadSample("extreme_aspect_ratio", f"{where}: image of {width}x{height} pixels has an aspect ratio "
                                                f"above data.max_aspect_ratio ({checks.max_aspect_ratio:g}); "
                                                "set data.wide_images: pad to pad it, or split the line")


def fit_geometry(image: Image.Image, checks: ImageChecks, where: str) -> Image.Image:
    """The image checked by ``check_geometry``, padded with white to the largest allowed aspect
    ratio when ``wide_images: pad`` and it is more elongated than that."""
    check_geometry(image.size, checks, where)
    width, height = image.size
    if max(width, height) / min(width, height) <= checks.max_aspect_ratio:
        return image
    target = (width, math.ceil(width / checks.max_aspect_ratio)) if width > height else \
        (math.ceil(height / checks.max_aspect_ratio), height)
    padded = Image.new("RGB", target, (255, 255, 255))
    padded.paste(image, ((target[0] - width) // 2, (target[1] - height) // 2))
    return padded


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
