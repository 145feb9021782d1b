"""Line folders: ``name.png`` (or jpg/tif...) beside ``name.gt.txt``, the kraken/Tesseract convention.

The folder is searched recursively. The transcription is the file's text without its final line
break; anything else (spaces, right-to-left marks, combining characters) is kept as written.
Splits follow ``docvlm.data.splits``: a ``train/``/``validation/``/``test/`` subfolder, else a
seeded split of *folders* when lines sit in several folders (one folder per page is the usual
layout, so a page never straddles splits), or of single lines when they all share one folder.
"""

from __future__ import annotations

from pathlib import Path

from docvlm.config import DatasetConfig
from docvlm.data.schema import BadSample, PixelBudget, Record, SkipReport, check_image_header
from docvlm.data.splits import split_names, units_of_split
from docvlm.errors import DataError

LINE_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
GT_SUFFIX = ".gt.txt"


def transcription_path(image: Path) -> Path:
    return image.with_name(image.stem + GT_SUFFIX)  # kraken: splitext(image)[0] + ".gt.txt"


def line_images(source: Path) -> list[Path]:
    if not source.is_dir():
        raise DataError(f"line folder not found: {source}")
    images = sorted(p for p in source.rglob("*") if p.suffix.lower() in LINE_IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise DataError(f"{source}: no line images found (looked for {', '.join(LINE_IMAGE_SUFFIXES)} "
                        f"with {GT_SUFFIX} files)")
    return images


def is_line_folder(source: Path) -> bool:
    return source.is_dir() and next(source.rglob("*" + GT_SUFFIX), None) is not None


def index_lines(dataset: DatasetConfig, split: str, report: SkipReport, on_bad: str, handle_bad) -> list[Record]:
    source = Path(dataset.source)
    images = line_images(source)
    names = {name for name in split_names(dataset) if name}
    folders = {image.parent for image in images}

    def unit_of(image: Path) -> Path:
        return image.parent if len(folders) > 1 else image

    units = sorted({unit_of(image) for image in images})
    chosen = set(units_of_split(units, lambda unit: _folder_label(unit, source, names), dataset, split))
    records = []
    for image in images:
        if unit_of(image) not in chosen:
            continue
        report.total += 1
        try:
            records.append(_line_record(image, source, dataset))
        except BadSample as bad:
            handle_bad(bad, report, on_bad)
    return records


def _folder_label(unit: Path, source: Path, names: set[str]) -> str | None:
    parts = unit.relative_to(source).parts
    return parts[0] if parts and parts[0] in names else None


def read_transcription(path: Path, where: str) -> str:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise BadSample("missing_transcription", f"{where}: no transcription file {path.name}") from None
    except UnicodeDecodeError as error:
        raise BadSample("not_utf8", f"{path}: not UTF-8 text (byte {error.start}: "
                                    f"{error.object[error.start:error.start + 1]!r})") from None
    return text.removeprefix("\ufeff").removesuffix("\n").removesuffix("\r")


def _line_record(image: Path, source: Path, dataset: DatasetConfig) -> Record:
    sample_id = str(image.relative_to(source).with_suffix(""))
    where = f"{image} (sample '{sample_id}')"
    text = read_transcription(transcription_path(image), where)
    if not text.strip():
        raise BadSample("empty_target", f"{transcription_path(image)} (sample '{sample_id}'): the transcription is empty")
    check_image_header(str(image), where)
    parent = str(image.parent.relative_to(source))
    return Record(id=sample_id, target=text, image_ref=str(image), prompt=dataset.prompt_for(), dataset=dataset.name,
                  task=dataset.task, budget=PixelBudget(dataset.min_pixels, dataset.max_pixels),
                  group=None if parent == "." else parent, where=where)
