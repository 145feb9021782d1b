"""``docvlm predict``: batched greedy generation over images, folders, manifests or a run's split.

Prompts are left-padded so every row of a batch ends at the same position and generation starts
together; the tiny-model test checks that batched and one-at-a-time outputs agree.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Iterable

from docvlm.config import DataConfig, DatasetConfig
from docvlm.data.schema import BadSample, PixelBudget, Record, SkipReport, check_image_header
from docvlm.data.sources import ConcatSampleSet, SampleSet, load_split
from docvlm.errors import DataError
from docvlm.models.lengths import longest_first
from docvlm.models.loading import Loaded
from docvlm.models.prompting import ChatFormat, generate_answers
from docvlm.predict.regions import draw_regions, parse_regions, region_task

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif"}


def predict_samples(loaded: Loaded, samples: SampleSet, batch_size: int, max_new_tokens: int,
                    num_beams: int = 1, progress: bool = True, draw_dir: str | Path | None = None,
                    meter: Any = None) -> list[dict]:
    """One row per readable sample: id, prediction, reference (when known), image, dataset; for a
    Florence-2 region task also ``regions`` (boxes and labels in image pixels), drawn into
    ``draw_dir`` as ``<id>.png`` when given. ``meter`` (a :class:`~docvlm.predict.latency.LatencyMeter`)
    times each batch's prompt encoding and generation (image decoding excluded)."""
    from docvlm.progress import bar as progress_bar

    chat = ChatFormat(loaded.processor, loaded.spec)
    rows: list[tuple[int, dict]] = []
    # Batches of similar images (largest first) waste less on padding; rows go back to input order.
    records = samples.records if hasattr(samples, "records") else [sample.record for sample in samples]
    indices = longest_first(records, loaded.processor, loaded.spec) if batch_size > 1 \
        else list(range(len(samples)))
    # As a context manager the bar ends its line even when a bad input stops the loop, so the
    # error message that follows starts on a line of its own.
    with progress_bar(total=len(indices), desc="predict", unit="sample", enabled=progress) as bar:
        _predict_batches(loaded, chat, samples, indices, batch_size, max_new_tokens, num_beams, draw_dir, rows, bar,
                         meter)
    return [row for _, row in sorted(rows, key=lambda pair: pair[0])]


def _predict_batches(loaded, chat, samples, indices, batch_size, max_new_tokens, num_beams, draw_dir, rows, bar,
                     meter):
    for start in range(0, len(indices), batch_size):
        pairs = [(i, s) for i, s in ((i, samples[i]) for i in indices[start:start + batch_size]) if s is not None]
        batch = [s for _, s in pairs]
        if batch:
            with meter.timed(len(batch)) if meter is not None else nullcontext():
                answers = generate_answers(loaded.model, chat, batch, max_new_tokens, num_beams)
            for (index, sample), answer in zip(pairs, answers):
                record = sample.record
                row = {"id": record.id, "prediction": answer, "reference": record.target or None,
                       "image": record.image_ref if isinstance(record.image_ref, str) else None,
                       "dataset": record.dataset, "group": record.group, "language": record.language}
                if len(record.all_references) > 1:
                    row["references"] = list(record.all_references)
                task = region_task(loaded.processor, record.prompt)
                if task:
                    row["regions"] = parse_regions(loaded.processor, task, answer, sample.image.size)
                    if draw_dir is not None:
                        row["drawing"] = str(draw_regions(sample.image, row["regions"],
                                                          Path(draw_dir) / f"{_file_stem(record.id)}.png"))
                rows.append((index, row))
        bar.update(min(batch_size, len(indices) - start))


def _file_stem(sample_id: str) -> str:
    return Path(sample_id.replace("/", "__")).stem if sample_id.lower().endswith(tuple(IMAGE_SUFFIXES)) \
        else sample_id.replace("/", "__")


def write_predictions(rows: Iterable[dict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    with open(temporary, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(temporary, path)
    return path


def samples_from_inputs(inputs: list[str], prompt: str, budget: PixelBudget, on_bad: str,
                        image_column: str = "image", text_column: str = "text") -> SampleSet:
    """Image files, folders of images (recursive) and JSONL manifests.

    Loose images come first (in the order given, folders sorted by path), then each manifest.
    """
    records: list[Record] = []
    report = SkipReport()
    parts: list[SampleSet] = []
    for item in inputs:
        path = Path(item)
        if path.suffix == ".jsonl":
            dataset = DatasetConfig(name=path.stem, source=str(path), format="jsonl", prompt=prompt,
                                    image_column=image_column, text_column=text_column,
                                    train_split=None, eval_split=None, test_split=path.stem,
                                    min_pixels=budget.min_pixels, max_pixels=budget.max_pixels,
                                    # The user named this manifest on the command line: trust its paths.
                                    allow_outside_root=True)
            parts.append(load_split(dataset, "test", DataConfig(datasets=[dataset], on_bad_sample=on_bad)))
            continue
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise DataError(f"{path}: no image files found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        elif path.is_file():
            files = [path]
        else:
            raise DataError(f"input not found: {path}")
        for file in files:
            report.total += 1
            where = str(file)
            try:
                check_image_header(str(file), where)
                target = _reference_beside(file, where)
            except BadSample as bad:
                if on_bad == "error":
                    raise
                report.skip(bad.reason, str(bad))
                continue
            records.append(Record(id=str(file.relative_to(path) if path.is_dir() else file.name), target=target,
                                  image_ref=str(file), prompt=prompt, dataset="inputs", task="transcription",
                                  budget=budget, where=where))
    report.kept = len(records)
    if records or (report.total and parts):
        # Kept even when every loose image was skipped (beside a manifest), so the summary counts them.
        parts.insert(0, SampleSet(records, None, "image", on_bad, report))
    if not parts:
        cause = f": {report.one_line('inputs')}; e.g. {report.examples[0]}" if report.examples else ""
        raise DataError(f"no inputs to predict on{cause}")
    return _concat(parts)


def _reference_beside(image: Path, where: str) -> str:
    """The transcription in ``name.gt.txt`` beside a line image (kraken's convention), so the
    predictions can be scored; "" when there is none."""
    from docvlm.data.folders import read_transcription, transcription_path

    gt = transcription_path(image)
    return read_transcription(gt, where) if gt.is_file() else ""


def _concat(parts: list[SampleSet]) -> SampleSet:
    return parts[0] if len(parts) == 1 else ConcatSampleSet(parts)


def skip_summary(samples: Any) -> dict:
    parts = getattr(samples, "parts", [samples])
    total = SkipReport()
    for part in parts:
        total.total += part.report.total
        total.kept += part.report.kept
        total.skipped.update(part.report.skipped)
        total.examples += part.report.examples
    return total.as_dict()
