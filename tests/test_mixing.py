"""Several datasets in one run: each sample keeps its own pixel budget; weighted, seeded mixtures."""

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from docvlm.config import DataConfig, DatasetConfig, ModelConfig, load_config
from docvlm.data.schema import PixelBudget, Record, Sample
from docvlm.data.sources import MixtureSampleSet, SampleSet, load_role, mixture_counts
from docvlm.models.families import FAMILIES
from docvlm.models.loading import load_processor, read_model_type
from docvlm.models.prompting import ChatFormat, TrainingCollator, budget_kwargs

from conftest import FAMILIES as BUILT
from conftest import make_config

FIXTURES = Path(__file__).parent / "fixtures" / "layout"
SMALL, LARGE = PixelBudget(784, 784 * 2), PixelBudget(784 * 4, 784 * 8)


def sample(sample_id: str, budget: PixelBudget, width: int) -> Sample:
    record = Record(id=sample_id, target="12", image_ref="-", prompt="Read.", dataset=sample_id, task="transcription",
                    budget=budget, where=sample_id)
    pixels = np.random.default_rng(width).integers(0, 256, (40, width, 3), dtype=np.uint8)
    return Sample(record, Image.fromarray(pixels))


# Families without an area budget (Idefics, Florence-2) take no min/max_pixels at all.
@pytest.mark.parametrize("family", [f for f in BUILT if FAMILIES[f].pixel_budget_keys])
def test_each_sample_of_a_mixed_batch_gets_its_own_budget(tiny_models, family):
    path = str(tiny_models[family])
    spec = FAMILIES[read_model_type(path, ModelConfig())]
    processor = load_processor(path, ModelConfig())
    chat = ChatFormat(processor, spec)
    samples = [sample("small", SMALL, 300), sample("large", LARGE, 300), sample("large2", LARGE, 120)]
    batch = TrainingCollator(chat)(samples)
    # Reference: each sample processed alone at its own budget, the single-budget path.
    for row, s in enumerate(samples):
        alone = processor(text=[chat.prompt_text(s.prompt)], images=[[s.image]], return_tensors="pt",
                          **budget_kwargs(spec, s.record.budget, processor))
        assert batch["image_grid_thw"][row].tolist() == alone["image_grid_thw"][0].tolist()
    grids = batch["image_grid_thw"].prod(dim=1).tolist()
    assert grids[1] > grids[0]  # same image size, different budgets: the budgets really differ


def test_mixed_budget_pixels_match_single_budget_processing(tiny_models):
    path = str(tiny_models["qwen2_vl"])
    processor = load_processor(path, ModelConfig())
    chat = ChatFormat(processor, FAMILIES["qwen2_vl"])
    samples = [sample("small", SMALL, 300), sample("large", LARGE, 300)]
    mixed = TrainingCollator(chat)(samples)
    alone = processor(text=[chat.prompt_text("Read.")], images=[[samples[1].image]], return_tensors="pt",
                      **budget_kwargs(chat.spec, LARGE, processor))
    patches = int(alone["image_grid_thw"][0].prod())
    # The second image's patches come after the first's; resampling by PIL instead of torchvision
    # may differ by rounding, not more.
    torch.testing.assert_close(mixed["pixel_values"][-patches:], alone["pixel_values"], atol=0.08, rtol=0)


@pytest.mark.parametrize("weights, size, expected", [
    ([1, 1], 10, [5, 5]), ([3, 1], 10, [8, 2]), ([1, 1, 1], 10, [4, 3, 3]), ([0, 1], 7, [0, 7]),
    ([0.7, 0.2, 0.1], 100, [70, 20, 10])])
def test_mixture_counts_follow_the_ratios(weights, size, expected):
    assert mixture_counts(weights, size) == expected


def parts_of(lengths):
    parts = []
    for name, length in zip("abc", lengths):
        records = [Record(id=f"{name}{i}", target="t", image_ref="-", prompt="p", dataset=name, task="transcription",
                          budget=PixelBudget()) for i in range(length)]
        parts.append(SampleSet(records))
    return parts


