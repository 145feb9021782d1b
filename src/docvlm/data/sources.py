"""Reading datasets into records: Hugging Face datasets and JSONL manifests.

Indexing reads ids and targets only. Images are decoded when a sample is asked for, by the
``SampleSet`` (a torch ``Dataset``) that the trainer and the predictor iterate.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import random
from pathlib import Path
from typing import Any

from PIL import Image

from docvlm.config import DataConfig, DatasetConfig
from docvlm.data.schema import (BadSample, ImageChecks, LineCrop, PixelBudget, Record, Sample, SkipReport,
                                check_geometry, check_image_header, crop_line, fit_geometry, open_image,
                                resolve_inside, skip_reasons)
from docvlm.errors import DataError

log = logging.getLogger(__name__)

SPLIT_ROLES = ("train", "eval", "test")


def split_name(dataset: DatasetConfig, role: str) -> str | None:
    """The configured split name for a role (train / eval / test); empty (None or "") means none."""
    return {"train": dataset.train_split, "eval": dataset.eval_split, "test": dataset.test_split}[role] or None


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
    """The configured format, or the one the source's name and content leave no doubt about."""
    if dataset.format != "auto":
        return dataset.format
    from docvlm.data.folders import is_line_folder
    from docvlm.data.layout import detect_layout_format

    path = Path(dataset.source)
    if path.name == "dataset_info.json" or (path.is_dir() and (path / "dataset_info.json").is_file()
                                            and not (path / "dataset_dict.json").is_file()
                                            and not (path / "state.json").is_file()):
        return "llamafactory"
    if path.suffix in (".jsonl", ".csv"):
        return path.suffix[1:]
    if path.suffix.lower() in (".xml", ".alto"):
        return detect_layout_format(path) or "page"
    if not path.is_dir():
        return "hf"
    found = [name for name, present in (
        ("jsonl", any(path.glob("*.jsonl"))), ("csv", any(path.glob("*.csv"))),
        ("hf", (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()),
        ("lines", is_line_folder(path)), ("xml", any(p.suffix.lower() in (".xml", ".alto") for p in path.rglob("*")))) if present]
    if len(found) > 1:
        raise DataError(f"dataset '{dataset.name}': {path} holds {' and '.join(found)} data; set format "
                        "(hf, jsonl, csv, page, alto, lines, llamafactory)")
    if found == ["xml"]:
        detected = detect_layout_format(path)
        if detected is None:
            raise DataError(f"dataset '{dataset.name}': no PAGE-XML or ALTO file in {path}")
        return detected
    return found[0] if found else "hf"


# --------------------------------------------------------------------------------------------
# JSONL manifests


def _manifest_path(dataset: DatasetConfig, split: str, suffix: str = ".jsonl") -> Path:
    path = Path(dataset.source)
    if path.is_dir():
        candidate = path / f"{split}{suffix}"
        if not candidate.is_file():
            available = sorted(p.stem for p in path.glob(f"*{suffix}"))
            raise DataError(f"{path}: no manifest for split '{split}' (found splits: {', '.join(available) or 'none'})")
        return candidate
    if not path.is_file():
        raise DataError(f"dataset '{dataset.name}': source not found: {path}")
    return path


def json_object(line: str, where: str) -> dict:
    """One JSONL line as a dict, or an error naming ``where`` (file:line)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object per line, got {type(row).__name__}")
    return row


def _read_manifest_rows(path: Path, split: str, single_file: bool) -> list[tuple[int, dict]]:
    # One manifest for all splits: rows carry a "split" field; rows without one are kept.
    return [(number, row) for number, row in read_json_objects(path)
            if not (single_file and "split" in row and row["split"] != split)]


def _read_csv_rows(path: Path, split: str, single_file: bool) -> list[tuple[int, dict]]:
    """CSV rows with their line numbers; same ``split`` column rule as JSONL."""
    try:
        # utf-8-sig: Excel's "CSV UTF-8" starts with a BOM, which would become part of the first
        # column's name (every row then misses that column).
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            rows = []
            for row in reader:
                if None in row:
                    raise DataError(f"{path}:{reader.line_num}: more values than header columns")
                if single_file and row.get("split") not in (None, "", split):
                    continue
                rows.append((reader.line_num, row))
            return rows
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error})") from None
    except csv.Error as error:
        raise DataError(f"{path}: not valid CSV ({error})") from None


def read_utf8(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")  # a BOM (Windows editors write one) is not part of the text
    except UnicodeDecodeError as error:  # the line, so a manifest of 100 000 rows can be fixed
        start = error.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)  # utf-8-sig counts after the BOM
        line = raw[:start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[start]:02x}; {error.reason})") from None


def read_json_objects(path: Path) -> list[tuple[int, dict]]:
    """``(line number, object)`` for every non-blank line of a JSONL file."""
    return [(number, json_object(line, f"{path}:{number}"))
            for number, line in enumerate(read_utf8(path).splitlines(), start=1) if line.strip()]


def index_jsonl(dataset: DatasetConfig, role: str, report: SkipReport, on_bad: str,
                suffix: str = ".jsonl") -> list[Record]:
    """A JSONL (or, with ``suffix='.csv'``, CSV) manifest: one sample per line/row."""
    split = split_name(dataset, role)
    path = _manifest_path(dataset, split, suffix)
    read = _read_csv_rows if suffix == ".csv" else _read_manifest_rows
    rows = read(path, split, single_file=not Path(dataset.source).is_dir())
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
    target_column = dataset.answers_column or dataset.text_column
    for column in (dataset.image_column, target_column, dataset.question_column, dataset.options_column):
        if column and column not in row:
            raise BadSample("missing_field", f"{where}: field '{column}' is missing")
    target, references = _answers(dataset, row.get(target_column) if target_column else None, where)
    image_path = resolve_inside(path.parent, str(row[dataset.image_column]),
                                f"{where}: field '{dataset.image_column}'", dataset.allow_outside_root)
    check_image_header(str(image_path), f"{where}: field '{dataset.image_column}' ({image_path})")
    record = _record(dataset, sample_id, target, str(image_path), where, row)
    record.references = references
    if dataset.question_column:
        record.prompt = dataset.prompt_for(_question(dataset, row[dataset.question_column], where))
    if dataset.options_column:
        record.options = _options(dataset, row[dataset.options_column], where)
    # Manifests written by ``docvlm data export`` carry per-sample prompts and VQA answers.
    if isinstance(row.get("prompt"), str) and row["prompt"].strip():
        record.prompt = row["prompt"]
    references = row.get("references")
    if isinstance(references, list) and len(references) > 1:
        record.references = tuple(str(r) for r in references)
    return record


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
    target_column = dataset.answers_column or dataset.text_column
    # Read the text columns only: selecting columns avoids decoding any image here.
    text_columns = list(dict.fromkeys(c for c in (target_column, dataset.question_column, dataset.options_column,
                                                  dataset.id_column,
                                                  dataset.group_column, dataset.language_column,
                                                  *dataset.extra_columns) if c))
    for column in [dataset.image_column] + text_columns:
        if column not in table.column_names:
            raise DataError(f"{where}: column '{column}' not found (columns: {', '.join(table.column_names)})")
    # Rows are chosen by original index, so a sample keeps its id and row whatever the seed/select.
    row_indices = _chosen(list(range(len(table))), dataset, role)
    texts = table.select_columns(text_columns).select(row_indices).to_dict()
    records = []
    for position, row_index in enumerate(row_indices):
        row = {column: texts[column][position] for column in text_columns}
        sample_id = str(row[dataset.id_column]) if dataset.id_column else f"{split}-{row_index}"
        row_where = f"{where} row {row_index} (sample '{sample_id}')"
        report.total += 1
        try:
            target, references = _answers(dataset, row[target_column] if target_column else None, row_where)
            record = _record(dataset, sample_id, target, row_index, row_where, row)
            record.references = references
            if dataset.question_column:
                record.prompt = dataset.prompt_for(_question(dataset, row[dataset.question_column], row_where))
            if dataset.options_column:
                record.options = _options(dataset, row[dataset.options_column], row_where)
            records.append(record)
        except BadSample as bad:
            _handle_bad(bad, report, on_bad)
    report.kept = len(records)
    return records, table


def _answers(dataset: DatasetConfig, value: Any, where: str) -> tuple[str, tuple[str, ...]]:
    """The training target and, for a list of answers, every acceptable one (first = target)."""
    column = dataset.answers_column or dataset.text_column
    if not column:  # label-free prompts (retention drift probes): no target is read
        return "", ()
    if dataset.answers_column:
        answers = [value] if isinstance(value, str) else list(value or [])
        # VQAv2 on the hub stores answers as {answer, answer_confidence, answer_id} records.
        answers = [a.get("answer") if isinstance(a, dict) else a for a in answers]
        answers = [a for a in answers if isinstance(a, str) and a.strip()]
        if not answers:
            raise BadSample("empty_target", f"{where}: field '{column}' has no non-empty answer")
        return answers[0], tuple(answers) if len(answers) > 1 else ()
    if isinstance(value, int) and not isinstance(value, bool) and dataset.options_column:
        value = str(value)  # a multiple-choice answer given as the option's index
    if not isinstance(value, str) or not value.strip():
        raise BadSample("empty_target", f"{where}: field '{column}' is empty")
    return value, ()


def _options(dataset: DatasetConfig, value: Any, where: str) -> tuple[str, ...]:
    """Multiple-choice options: a list of at least two non-empty strings."""
    if not isinstance(value, (list, tuple)) or len(value) < 2 or not all(isinstance(o, str) and o.strip() for o in value):
        raise BadSample("bad_options", f"{where}: field '{dataset.options_column}' must be a list of at least two "
                                       f"non-empty options, got {value!r}")
    return tuple(value)


def _question(dataset: DatasetConfig, value: Any, where: str) -> str:
    """A question, or its ``question_language`` entry when it is a per-language dict."""
    column = dataset.question_column
    if isinstance(value, dict):
        if dataset.question_language is None:
            raise BadSample("missing_field", f"{where}: field '{column}' is a per-language dict "
                                             f"({', '.join(value)}); set question_language")
        value = value.get(dataset.question_language)
        column = f"{column}.{dataset.question_language}"
    if not isinstance(value, str) or not value.strip():
        raise BadSample("empty_question", f"{where}: field '{column}' is empty or missing")
    return value


def _decode_hf_image(value: Any, where: str) -> Image.Image:
    if isinstance(value, Image.Image):
        from docvlm.data.schema import to_rgb

        return to_rgb(value)
    if isinstance(value, dict) and (value.get("bytes") or value.get("path")):
        source = io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]
        return open_image(source, where)
    if isinstance(value, str):
        return open_image(value, where)
    raise BadSample("unreadable_image", f"{where}: not an image ({type(value).__name__})")


# --------------------------------------------------------------------------------------------
# Shared helpers


def _record(dataset: DatasetConfig, sample_id: str, target: str, image_ref: Any, where: str,
            row: dict) -> Record:
    def optional(column: str | None) -> str | None:
        return None if not column or row.get(column) is None else str(row[column])

    group_parts = [optional(c) for c in (dataset.group_column, *dataset.extra_columns)]
    group = "/".join(p for p in group_parts if p is not None) or None
    return Record(
        id=sample_id, target=target, image_ref=image_ref, prompt=dataset.prompt_for(), dataset=dataset.name,
        task=dataset.task, budget=PixelBudget(dataset.min_pixels, dataset.max_pixels),
        group=group, language=optional(dataset.language_column), where=where,
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
                 on_bad: str = "error", report: SkipReport | None = None, checks: ImageChecks = ImageChecks()):
        self.records = records
        self.hf_table = hf_table
        self.image_column = image_column
        self.on_bad = on_bad
        self.report = report or SkipReport(total=len(records), kept=len(records))
        self.checks = checks

    def __len__(self) -> int:
        return len(self.records)

    def head(self, limit: int | None) -> "SampleSet":
        """The first ``limit`` samples (all when ``limit`` is None), sharing the image source."""
        if limit is None or len(self) <= limit:
            return self
        return SampleSet(self.records[:limit], self.hf_table, self.image_column, self.on_bad, self.report,
                         self.checks)

    def load_image(self, record: Record) -> Image.Image:
        """The sample's image, decoded, and checked (or padded) against ``self.checks``."""
        if isinstance(record.image_ref, LineCrop):
            image = crop_line(record.image_ref, record.where)
        elif isinstance(record.image_ref, str):
            image = open_image(record.image_ref, f"{record.where}: image {record.image_ref}")
        else:
            value = self.hf_table[int(record.image_ref)][self.image_column]
            image = _decode_hf_image(value, f"{record.where}: field '{self.image_column}'")
        return fit_geometry(image, self.checks, record.where)

    def __getitem__(self, index: int) -> Sample | None:
        record = self.records[index]
        try:
            return Sample(record=record, image=self.load_image(record), report=self.report)
        except BadSample as bad:
            if self.on_bad == "error":
                raise
            # Counted once, and no longer as kept: data_report.json must add up.
            if self.report.skip_kept(record.key, bad.reason, str(bad)):
                log.warning("skipped: %s", bad)
            return None


def image_checks(data: DataConfig) -> ImageChecks:
    return ImageChecks(data.min_image_side, data.max_aspect_ratio, data.wide_images)


def load_split(dataset: DatasetConfig, role: str, data: DataConfig) -> SampleSet | None:
    """Index one dataset's split for a role, or ``None`` when the role has no split configured."""
    if split_name(dataset, role) is None:
        return None
    if not dataset.source:
        raise DataError(f"dataset '{dataset.name}': 'source' is empty (a hub id, a folder or a .jsonl manifest)")
    report = SkipReport()
    fmt = source_format(dataset)
    table = None
    try:
        if fmt != "hf":
            records = _index_files(fmt, dataset, role, report, data.on_bad_sample)
        else:
            records, table = index_hf(dataset, role, report, data.on_bad_sample)
    except DataError as error:
        if not report.skipped or isinstance(error, BadSample):
            raise
        # What was skipped on the way is usually the real cause (a malformed XML, then "no split").
        raise DataError(f"{error}; {_skip_cause(report)}") from None
    records = _unique_ids(records, dataset, report, data.on_bad_sample)
    records = _screen_geometry(records, image_checks(data), report, data.on_bad_sample)
    if report.skipped:
        log.warning("%s", report.one_line(f"dataset '{dataset.name}' split '{split_name(dataset, role)}'"))
    return SampleSet(records, table, dataset.image_column, data.on_bad_sample, report, image_checks(data))


def _skip_cause(report: SkipReport) -> str:
    first = f", e.g. {report.examples[0]}" if report.examples else ""
    return f"skipped on the way: {skip_reasons(report.skipped)}{first}"


def _unique_ids(records: list[Record], dataset: DatasetConfig, report: SkipReport, on_bad: str) -> list[Record]:
    """Refuse (or skip) a sample whose id an earlier sample of the split already has: predictions,
    per-sample scores and reports are keyed by id (``evaluate --predictions`` refuses a file with
    one id twice), so a repeated id would pair a prediction with the wrong sample."""
    first_use: dict[str, str] = {}
    kept = []
    for record in records:
        if record.id not in first_use:
            first_use[record.id] = record.where
            kept.append(record)
            continue
        field = dataset.id_column or "id"
        bad = BadSample("duplicate_id", f"{record.where}: field '{field}': id '{record.id}' is already the id of "
                                        f"{first_use[record.id]} (ids must be unique within a split)")
        _handle_bad(bad, report, on_bad)
        report.kept -= 1
    return kept


def _screen_geometry(records: list[Record], checks: ImageChecks, report: SkipReport, on_bad: str) -> list[Record]:
    """Refuse (or skip) images whose size is known without decoding them (file headers, line boxes)
    and that no processor can use; Hugging Face images are checked when decoded."""
    kept = []
    for record in records:
        try:
            if isinstance(record.image_ref, LineCrop):
                left, top, right, bottom = record.image_ref.box
                check_geometry((right - left, bottom - top), checks, record.where)
            elif isinstance(record.image_ref, str):
                check_geometry(check_image_header(record.image_ref, record.where), checks, record.where)
            kept.append(record)
        except BadSample as bad:
            _handle_bad(bad, report, on_bad)
            report.kept -= 1
    return kept


def _index_files(fmt: str, dataset: DatasetConfig, role: str, report: SkipReport, on_bad: str) -> list[Record]:
    """Records of a file-based source (everything but Hugging Face datasets)."""
    if fmt in ("jsonl", "csv"):
        return index_jsonl(dataset, role, report, on_bad, suffix=f".{fmt}")
    split = split_name(dataset, role)
    if fmt in ("page", "alto"):
        from docvlm.data.layout import index_layout

        records = index_layout(dataset, split, report, on_bad, _handle_bad, fmt)
    elif fmt == "lines":
        from docvlm.data.folders import index_lines

        records = index_lines(dataset, split, report, on_bad, _handle_bad)
    else:
        from docvlm.data.llamafactory import index_llamafactory

        records = index_llamafactory(dataset, split, report, on_bad, _handle_bad)
    chosen = _chosen(records, dataset, role)
    # Rows left out by <role>_select are not part of this split: total = kept + skipped.
    report.total -= len(records) - len(chosen)
    report.kept = len(chosen)
    return chosen


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


class SubstitutingSampleSet:
    """The training view of a sample set in ``skip`` mode: a sample that fails to decode (counted
    once in its dataset's report) is replaced by the next readable one, so no batch comes out empty
    and training goes on. Evaluation and prediction read sets directly: there a skipped sample is
    absent from the output, not replaced."""

    def __init__(self, inner: SampleSet):
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet while unpickling (spawned data-loader workers)
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __getitem__(self, index: int) -> Sample:
        from docvlm.data.skips import Failed, Skipped, in_worker

        markers = []  # skips made in a data-loader worker travel on with the replacement
        for step in range(len(self.inner)):
            sample = self.inner[(index + step) % len(self.inner)]
            if isinstance(sample, Skipped):
                markers.append(sample)
            elif sample is not None:
                if markers:
                    sample = dataclasses.replace(sample, skips=tuple(markers))
                return sample
        error = DataError("no training sample can be read: every image failed to decode (see the skip report)")
        if in_worker():  # raised as this one line by the main process, not as torch's worker traceback
            return Failed.of(error)
        raise error


def mixture_counts(weights: list[float], size: int) -> list[int]:
    """Samples drawn from each dataset: ``size`` shared in proportion to the weights, exactly.

    Largest-remainder rounding, so the counts add up to ``size`` and follow the ratios as closely
    as integers allow.
    """
    total = sum(weights)
    shares = [size * w / total for w in weights]
    counts = [int(share) for share in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: (counts[i] - shares[i], i))
    for i in by_remainder[: size - sum(counts)]:
        counts[i] += 1
    return counts


class MixtureSampleSet(SampleSet):
    """Several training sets drawn with ratios and interleaved, reproducibly (``mixture_seed``).

    An epoch is ``size`` samples; dataset *i* contributes ``size * w_i / sum(w)`` of them, taken as
    whole shuffled passes over it plus a seeded random part of one more pass, so a small dataset
    repeats and a large one is subsampled, without any sample repeating before all have been used.
    The draw is fixed for the run: every epoch sees the same samples, in the order the Trainer's
    (seeded) sampler shuffles them into.
    """

    def __init__(self, parts: list[SampleSet], weights: list[float], size: int, seed: int):
        self.parts = parts
        self.counts = mixture_counts(weights, size)
        rng = random.Random(seed)
        index: list[tuple[int, int]] = []
        for number, (part, count) in enumerate(zip(parts, self.counts)):
            picks: list[int] = []
            while count - len(picks) >= len(part) > 0:
                passes = list(range(len(part)))
                rng.shuffle(passes)
                picks += passes
            picks += rng.sample(range(len(part)), count - len(picks))
            index += [(number, i) for i in picks]
        rng.shuffle(index)
        self.index = index
        self.records = [parts[p].records[i] for p, i in index]

    def __len__(self) -> int:
        return len(self.index)

    def head(self, limit: int | None) -> SampleSet:
        if limit is None or len(self) <= limit:
            return self
        subset = object.__new__(MixtureSampleSet)
        subset.parts, subset.counts = self.parts, self.counts
        subset.index, subset.records = self.index[:limit], self.records[:limit]
        return subset

    def __getitem__(self, index: int) -> Sample | None:
        part, row = self.index[index]
        return self.parts[part][row]


def _mixture(data: DataConfig, parts: list[SampleSet], datasets: list[DatasetConfig]) -> SampleSet:
    weights = [d.weight for d in datasets]
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise DataError(f"data.mixture weighted: weights must be >= 0 and not all 0, got {weights}")
    for part, dataset in zip(parts, datasets):
        if dataset.weight > 0 and len(part) == 0:
            raise DataError(f"dataset '{dataset.name}': weight {dataset.weight} but no training samples")
    size = data.mixture_size or sum(len(p) for p in parts)
    return MixtureSampleSet(parts, weights, size, data.mixture_seed)


def load_role(data: DataConfig, role: str) -> tuple[SampleSet | None, dict]:
    """All datasets' splits for a role combined, with a per-dataset skip report.

    Training with ``data.mixture: weighted`` draws a ``MixtureSampleSet``; otherwise (and for the
    evaluation roles, which must score every sample once) the splits are concatenated.
    """
    parts, reports, used = [], {}, []
    for dataset in data.datasets:
        part = load_split(dataset, role, data)
        if part is None:
            continue
        parts.append(part)
        used.append(dataset)
        reports[f"{dataset.name}/{split_name(dataset, role)}"] = part.report
    if not parts:
        return None, reports
    if role == "train" and data.mixture == "weighted":
        return _mixture(data, parts, used), reports
    if len(parts) == 1:
        return parts[0], reports
    return ConcatSampleSet(parts), reports
