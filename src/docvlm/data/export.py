"""``docvlm data export``: any configured source written out as a JSONL manifest + PNG images, or as
a ``datasets`` folder (``save_to_disk``) for fast reloads.

Each dataset gets its own folder, ``OUTPUT/<dataset name>/``, holding one manifest (or one
``datasets`` split) per configured split. Line crops are cut and saved as PNG, so a PAGE/ALTO
source becomes a plain line dataset. Rows keep id, text, prompt, group, language and, for VQA,
every reference answer; reading the export back (``format: jsonl`` or ``hf``) gives the same
samples.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterator

from docvlm.config import Config
from docvlm.data.sources import SPLIT_ROLES, SampleSet, load_split, split_name
from docvlm.errors import DataError
from docvlm.runs import replace_dir


def _rows(samples: SampleSet) -> Iterator[tuple[dict, object]]:
    for index in range(len(samples)):
        sample = samples[index]
        if sample is None:  # counted in the split's skip report
            continue
        record = sample.record
        yield {"id": record.id, "text": record.target, "prompt": record.prompt, "group": record.group,
               "language": record.language, "references": list(record.all_references)}, sample.image


def export_data(cfg: Config, output: Path, fmt: str) -> dict[str, dict]:
    """Write every split of every dataset; returns ``{"<dataset>/<split>": skip report}``."""
    if fmt not in ("jsonl", "hf"):
        raise DataError(f"export format must be jsonl or hf, not '{fmt}'")
    reports = {}
    for dataset in cfg.data.datasets:
        splits = {}
        for role in SPLIT_ROLES:
            name = split_name(dataset, role)
            if name is not None and name not in splits:
                splits[name] = load_split(dataset, role, cfg.data)
        # Written in full into a staging folder, then renamed into place: a killed export leaves
        # the previous export (or nothing), never a manifest or a datasets folder cut short.
        folder = output / dataset.name
        staging = folder.with_name(folder.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        if fmt == "jsonl":
            for name, samples in splits.items():
                _write_manifest(samples, staging, name)
        else:
            _write_hf(splits, staging)
        replace_dir(staging, folder)
        reports.update({f"{dataset.name}/{name}": samples.report.as_dict() for name, samples in splits.items()})
    return reports


def _write_manifest(samples: SampleSet, folder: Path, split: str) -> None:
    images = folder / "images" / split
    images.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as manifest:
        for number, (row, image) in enumerate(_rows(samples)):
            relative = f"images/{split}/{number:06d}.png"
            image.save(folder / relative)
            manifest.write(json.dumps({**row, "image": relative}, ensure_ascii=False) + "\n")


def _write_hf(splits: dict[str, SampleSet], folder: Path) -> None:
    import datasets

    features = datasets.Features({
        "image": datasets.Image(), "id": datasets.Value("string"), "text": datasets.Value("string"),
        "prompt": datasets.Value("string"), "group": datasets.Value("string"), "language": datasets.Value("string"),
        "references": datasets.Sequence(datasets.Value("string"))})

    def generate(samples):
        for row, image in _rows(samples):
            yield {**row, "image": image}

    tables = {name: datasets.Dataset.from_generator(generate, gen_kwargs={"samples": samples}, features=features)
              for name, samples in splits.items()}
    datasets.DatasetDict(tables).save_to_disk(str(folder))
