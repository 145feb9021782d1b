"""Synthetic scenes: rendered shapes as a stand-in for general vision-language benchmarks.

Each scene is one to three shapes of one colour and kind on a light background. From a scene
come the questions a general benchmark asks, in the formats users' suites have: VQA (colour,
shape, count) with ten "human" answers that include accepted variants ("2" / "two", "square" /
"box"), captions with several references, multiple choice over shapes, caption retrieval, and
label-free probe prompts. The files are JSONL manifests with PNGs beside them, read by the same
sources as any user dataset.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 70, 220), "yellow": (230, 200, 20)}
SHAPES = ("circle", "square", "triangle")
NUMBER_WORDS = {1: "one", 2: "two", 3: "three"}
SHAPE_VARIANTS = {"circle": "round", "square": "box", "triangle": "triangle"}
SIZE = 56
"""Scene side in pixels: 2 x 2 merged Qwen-VL patches (four visual tokens)."""


def render_scene(colour: str, shape: str, count: int, rng: random.Random) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), tuple(rng.randint(225, 255) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    cells = rng.sample([(x, y) for x in range(2) for y in range(2)], count)
    for cx, cy in cells:
        r = rng.randint(8, 11)
        x = cx * SIZE // 2 + SIZE // 4 + rng.randint(-2, 2)
        y = cy * SIZE // 2 + SIZE // 4 + rng.randint(-2, 2)
        fill = tuple(max(0, min(255, c + rng.randint(-25, 25))) for c in COLOURS[colour])
        if shape == "circle":
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
        elif shape == "square":
            draw.rectangle((x - r, y - r, x + r, y + r), fill=fill)
        else:
            draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=fill)
    return image


def _plural(shape: str, count: int) -> str:
    return shape if count == 1 else shape + "s"


def scene_rows(colour: str, shape: str, count: int, image: str, sample_id: str) -> dict[str, list[dict]]:
    """The rows each suite kind gets from one scene."""
    words = NUMBER_WORDS[count]
    caption = f"{words} {colour} {_plural(shape, count)}"
    captions = [caption, f"{count} {colour} {_plural(shape, count)}", f"a picture of {caption}"]
    vqa = [
        ("What color is it?", [colour] * 8 + [f"{colour}", f"bright {colour}"]),
        ("What shape is it?", [shape] * 7 + [SHAPE_VARIANTS[shape]] * 2 + [_plural(shape, 2)]),
        ("How many shapes?", [str(count)] * 7 + [words] * 3),
    ]
    return {
        "vqa": [{"id": f"{sample_id}-q{i}", "image": image, "question": q, "answers": a}
                for i, (q, a) in enumerate(vqa)],
        "caption": [{"id": sample_id, "image": image, "captions": captions}],
        "retrieval": [{"id": sample_id, "image": image, "captions": [caption]}],
        "multiple_choice": [{"id": sample_id, "image": image, "question": "What shape is it?",
                             "options": list(SHAPES), "answer": shape}],
        "probes": [{"id": sample_id, "image": image, "question": "Describe the picture."}],
    }


def write_scenes(out_dir: str | Path, splits: dict[str, int], seed: int = 0) -> Path:
    """Render scenes per split and write ``<kind>/<split>.jsonl`` for every suite kind."""
    out_dir = Path(out_dir)
    for split_index, (split, count) in enumerate(splits.items()):
        rng = random.Random(seed * 1000 + split_index)
        (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
        rows: dict[str, list[dict]] = {}
        for i in range(count):
            colour, shape, number = rng.choice(list(COLOURS)), rng.choice(SHAPES), rng.randint(1, 3)
            name = f"{split}-{i:05d}"
            render_scene(colour, shape, number, rng).save(out_dir / "images" / split / f"{name}.png")
            for kind, kind_rows in scene_rows(colour, shape, number, f"../images/{split}/{name}.png", name).items():
                rows.setdefault(kind, []).extend(kind_rows)
        for kind, kind_rows in rows.items():
            (out_dir / kind).mkdir(parents=True, exist_ok=True)
            with open(out_dir / kind / f"{split}.jsonl", "w", encoding="utf-8") as manifest:
                manifest.writelines(json.dumps(row) + "\n" for row in kind_rows)
    return out_dir


def suite_configs(scene_dir: str | Path, split: str = "test", max_samples: int | None = None) -> list[dict]:
    """``retention.suites`` entries (plain dicts, as in YAML) for the scene manifests."""
    root = Path(scene_dir)

    def dataset(kind: str, **fields) -> dict:
        return {"name": f"scenes_{kind}", "source": str(root / kind), "test_split": split, "train_split": None,
                "eval_split": None, "allow_outside_root": True, "min_pixels": SIZE * SIZE,
                "max_pixels": SIZE * SIZE, **fields}

    suites = [
        {"kind": "vqa", "dataset": dataset("vqa", question_column="question", answers_column="answers")},
        {"kind": "caption", "dataset": dataset("caption", prompt="Describe the picture.", answers_column="captions")},
        {"kind": "multiple_choice", "dataset": dataset("multiple_choice", question_column="question",
                                                       options_column="options", text_column="answer")},
        {"kind": "retrieval", "dataset": dataset("retrieval", prompt="Describe the picture.",
                                                 answers_column="captions"), "max_candidates": 12},
        {"kind": "probes", "dataset": dataset("probes", question_column="question", text_column="")},
    ]
    if max_samples is not None:
        for suite in suites:
            suite["max_samples"] = max_samples
    return suites
