"""Line images of named samples, found through the run's own config and data sources.

A prediction row names its sample by id; the image is whatever the run's dataset loader gives for
that id (a line cut from its page, a row of a Hugging Face dataset, a file), so the report shows
exactly what the model read. Encoded as base64 PNG for an offline page.
"""

from __future__ import annotations

import base64
import io
import logging
from dataclasses import replace
from pathlib import Path

from docvlm.errors import DocVLMError

log = logging.getLogger(__name__)

MAX_SIZE = (1000, 600)  # a line keeps its width, a page fits a screen


def sample_images(run_path: Path, dataset_name: str, split: str, ids: list[str]) -> dict[str, str]:
    """id -> ``data:image/png;base64,...`` for the ids found; a missing source gives no images."""
    from docvlm.data.sources import SPLIT_ROLES, load_split, split_name
    from docvlm.runs import load_run_config

    try:
        cfg = load_run_config(run_path)
        dataset = next((d for d in cfg.data.datasets if d.name == dataset_name), None)
        role = next((r for r in SPLIT_ROLES if dataset and split_name(dataset, r) == split), None)
        if dataset is None or role is None:
            return {}
        data = replace(cfg.data, on_bad_sample="skip", mixture="concat")
        samples = load_split(dataset, role, data)
    except (DocVLMError, OSError, ValueError) as error:
        log.warning("report: no line images for %s/%s: %s", dataset_name, split, error)
        return {}
    wanted = set(ids)
    found = {}
    for index, record in enumerate(samples.records):
        if record.id in wanted:
            sample = samples[index]
            if sample is not None:
                found[record.id] = png_data_uri(sample.image)
    return found


def png_data_uri(image) -> str:
    image = image.copy()
    image.thumbnail(MAX_SIZE)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
