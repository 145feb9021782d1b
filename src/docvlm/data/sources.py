"""Reading datasets into records: Hugging Face datasets and JSONL manifests.

Indexing reads ids and targets only. Images are decoded when a sample is asked for, by the
``SampleSet`` (a torch ``Dataset``) that the trainer and the predictor iterate.
"""

from __future__ import annotations

import io
import json
import logging
import random
from pathlib import Path
from typing import Any

from PIL import Image

from docvlm.config import DataConfig, DatasetConfig
from docvlm.data.schema import (BadSample, PixelBudget, Record, Sample, SkipReport, check_image_header,
                                open_image)
from docvlm.errors import DataError

log = logging.getLogger(__name__)

SPLIT_ROLES = ("train", "eval", "test")


def split_name(dataset: DatasetConfig, role: str) -> str | None:
    """The configured split name for a role (train / eval / test)."""
    return {"train": dataset.train_split, "eval": dataset.eval_split, "test": dataset.test_split}[role]


def _select_range(dataset: DatasetConfig, role: str) -> str | None:
    return {"train": dataset.train_select, "eval": dataset.eval_select, "test": dataset.test_select}[role]


def parse_select(text: str | None, length: int, key: str) -> range:
    """``"10:20"``, ``":100"``, ``"5:"`` or ``"100"`` (the first 100) as a range within ``length``."""
    if text is None or text == "":
        return range(length)
    try:
        if ":" in text:
            start_text, end_text = text.split(":", 1)
            start = int(start_text) if start_text.strip() else 0
            end = int(end_text) if end_text.strip() else length
        else:
            start, end = 0, int(text)
    except ValueError:
        raise DataError(f"config key '{key}': '{text}' is not a row range like '0:1000'") from None
    if start < 0 or end < start:
        raise DataError(f"config key '{key}': '{text}' is not a valid row range")
    return range(min(start, length), min(end, length))


def source_format(dataset: DatasetConfig) -> str:
    if dataset.format != "auto":
        return dataset.format
    path = Path(dataset.source)
    if path.suffix == ".jsonl" or (path.is_dir() and any(path.glob("*.jsonl"))):
        return "jsonl"
    return "hf"


# --------------------------------------------------------------------------------------------
# JSONL manifests


def _manifest_path(dataset: DatasetConfig, split: str) -> Path:
    path = Path(dataset.source)
    if path.is_dir():
        candidate = path / f"{split}.jsonl"
        if not candidate.is_file():
            available = sorted(p.stem for p in path.glob("*.jsonl"))
            raise DataError(f"{path}: no manifest for split '{split}' (found splits: {', '.join(available) or 'none'})")
        return candidate
    if not path.is_file():
        raise DataError(f"dataset '{dataset.name}': source not found: {path}")
    return path


def _read_manifest_rows(path: Path, split: str, single_file: bool) -> list[tuple[int, dict]]:
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error})") from None
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{line_number}: not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{line_number}: expected a JSON object per line")
        # One manifest for all splits: rows carry a "split" field; rows without one are kept.
        if single_file and "split" in row and row["split"] != split:
            continue
        rows.append((line_number, row))
    return rows


def index_jsonl(dataset: DatasetConfig, role: str, report: SkipReport, on_bad: str) -> list[Record]:
    split = split_name(dataset, role)
    path = _manifest_path(dataset, split)
    rows = _read_manifest_rows(path, split, single_file=not Path(dataset.source).is_dir())
    rows = _chosen(rows, dataset, role)
    records = []
    for line_number, row in rows:
        where = f"{path}:{line_number}"
        report.total += 1
        try:
            records.append(_jsonl_record(dataset, row, path, where, f"{split}-{line_number}"))
        except BadSample as bad:
            _handle_bad(bad, report, on_bad)
    report.kept = len(records)
    return records


def _jsonl_record(dataset: DatasetConfig, row: dict, path: Path, where: str, default_id: str) -> Record:
    sample_id = str(row.get(dataset.id_column or "id", default_id))
    where = f"{where} (sample '{sample_id}')"
    for column in (dataset.image_column, dataset.text_column) + ((dataset.prompt_column,) if dataset.prompt_column else ()):
        if column not in row:
            raise BadSample("missing_field", f"{where}: field '{column}' is missing")
    target = _target(row[dataset.text_column], f"{where}: field '{dataset.text_column}'")
    image_path = path.parent / str(row[dataset.image_column])
    check_image_header(str(image_path), f"{where}: field '{dataset.image_column}' ({image_path})")
    return _record(dataset, sample_id, target, str(image_path), where, row)


