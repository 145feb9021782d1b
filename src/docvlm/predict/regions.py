"""Florence-2 region answers: boxes, quad boxes and labels from ``<loc_N>`` tokens, and pictures of them.

Florence-2 writes locations as 1000 bins per image side (``label<loc_x1><loc_y1><loc_x2><loc_y2>``,
eight bins for an OCR quad). Its processor's ``post_process_generation`` parses each task's answer
and maps bins back to pixels of the image it is given; docvlm calls it with the original image
size, so the JSON is in the input image's coordinates. Known limit of that parser (transformers
5.23): labels of ``<OD>``, ``<DENSE_REGION_CAPTION>`` and ``<CAPTION_TO_PHRASE_GROUNDING>`` are
reduced to ASCII; ``<OCR_WITH_REGION>`` text is kept as written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from docvlm.errors import ModelError
from docvlm.models.prompting import task_token_of

BOX_COLOUR = (255, 0, 0)
QUAD_COLOUR = (0, 160, 255)


def region_task(processor: Any, prompt: str) -> str | None:
    """The prompt's task token when its answer holds locations (Florence-2 processors only)."""
    kinds = getattr(processor, "tasks_answer_post_processing_type", None)
    task = task_token_of(prompt)
    if not kinds or task is None or kinds.get(task, "pure_text") == "pure_text":
        return None
    return task


def region_tasks(processor: Any) -> list[str]:
    kinds = getattr(processor, "tasks_answer_post_processing_type", None) or {}
    return sorted(task for task, kind in kinds.items() if kind != "pure_text")


def parse_regions(processor: Any, task: str, text: str, image_size: tuple[int, int]) -> dict:
    """``{"bboxes": [[x1, y1, x2, y2], ...], "labels": [...]}`` (or ``quad_boxes`` for OCR
    with regions, ``polygons`` for segmentation) in pixels of an image of ``image_size`` (w, h)."""
    try:
        parsed = processor.post_process_generation(text=text, task=task, image_size=image_size)[task]
    except ValueError as error:  # e.g. a processor config without this task's parsing rules
        raise ModelError(f"cannot parse the {task} answer {text!r}: {error}") from None
    return {key: _plain(value) for key, value in parsed.items()}


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def draw_regions(image: Image.Image, regions: dict, path: str | Path) -> Path:
    """Write ``image`` with its boxes, quads and polygons outlined and labelled, as a PNG."""
    picture = image.convert("RGB").copy()
    draw = ImageDraw.Draw(picture)
    labels = regions.get("labels") or regions.get("bboxes_labels") or []
    for index, box in enumerate(regions.get("bboxes", [])):
        # A model may write the corners in either order; PIL wants the top-left one first.
        (x1, x2), (y1, y2) = sorted((box[0], box[2])), sorted((box[1], box[3]))
        draw.rectangle([(x1, y1), (x2, y2)], outline=BOX_COLOUR, width=2)
        _label(draw, labels, index, (box[0], box[1]), BOX_COLOUR)
    for index, quad in enumerate(regions.get("quad_boxes", [])):
        draw.polygon(list(zip(quad[0::2], quad[1::2])), outline=QUAD_COLOUR, width=2)
        _label(draw, labels, index, (quad[0], quad[1]), QUAD_COLOUR)
    for index, polygons in enumerate(regions.get("polygons", [])):
        for polygon in polygons:
            if len(polygon) >= 6:
                draw.polygon(list(zip(polygon[0::2], polygon[1::2])), outline=QUAD_COLOUR, width=2)
        _label(draw, regions.get("polygons_labels") or labels, index,
               tuple(polygons[0][:2]) if polygons and polygons[0] else (0, 0), QUAD_COLOUR)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path, format="PNG")
    return path


def _label(draw: ImageDraw.ImageDraw, labels: list, index: int, at: tuple, colour: tuple) -> None:
    if index < len(labels) and labels[index]:
        draw.text((at[0] + 2, max(0, at[1] - 11)), str(labels[index]), fill=colour)
