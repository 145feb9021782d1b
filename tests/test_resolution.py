"""The pixel budget is set per dataset, saved with the weights and used by predict by default."""

import json

import pytest
from PIL import Image

from docvlm.cli import main
from docvlm.config import ModelConfig
from docvlm.data.schema import PixelBudget, Record, Sample
from docvlm.models.families import FAMILIES
from docvlm.models.loading import load_processor, load_tuned
from docvlm.models.prompting import ChatFormat, TrainingCollator, pixel_budget_of
from docvlm.train.trainer import run_training

from conftest import make_config

MAX_PIXELS = 28 * 28 * 6  # 6 visual tokens at most


@pytest.fixture(scope="module")
def budget_run(tiny_models, lines_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("budget")
    cfg = make_config(tmp, tiny_models["qwen2_vl"], lines_dir, "--data.datasets.0.max_pixels", str(MAX_PIXELS),
                      "--data.datasets.0.min_pixels", "1568", "--train.max_steps", "2", "--train.eval_steps", "0")
    run_training(cfg)
    return cfg


def test_budget_is_saved_with_adapter_and_checkpoints(budget_run):
    for folder in [budget_run.run_dir / "adapter", budget_run.run_dir / "checkpoints" / "checkpoint-2"]:
        processor = load_processor(str(folder), ModelConfig())
        assert pixel_budget_of(processor, FAMILIES["qwen2_vl"]) == PixelBudget(1568, MAX_PIXELS), folder
        saved = json.loads((folder / "processor_config.json").read_text())
        assert saved["image_processor"]["size"] == {"shortest_edge": 1568, "longest_edge": MAX_PIXELS}


def test_loading_a_run_restores_the_budget(budget_run):
    loaded = load_tuned(budget_run.run_dir)
    assert pixel_budget_of(loaded.processor, loaded.spec).max_pixels == MAX_PIXELS


def test_predict_uses_the_saved_budget(budget_run, tmp_path):
    # 112x112 would be 16 visual tokens at full size. (A very thin line cannot always be brought
    # under the budget: Qwen's smart_resize keeps at least one 28-pixel row.)
    wide = tmp_path / "wide.png"
    Image.new("RGB", (112, 112), "white").save(wide)
    loaded = load_tuned(budget_run.run_dir)
    budget = pixel_budget_of(loaded.processor, loaded.spec)
    record = Record(id="w", target="", image_ref=str(wide), prompt="p", dataset="d", task="transcription",
                    budget=budget, where="w")
    batch = TrainingCollator(ChatFormat(loaded.processor, loaded.spec))([Sample(record, Image.open(wide).convert("RGB"))])
    visual_tokens = int((batch["input_ids"] == loaded.processor.image_token_id).sum())
    assert visual_tokens <= MAX_PIXELS // (28 * 28)
    out = tmp_path / "p.jsonl"
    assert main(["predict", str(budget_run.run_dir), str(wide), "--output", str(out)]) == 0
    assert json.loads(out.read_text())["id"] == "wide.png"


def test_budget_applies_per_dataset(tiny_models):
    processor = load_processor(str(tiny_models["qwen2_vl"]), ModelConfig())
    chat = ChatFormat(processor, FAMILIES["qwen2_vl"])
    image = Image.new("RGB", (112, 112), "white")

    def tokens(budget):
        record = Record(id="a", target="1", image_ref="-", prompt="p", dataset="d", task="t", budget=budget, where="a")
        batch = TrainingCollator(chat)([Sample(record, image)])
        return int((batch["input_ids"] == processor.image_token_id).sum())

    assert tokens(PixelBudget(784, 28 * 28 * 4)) == 4   # resized to 56x56
    assert tokens(PixelBudget(784, 28 * 28 * 20)) == 16  # fits: kept at 112x112


def test_too_many_visual_tokens_warns(tiny_models, caplog):
    processor = load_processor(str(tiny_models["qwen2_vl"]), ModelConfig())
    chat = ChatFormat(processor, FAMILIES["qwen2_vl"])
    record = Record(id="big", target="1", image_ref="-", prompt="p", dataset="d", task="t",
                    budget=PixelBudget(784, 28 * 28 * 40), where="page.png (sample 'big')")
    with caplog.at_level("WARNING"):
        TrainingCollator(chat, warn_visual_tokens=8)([Sample(record, Image.new("RGB", (560, 56), "white"))])
    assert "page.png (sample 'big'): image gives 40 visual tokens (> data.warn_visual_tokens=8)" in caplog.text
