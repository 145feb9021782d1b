"""``docvlm data check`` (counts, tokens, charset, leakage) and ``docvlm data export`` round trips."""

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from docvlm.cli import main
from docvlm.config import DatasetConfig, load_config
from docvlm.data.sources import load_role, load_split
from docvlm.datacheck import check_data, difference_hash, load_tokenizing
from docvlm.models.prompting import TrainingCollator

FIXTURES = Path(__file__).parent / "fixtures" / "layout"


@pytest.fixture
def leaky_dir(lines_dir, tmp_path):
    """The synthetic lines with one train image copied into test and one re-encoded into validation."""
    root = tmp_path / "leaky"
    shutil.copytree(lines_dir, root)
    train = [json.loads(line) for line in (root / "train.jsonl").read_text().splitlines()]
    test = [json.loads(line) for line in (root / "test.jsonl").read_text().splitlines()]
    shutil.copy(root / train[0]["image"], root / test[0]["image"])  # exact copy
    valid = [json.loads(line) for line in (root / "validation.jsonl").read_text().splitlines()]
    image = Image.open(root / train[1]["image"]).convert("RGB")
    ImageEnhance.Brightness(image).enhance(1.08).save(root / valid[0]["image"].replace(".png", ".jpg"), quality=90)
    valid[0]["image"] = valid[0]["image"].replace(".png", ".jpg")
    (root / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in valid))
    return root


def config(tmp_path, model, source, *extra):
    return load_config(None, ["--output_root", str(tmp_path / "runs"), "--model.name_or_path", str(model),
                              "--data.datasets.0.name", "lines", "--data.datasets.0.source", str(source),
                              "--data.datasets.0.max_pixels", "3136", "--data.datasets.0.min_pixels", "784", *extra])


def test_check_counts_tokens_and_charset(tiny_models, leaky_dir, tmp_path):
    cfg = config(tmp_path, tiny_models["qwen2_vl"], leaky_dir, "--data.max_target_length", "5")
    tokenizing = load_tokenizing(cfg)
    report = check_data(cfg, tokenizing)
    assert report["length_unit"].startswith("tokens")
    assert {k: v["samples"] for k, v in report["splits"].items()} == {
        "lines/train": 24, "lines/validation": 6, "lines/test": 6}
    train, _ = load_role(cfg.data, "train")
    targets = [r.target for r in train.records]
    lengths = [len(tokenizing.processor.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in targets]
    assert report["splits"]["lines/train"]["target_length"]["max"] == max(lengths)
    assert report["splits"]["lines/train"]["target_length"]["over_limit"] == sum(n > 5 for n in lengths)
    # Total training tokens = what the training collator really builds for every train sample.
    collator = TrainingCollator(tokenizing.chat)
    expected = sum(int(collator([train[i]])["attention_mask"].sum()) for i in range(len(train)))
    assert report["total_training_tokens"] == expected
    visual = report["splits"]["lines/train"]["visual_tokens"]
    grids = [int(collator([train[i]])["image_grid_thw"].prod()) // 4 for i in range(len(train))]
    assert visual["max"] == max(grids) and sum(visual["histogram"].values()) == 24
    all_targets = [r.target for role in ("train", "eval", "test") for r in load_role(cfg.data, role)[0].records]
    assert report["charset"]["frequencies"] == dict(Counter("".join(all_targets)))


def test_check_finds_exact_and_perceptual_leakage(tiny_models, leaky_dir, tmp_path):
    report = check_data(config(tmp_path, tiny_models["qwen2_vl"], leaky_dir), None)
    assert report["length_unit"].startswith("characters")
    leakage = report["leakage"]
    assert leakage["exact"] == {"count": 1, "examples": [["lines/train:train-000000", "lines/test:test-000000"]]}
    assert leakage["perceptual"]["count"] == 1
    assert leakage["perceptual"]["examples"] == [["lines/train:train-000001", "lines/validation:validation-000000"]]
    assert leakage["pages"]["count"] == 0


def test_check_finds_a_page_in_two_splits(tmp_path):
    for split in ("train", "test"):
        (tmp_path / "set" / split).mkdir(parents=True)
        xml = (FIXTURES / "page2013.xml").read_text(encoding="utf-8")
        if split == "test":  # other line boxes, same page: no line image repeats, the page does
            xml = xml.replace('points="10,10 200,10 200,40 10,40"', 'points="11,12 199,12 199,41 11,41"')
        (tmp_path / "set" / split / "p.xml").write_text(xml, encoding="utf-8")
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(
            tmp_path / "set" / split / "page2013.png")
    # A hub id that cannot load offline: lengths in characters (a missing folder is a config error).
    cfg = config(tmp_path, "nobody/no-model", tmp_path / "set", "--data.datasets.0.eval_split", "null")
    leakage = check_data(cfg, None)["leakage"]
    assert leakage["pages"]["count"] == 4 * 4  # every train line pairs with every test line of that page
    assert leakage["exact"]["count"] == 3  # the three unchanged lines


def test_difference_hash_tolerates_reencoding_but_not_other_text(lines_dir):
    rows = [json.loads(line) for line in (lines_dir / "train.jsonl").read_text().splitlines()]
    images = [Image.open(lines_dir / r["image"]).convert("RGB") for r in rows]
    hashes = [difference_hash(image) for image in images]
    distances = [(a ^ b).bit_count() for i, a in enumerate(hashes) for b in hashes[i + 1:]]
    assert min(distances) > 6  # 24 different synthetic lines: no false near-duplicate


def test_data_check_cli_writes_report(tiny_models, leaky_dir, tmp_path, capsys):
    output = tmp_path / "check.json"
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(json.dumps({"model": {"name_or_path": str(tiny_models["qwen2_vl"])},
                                    "data": {"datasets": [{"name": "lines", "source": str(leaky_dir)}]}}))
    assert main(["data", "check", str(cfg_file), "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "lines/train: 24 samples" in printed and "LEAKAGE: 1 identical images" in printed
    assert json.loads(output.read_text())["splits"]["lines/test"]["samples"] == 6
    assert main(["data", "check", str(cfg_file), "--output", str(output), "--strict"]) == 1


@pytest.mark.parametrize("fmt", ["jsonl", "hf"])
def test_export_round_trip_of_page_lines(tmp_path, fmt, capsys):
    shutil.copy(FIXTURES / "page2013.xml", tmp_path / "page2013.xml")
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(
        tmp_path / "page2013.png")
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(json.dumps({"data": {"datasets": [
        {"name": "pages", "source": str(tmp_path / "page2013.xml"), "eval_split": None, "test_split": None}]}}))
    assert main(["data", "export", str(cfg_file), "--output", str(tmp_path / "out"), "--format", fmt]) == 0
    assert "pages/train: kept 4 of 4" in capsys.readouterr().out
    cfg = load_config(cfg_file)
    original = load_split(cfg.data.datasets[0], "train", cfg.data)
    again = DatasetConfig(name="again", source=str(tmp_path / "out" / "pages"), format=fmt, eval_split=None,
                          test_split=None, id_column="id", group_column="group", image_column="image")
    reloaded = load_split(again, "train", load_config(None, []).data)
    assert [r.target for r in reloaded.records] == [r.target for r in original.records]
    assert [r.id for r in reloaded.records] == [r.id for r in original.records]
    assert [r.group for r in reloaded.records] == ["page2013"] * 4
    for i in range(4):
        assert reloaded[i].image.tobytes() == original[i].image.tobytes()