# --------------------------------------------------------------------------------------------
# Hugging Face datasets


def _load_hf_split(dataset: DatasetConfig, split: str):
    import datasets

    source = Path(dataset.source)
    try:
        if source.is_dir() and ((source / "dataset_dict.json").is_file() or (source / "dataset_info.json").is_file()):
            loaded = datasets.load_from_disk(str(source))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise DataError(f"{source}: no split '{split}' (found: {', '.join(loaded)})")
                return loaded[split]
            return loaded
        if dataset.source.startswith((".", "/")) and not source.exists():
            raise DataError(f"dataset '{dataset.name}': source not found: {source}")
        return datasets.load_dataset(dataset.source, split=split)
    except DataError:
        raise
    except ValueError as error:
        if "split" in str(error).lower():
            raise DataError(f"dataset '{dataset.source}': split '{split}' not found ({error})") from None
        raise DataError(f"dataset '{dataset.source}': cannot be loaded ({error})") from None
    except (FileNotFoundError, ConnectionError, OSError) as error:
        raise DataError(f"dataset '{dataset.source}': cannot be loaded ({type(error).__name__}: {error})") from None


def index_hf(dataset: DatasetConfig, role: str, report: SkipReport, on_bad: str) -> tuple[list[Record], Any]:
    split = split_name(dataset, role)
    table = _load_hf_split(dataset, split)
    where = f"dataset '{dataset.source}' split '{split}'"
    for column in [dataset.image_column, dataset.text_column] + [
            c for c in (dataset.id_column, dataset.group_column, dataset.language_column, dataset.prompt_column) if c]:
        if column not in table.column_names:
            raise DataError(f"{where}: column '{column}' not found (columns: {', '.join(table.column_names)})")
    # Rows are chosen by original index, so a sample keeps its id and row whatever the seed/select.
    row_indices = _chosen(list(range(len(table))), dataset, role)
    # Read the text columns only: selecting columns avoids decoding any image here.
    text_columns = [c for c in (dataset.text_column, dataset.id_column, dataset.group_column,
                                dataset.language_column, dataset.prompt_column) if c]
    texts = table.select_columns(text_columns).select(row_indices).to_dict()
    records = []
    for position, row_index in enumerate(row_indices):
        row = {column: texts[column][position] for column in text_columns}
        sample_id = str(row[dataset.id_column]) if dataset.id_column else f"{split}-{row_index}"
        row_where = f"{where} row {row_index} (sample '{sample_id}')"
        report.total += 1
        try:
            target = _target(row[dataset.text_column], f"{row_where}: field '{dataset.text_column}'")
            records.append(_record(dataset, sample_id, target, row_index, row_where, row))
        except BadSample as bad:
            _handle_bad(bad, report, on_bad)
    report.kept = len(records)
    return records, table


def _decode_hf_image(value: Any, where: str) -> Image.Image:
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, dict) and (value.get("bytes") or value.get("path")):
        source = io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]
        return open_image(source, where)
    if isinstance(value, str):
        return open_image(value, where)
    raise BadSample("unreadable_image", f"{where}: not an image ({type(value).__name__})")


# --------------------------------------------------------------------------------------------
# Shared helpers


def _target(value: Any, where: str) -> str | list[str]:
    """A target text, or a list of acceptable answers (DocVQA's ``answers``): the model trains on
    the first, metrics may score against all."""
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return value
    if isinstance(value, str) and value.strip():
        return value
    empty = value is None or (isinstance(value, (str, list)) and not "".join(map(str, value)).strip())
    raise BadSample("empty_target", f"{where} is empty" if empty else f"{where} is not text: {value!r}")


def _record(dataset: DatasetConfig, sample_id: str, target: str | list[str], image_ref: Any, where: str,
            row: dict) -> Record:
    def optional(column: str | None) -> str | None:
        return None if not column or row.get(column) is None else str(row[column])

    answers = tuple(target) if isinstance(target, list) else ()
    return Record(
        id=sample_id, target=answers[0] if answers else target, image_ref=image_ref,
        prompt=dataset.prompt_for(optional(dataset.prompt_column)), dataset=dataset.name, references=answers,
        task=dataset.task, budget=PixelBudget(dataset.min_pixels, dataset.max_pixels),
        group=optional(dataset.group_column), language=optional(dataset.language_column), where=where,
    )