def test_weighted_mixture_repeats_small_and_subsamples_large():
    mixture = MixtureSampleSet(parts_of([3, 100]), [1, 1], 20, seed=5)
    ids = [r.id for r in mixture.records]
    per_dataset = Counter(r.dataset for r in mixture.records)
    assert per_dataset == {"a": 10, "b": 10} and len(mixture) == 20
    small = Counter(i for i in ids if i.startswith("a"))
    assert sorted(small.values()) == [3, 3, 4]  # whole passes first: no sample repeats twice before the others
    assert len({i for i in ids if i.startswith("b")}) == 10  # the large set is subsampled without repeats
    again = MixtureSampleSet(parts_of([3, 100]), [1, 1], 20, seed=5)
    assert [r.id for r in again.records] == ids  # seeded
    other = MixtureSampleSet(parts_of([3, 100]), [1, 1], 20, seed=6)
    assert [r.id for r in other.records] != ids
    # Interleaved, not one dataset after the other.
    assert {r.dataset for r in mixture.records[:10]} == {"a", "b"}


def test_weighted_mixture_from_config(lines_dir):
    data = load_config(None, [
        "--data.mixture", "weighted", "--data.mixture_size", "30", "--data.datasets",
        f"[{{name: a, source: {lines_dir}, weight: 2}}, {{name: b, source: {lines_dir}, weight: 1}}]"]).data
    train, reports = load_role(data, "train")
    assert isinstance(train, MixtureSampleSet) and len(train) == 30
    assert Counter(r.dataset for r in train.records) == {"a": 20, "b": 10}
    assert train[0].image.mode == "RGB" and set(reports) == {"a/train", "b/train"}
    test, _ = load_role(data, "test")
    assert len(test) == 12  # evaluation roles are never resampled


def test_bad_weights_are_refused(lines_dir):
    overrides = ["--data.mixture", "weighted", "--data.datasets", f"[{{name: a, source: {lines_dir}, weight: 0}}]"]
    from docvlm.errors import ConfigError, DataError

    # By the config's validation, before any command starts...
    with pytest.raises(ConfigError, match="a weighted mixture needs weights >= 0, not all 0"):
        load_config(None, overrides)
    # ...and still by the mixture itself for a config built without it.
    with pytest.raises(DataError, match="weights must be >= 0 and not all 0"):
        load_role(load_config(None, overrides, check=False).data, "train")


def make_line_folder(lines_dir, root: Path) -> Path:
    rows = [json.loads(line) for line in (lines_dir / "train.jsonl").read_text().splitlines()]
    for i, row in enumerate(rows[:12]):
        folder = root / f"page{i // 4}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(lines_dir / row["image"], folder / f"line{i}.png")
        (folder / f"line{i}.gt.txt").write_text(row["text"] + "\n", encoding="utf-8")
    return root


def make_page_folder(root: Path) -> Path:
    root.mkdir(parents=True)
    for i in range(3):
        shutil.copy(FIXTURES / "page2013.xml", root / f"p{i}.xml")
    pixels = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "page2013.png")
    return root


def test_tiny_model_trains_on_page_xml_and_line_folder_mixture(tiny_models, lines_dir, tmp_path):
    from docvlm.train.trainer import run_training

    pages = make_page_folder(tmp_path / "pages")
    lines = make_line_folder(lines_dir, tmp_path / "lines")
    cfg = make_config(tmp_path, tiny_models["qwen2_vl"], lines_dir, "--data.datasets",
                      f"[{{name: pages, source: {pages}, eval_split: null, test_split: null, max_pixels: 3136, "
                      f"min_pixels: 784, weight: 1}}, {{name: lines, source: {lines}, split_ratios: [0.67, 0.33, 0], "
                      f"test_split: null, max_pixels: 1568, min_pixels: 784, weight: 1}}]",
                      "--data.mixture", "weighted", "--data.mixture_size", "16", "--train.max_steps", "3",
                      "--train.eval_steps", "0", "--train.save_steps", "3", "--tuning.method", "lora",
                      "--generation.max_new_tokens", "4")
    summary = run_training(cfg)
    assert summary["global_step"] == 3 and np.isfinite(summary["train_loss"])
    report = json.loads((cfg.run_dir / "data_report.json").read_text())
    assert report["train:pages/train"]["kept"] == 12  # 3 pages x 4 lines
    assert report["train:lines/train"]["kept"] == 8  # 2 of 3 page folders: a page never straddles splits
    assert report["eval:lines/validation"]["kept"] == 4
