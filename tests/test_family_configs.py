"""Shipped per-family configs agree with their family's spec; per-sample prompts and answer lists."""

import json
import re
from pathlib import Path

import pytest
import torch

from docvlm.config import ModelConfig, load_config
from docvlm.data.sources import load_split
from docvlm.models.families import FAMILIES
from docvlm.models.loading import load_base

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
FAMILY_CONFIGS = sorted(p for p in CONFIG_DIR.rglob("*.yaml") if p.parent.name in FAMILIES)


def test_every_family_ships_its_configs():
    names = {str(p.relative_to(CONFIG_DIR)) for p in FAMILY_CONFIGS}
    for family in FAMILIES:
        tasks = ["docvqa_full", "ocr_full"] if FAMILIES[family].architecture == "seq2seq" else ["htr_lora", "docvqa_lora"]
        assert {f"{family}/{task}.yaml" for task in tasks} <= names
    assert "idefics2/docvqa_qlora.yaml" in names


@pytest.mark.parametrize("path", FAMILY_CONFIGS, ids=lambda p: str(p.relative_to(CONFIG_DIR)))
def test_family_config_fits_its_spec(path):
    spec = FAMILIES[path.parent.name]
    cfg = load_config(path)
    assert set(cfg.model.processor_options or {}) <= set(spec.processor_options)
    for dataset in cfg.data.datasets:
        if spec.architecture == "seq2seq":
            assert dataset.task_token, "Florence-2 datasets need a task token"
        else:
            assert dataset.task_token is None
        if spec.pixel_budget_keys is None:
            assert dataset.min_pixels is None and dataset.max_pixels is None


def test_idefics2_regex_targets_the_text_model_connector_and_resampler_only(tiny_models):
    cfg = load_config(CONFIG_DIR / "idefics2" / "docvqa_qlora.yaml")
    assert cfg.tuning.method == "qlora" and cfg.model.processor_options == {"do_image_splitting": False}
    loaded = load_base(ModelConfig(name_or_path=str(tiny_models["idefics2"]), dtype="fp32"))
    pattern = re.compile(cfg.tuning.lora.target_modules)
    matched = [n for n, m in loaded.model.named_modules() if isinstance(m, torch.nn.Linear) and pattern.fullmatch(n)]
    parts = {loaded.spec.component_of(n) for n in matched}
    assert parts == {"language", "projector"}
    assert any("perceiver_resampler" in n for n in matched) and any("modality_projection" in n for n in matched)


def test_question_column_task_token_and_answer_lists(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8), "white").save(tmp_path / "p.png")
    rows = [{"id": "q1", "image": "p.png", "question": "What is the total?", "answers": ["$12", "12"]},
            {"id": "q2", "image": "p.png", "question": "Date?", "answers": "1 May"}]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config(None, ["--data.datasets.0.source", str(tmp_path), "--data.datasets.0.answers_column", "answers",
                             "--data.datasets.0.question_column", "question", "--data.datasets.0.task_token", "<DocVQA>"])
    samples = load_split(cfg.data.datasets[0], "test", cfg.data)
    first, second = samples.records
    assert (first.prompt, first.target, first.all_references) == ("<DocVQA>What is the total?", "$12", ("$12", "12"))
    assert (second.prompt, second.target, second.all_references) == ("<DocVQA>Date?", "1 May", ("1 May",))