def _handle_bad(bad: BadSample, report: SkipReport, on_bad: str) -> None:
    if on_bad == "error":
        raise bad
    report.skip(bad.reason, str(bad))


def _chosen(items: list, dataset: DatasetConfig, role: str) -> list:
    """The items a role uses: seeded shuffle (when configured), then the ``<role>_select`` range."""
    if dataset.shuffle_seed is not None:
        items = list(items)
        random.Random(dataset.shuffle_seed).shuffle(items)
    return [items[i] for i in parse_select(_select_range(dataset, role), len(items), f"{role}_select")]


class SampleSet:
    """A map-style dataset of records that decodes each image when its sample is requested.

    In ``skip`` mode an image that fails to decode yields ``None``; collators drop ``None`` and
    the failure is counted in ``report``.
    """

    def __init__(self, records: list[Record], hf_table: Any = None, image_column: str = "image",
                 on_bad: str = "error", report: SkipReport | None = None):
        self.records = records
        self.hf_table = hf_table
        self.image_column = image_column
        self.on_bad = on_bad
        self.report = report or SkipReport(total=len(records), kept=len(records))

    def __len__(self) -> int:
        return len(self.records)

    def head(self, limit: int | None) -> "SampleSet":
        """The first ``limit`` samples (all when ``limit`` is None), sharing the image source."""
        if limit is None or len(self) <= limit:
            return self
        return SampleSet(self.records[:limit], self.hf_table, self.image_column, self.on_bad, self.report)

    def load_image(self, record: Record) -> Image.Image:
        if isinstance(record.image_ref, str):
            return open_image(record.image_ref, f"{record.where}: image {record.image_ref}")
        value = self.hf_table[int(record.image_ref)][self.image_column]
        return _decode_hf_image(value, f"{record.where}: field '{self.image_column}'")

    def __getitem__(self, index: int) -> Sample | None:
        record = self.records[index]
        try:
            return Sample(record=record, image=self.load_image(record))
        except BadSample as bad:
            if self.on_bad == "error":
                raise
            self.report.skip(bad.reason, str(bad))
            log.warning("skipped: %s", bad)
            return None


def load_split(dataset: DatasetConfig, role: str, data: DataConfig) -> SampleSet | None:
    """Index one dataset's split for a role, or ``None`` when the role has no split configured."""
    if split_name(dataset, role) is None:
        return None
    if not dataset.source:
        raise DataError(f"dataset '{dataset.name}': 'source' is empty (a hub id, a folder or a .jsonl manifest)")
    report = SkipReport()
    if source_format(dataset) == "jsonl":
        return SampleSet(index_jsonl(dataset, role, report, data.on_bad_sample), None,
                         dataset.image_column, data.on_bad_sample, report)
    records, table = index_hf(dataset, role, report, data.on_bad_sample)
    return SampleSet(records, table, dataset.image_column, data.on_bad_sample, report)


class ConcatSampleSet(SampleSet):
    """Several datasets' splits read as one, each sample keeping its own prompt and budget."""

    def __init__(self, parts: list[SampleSet]):
        self.parts = parts
        self.offsets = []
        total = 0
        for part in parts:
            self.offsets.append(total)
            total += len(part)
        self.total = total
        self.records = [record for part in parts for record in part.records]

    def __len__(self) -> int:
        return self.total

    def head(self, limit: int | None) -> SampleSet:
        if limit is None or len(self) <= limit:
            return self
        parts, left = [], limit
        for part in self.parts:
            if left <= 0:
                break
            parts.append(part.head(left))
            left -= len(parts[-1])
        return parts[0] if len(parts) == 1 else ConcatSampleSet(parts)

    def __getitem__(self, index: int) -> Sample | None:
        for part, offset in zip(reversed(self.parts), reversed(self.offsets)):
            if index >= offset:
                return part[index - offset]
        raise IndexError(index)


def load_role(data: DataConfig, role: str) -> tuple[SampleSet | None, dict]:
    """All datasets' splits for a role combined, with a per-dataset skip report."""
    parts, reports = [], {}
    for dataset in data.datasets:
        part = load_split(dataset, role, data)
        if part is None:
            continue
        parts.append(part)
        reports[f"{dataset.name}/{split_name(dataset, role)}"] = part.report
    if not parts:
        return None, reports
    if len(parts) == 1:
        return parts[0], reports
    return ConcatSampleSet(parts), reports
