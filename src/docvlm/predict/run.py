"""``docvlm predict``: batched greedy generation over images, folders, manifests or a run's split.

Prompts are left-padded so every row of a batch ends at the same position and generation starts
together; the tiny-model test checks that batched and one-at-a-time outputs agree.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from docvlm.config import DataConfig, DatasetConfig
from docvlm.data.schema import BadSample, PixelBudget, Record, SkipReport, check_image_header, skip_reasons
from docvlm.data.sources import ConcatSampleSet, SampleSet, load_split
from docvlm.errors import DataError
from docvlm.files import atomic_path
from docvlm.models.lengths import generation_batches
from docvlm.models.loading import Loaded
from docvlm.models.prompting import ChatFormat, encode_prompts, generate_answers
from docvlm.predict.regions import draw_regions, parse_regions, region_task

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif"}


def predict_samples(loaded: Loaded, samples: SampleSet, batch_size: int, max_new_tokens: int,
                    num_beams: int = 1, progress: bool = True, draw_dir: str | Path | None = None,
                    meter: Any = None, max_batch_visual_tokens: int | None = None) -> list[dict]:
    """One row per readable sample: id, prediction, reference (when known), image, dataset; for a
    Florence-2 region task also ``regions`` (boxes and labels in image pixels), drawn into
    ``draw_dir`` as ``<id>.png`` when given.

    Batches hold images of similar size (largest first; rows go back to input order), at most
    ``batch_size`` and at most ``max_batch_visual_tokens`` visual tokens (estimated from image
    headers). While one batch generates, the next one's images are decoded and its prompts encoded
    in a background thread. ``meter`` (a :class:`~docvlm.predict.latency.LatencyMeter`) times what
    each batch adds to the wall time: its generation plus any wait for its inputs."""
    from docvlm.progress import bar as progress_bar

    chat = ChatFormat(loaded.processor, loaded.spec)
    rows: list[tuple[int, dict]] = []
    records = samples.records if hasattr(samples, "records") else [sample.record for sample in samples]
    batches = generation_batches(records, loaded.processor, loaded.spec, batch_size, max_batch_visual_tokens)
    # As a context manager the bar ends its line even when a bad input stops the loop, so the
    # error message that follows starts on a line of its own.
    with progress_bar(total=len(records), desc="predict", unit="sample", enabled=progress) as bar:
        for prepared in prefetched(batches, lambda batch: _prepare(chat, samples, batch), meter):
            if prepared.samples:
                answers = generate_answers(loaded.model, chat, [s for _, s in prepared.samples], max_new_tokens,
                                           num_beams, encoded=prepared.encoded)
                rows += _rows(loaded, prepared.samples, answers, draw_dir)
            prepared.done()
            bar.update(prepared.size)
    return [row for _, row in sorted(rows, key=lambda pair: pair[0])]


@dataclass
class PreparedBatch:
    """A generation batch with its images decoded and prompts encoded (``encoded``: None when
    every sample of the batch was skipped)."""

    size: int
    samples: list[tuple[int, Any]]
    encoded: dict | None
    done: Callable[[], None] = lambda: None


def _prepare(chat: ChatFormat, samples: SampleSet, batch: list[int]) -> PreparedBatch:
    chosen = [(i, s) for i, s in ((i, samples[i]) for i in batch) if s is not None]  # None: a counted skip
    encoded = encode_prompts(chat, [s for _, s in chosen], padding_side="left") if chosen else None
    return PreparedBatch(len(batch), chosen, encoded)


def prefetched(batches: list[list[int]], prepare: Callable[[list[int]], PreparedBatch],
               meter: Any = None) -> Iterator[PreparedBatch]:
    """``prepare(batch)`` for each batch, one batch ahead in a background thread, so that image
    decoding and the processor (PIL, numpy and the Rust tokenizer release the GIL for most of
    their work) overlap the previous batch's generation. Batches come back in order; an error
    raised preparing a batch is raised when that batch is due, after the batches before it."""
    if not batches:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="docvlm-prefetch") as pool:
        pending = pool.submit(prepare, batches[0])
        try:
            for position in range(len(batches)):
                waited = time.perf_counter()
                prepared = pending.result()
                if position + 1 < len(batches):
                    pending = pool.submit(prepare, batches[position + 1])
                if meter is not None and prepared.samples:
                    prepared.done = partial(meter.add_timed_batch, len(prepared.samples), waited)
                yield prepared
        finally:
            pending.cancel()


def _rows(loaded: Loaded, chosen: list[tuple[int, Any]], answers: list[str], draw_dir) -> list[tuple[int, dict]]:
    rows = []
    for (index, sample), answer in zip(chosen, answers):
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
    return rows


def _file_stem(sample_id: str) -> str:
    return Path(sample_id.replace("/", "__")).stem if sample_id.lower().endswith(tuple(IMAGE_SUFFIXES)) \
        else sample_id.replace("/", "__")


def write_predictions(rows: Iterable[dict], path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def samples_from_inputs(inputs: list[str], prompt: str, budget: PixelBudget, on_bad: str,
                        image_column: str = "image", text_column: str = "text") -> SampleSet:
    """Image files, folders of images (recursive) and JSONL manifests.

    Loose images come first (in the order given, folders sorted by path), then each manifest.
    """
    records: list[Record] = []
    report = SkipReport()
    parts: list[SampleSet] = []
    ids: dict[str, Path] = {}  # id -> file, so that two inputs never share an id
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
                sample_id = _input_id(file, path, ids)
            except BadSample as bad:
                if on_bad == "error":
                    raise
                report.skip(bad.reason, str(bad))
                continue
            records.append(Record(id=sample_id, target=target, image_ref=str(file), prompt=prompt, dataset="inputs",
                                  task="transcription", budget=budget, where=where))
    report.kept = len(records)
    if records or (report.total and parts):
        # Kept even when every loose image was skipped (beside a manifest), so the summary counts them.
        parts.insert(0, SampleSet(records, None, "image", on_bad, report))
    if not parts:
        cause = f": {report.one_line('inputs')}; e.g. {report.examples[0]}" if report.examples else ""
        raise DataError(f"no inputs to predict on{cause}")
    return _concat(parts)


def _input_id(file: Path, given: Path, ids: dict[str, Path]) -> str:
    """A loose image's id: its path below the folder given (its name for a file given); when another
    input already has that id (two folders holding the same names), the path as given."""
    for sample_id in (str(file.relative_to(given) if given.is_dir() else file.name), str(file)):
        if sample_id not in ids:
            ids[sample_id] = file
            return sample_id
        if ids[sample_id].resolve() == file.resolve():
            break
    raise BadSample("duplicate_id", f"{file}: given twice (the same image as input {ids[sample_id]})")


def _reference_beside(image: Path, where: str) -> str:
    """The transcription in ``name.gt.txt`` beside a line image (kraken's convention), so the
    predictions can be scored; "" when there is none."""
    from docvlm.data.folders import read_transcription, transcription_path

    gt = transcription_path(image)
    return read_transcription(gt, where) if gt.is_file() else ""


def _concat(parts: list[SampleSet]) -> SampleSet:
    return parts[0] if len(parts) == 1 else ConcatSampleSet(parts)


def inputs_read(counts: dict) -> str:
    """``K of T inputs read, S skipped (reason: n, ...)`` from :func:`skip_summary` counts, as
    predict prints them (for pages, a file that cannot be read counts as one input: its lines are
    unknown)."""
    return f"{counts['kept']} of {counts['total']} inputs read, " + (
        f"{counts['skipped_total']} skipped ({skip_reasons(counts['skipped'])})" if counts["skipped_total"]
        else "none skipped")


def skip_summary(samples: Any) -> dict:
    parts = getattr(samples, "parts", [samples])
    total = SkipReport()
    for part in parts:
        total.total += part.report.total
        total.kept += part.report.kept
        total.skipped.update(part.report.skipped)
        total.examples += part.report.examples
    return total.as_dict()
