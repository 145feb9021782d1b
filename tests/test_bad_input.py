"""Every user mistake in the data gives one line naming file / sample / field, or a counted skip."""

import json
import shutil

import pytest

from docvlm.cli import main
from docvlm.config import DataConfig, DatasetConfig
from docvlm.data.sources import load_split
from docvlm.errors import DataError


@pytest.fixture
def manifest_dir(lines_dir, tmp_path):
    """A copy of the synthetic test split with one broken row per kind of mistake."""
    root = tmp_path / "data"
    shutil.copytree(lines_dir / "images", root / "images")
    rows = [json.loads(line) for line in (lines_dir / "test.jsonl").read_text().splitlines()]
    (root / "images" / "broken.png").write_bytes(b"this is not a png")
    rows[1]["image"] = "images/nowhere.png"          # missing image
    rows[2]["text"] = "   "                          # empty target
    del rows[3]["text"]                              # missing field
    rows[4]["image"] = "images/broken.png"           # unreadable image
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def dataset(source) -> DatasetConfig:
    return DatasetConfig(name="d", source=str(source), train_split=None, eval_split=None, test_split="test")


@pytest.mark.parametrize("row, words", [
    (1, ["test.jsonl:2", "sample 'test-000001'", "field 'image'", "nowhere.png", "image not found"]),
    (2, ["test.jsonl:3", "sample 'test-000002'", "field 'text' is empty"]),
    (3, ["test.jsonl:4", "sample 'test-000003'", "field 'text' is missing"]),
    (4, ["test.jsonl:5", "sample 'test-000004'", "broken.png", "cannot be read"]),
])
def test_each_bad_row_is_named(manifest_dir, row, words):
    rows = (manifest_dir / "test.jsonl").read_text().splitlines()
    # Keep only the good first row and the bad row under test, so it is the first error met.
    (manifest_dir / "test.jsonl").write_text(rows[0] + "\n" + "\n" * (row - 1) + rows[row] + "\n")
    with pytest.raises(DataError) as error:
        load_split(dataset(manifest_dir), "test", DataConfig(datasets=[dataset(manifest_dir)]))
    message = str(error.value)
    for word in words:
        assert word in message, message


def test_skip_mode_counts_every_reason(manifest_dir):
    data = DataConfig(datasets=[dataset(manifest_dir)], on_bad_sample="skip")
    samples = load_split(data.datasets[0], "test", data)
    report = samples.report.as_dict()
    assert len(samples) == 2 and report["kept"] == 2 and report["total"] == 6
    assert report["skipped"] == {"missing_image": 1, "empty_target": 1, "missing_field": 1, "unreadable_image": 1}
    assert report["skipped_total"] == 4 and len(report["examples"]) == 4


def test_missing_dataset_path(tmp_path):
    missing = dataset(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="source not found: .*nope.jsonl"):
        load_split(missing, "test", DataConfig(datasets=[missing]))


def test_missing_split_lists_available(lines_dir):
    ds = DatasetConfig(name="d", source=str(lines_dir), test_split="holdout")
    with pytest.raises(DataError, match="no manifest for split 'holdout' \\(found splits: test, train, validation\\)"):
        load_split(ds, "test", DataConfig(datasets=[ds]))


def test_invalid_json_line_names_the_line(tmp_path):
    (tmp_path / "test.jsonl").write_text('{"image": "a.png", "text": "1"}\n{oops\n')
    with pytest.raises(DataError, match="test.jsonl:2: not valid JSON"):
        load_split(dataset(tmp_path), "test", DataConfig(datasets=[dataset(tmp_path)]))


def _hf_dataset(tmp_path, lines_dir):
    import datasets

    rows = [json.loads(line) for line in (lines_dir / "test.jsonl").read_text().splitlines()]
    table = datasets.Dataset.from_dict({
        "im": [str(lines_dir / r["image"]) for r in rows], "text": [r["text"] for r in rows]
    }).cast_column("im", datasets.Image())
    table = table.map(lambda row, i: {"text": "" if i == 2 else row["text"]}, with_indices=True)
    datasets.DatasetDict({"test": table}).save_to_disk(str(tmp_path / "hf"))
    return tmp_path / "hf"


def test_hf_dataset_columns_and_empty_targets(tmp_path, lines_dir):
    source = _hf_dataset(tmp_path, lines_dir)
    wrong = DatasetConfig(name="d", source=str(source), image_column="image", text_column="text",
                          train_split=None, eval_split=None)
    with pytest.raises(DataError, match="split 'test': column 'image' not found \\(columns: im, text\\)"):
        load_split(wrong, "test", DataConfig(datasets=[wrong]))
    right = DatasetConfig(name="d", source=str(source), image_column="im", train_split=None, eval_split=None)
    with pytest.raises(DataError, match="row 2 \\(sample 'test-2'\\): field 'text' is empty"):
        load_split(right, "test", DataConfig(datasets=[right]))
    data = DataConfig(datasets=[right], on_bad_sample="skip")
    samples = load_split(right, "test", data)
    assert len(samples) == 5 and samples.report.skipped["empty_target"] == 1
    first = samples[0]
    assert first.image.mode == "RGB" and first.target == json.loads(
        (lines_dir / "test.jsonl").read_text().splitlines()[0])["text"]


def test_hf_select_and_shuffle_keep_sample_identity(tmp_path, lines_dir):
    source = _hf_dataset(tmp_path, lines_dir)
    texts = [json.loads(line)["text"] for line in (lines_dir / "test.jsonl").read_text().splitlines()]

    def chosen(select, seed):
        ds = DatasetConfig(name="d", source=str(source), image_column="im", train_split=None, eval_split=None,
                           test_select=select, shuffle_seed=seed)
        return load_split(ds, "test", DataConfig(datasets=[ds], on_bad_sample="skip"))

    plain = chosen("0:2", None)
    assert [r.id for r in plain.records] == ["test-0", "test-1"]
    shuffled = chosen(None, 3)
    assert [r.id for r in shuffled.records] == [r.id for r in chosen(None, 3).records]  # seeded
    assert [r.id for r in shuffled.records] != [r.id for r in chosen(None, None).records]
    # An id names the same row, image and text, whatever the seed: row 2 (empty) is the skipped one.
    assert sorted(r.id for r in shuffled.records) == [f"test-{i}" for i in (0, 1, 3, 4, 5)]
    for record in shuffled.records:
        assert record.target == texts[int(record.id.split("-")[1])]
    from PIL import Image

    row = int(shuffled.records[0].id.split("-")[1])
    on_disk = Image.open(lines_dir / "images" / "test" / f"test-{row:06d}.png").convert("RGB")
    assert shuffled[0].image.tobytes() == on_disk.tobytes()


def test_cli_prints_one_line_for_bad_data(tiny_models, manifest_dir, tmp_path, capsys):
    rows = (manifest_dir / "test.jsonl").read_text().splitlines()
    for split in ("train", "validation"):
        (manifest_dir / f"{split}.jsonl").write_text("\n".join(rows) + "\n")
    args = ["train", "--model.name_or_path", str(tiny_models["qwen2_vl"]), "--data.datasets.0.source",
            str(manifest_dir), "--output_root", str(tmp_path / "runs")]
    config = tmp_path / "empty.yaml"
    config.write_text("{}\n")
    code = main([args[0], str(config), *args[1:]])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and err.startswith("error: ") and "sample 'test-000001'" in err
    assert "Traceback" not in err


def test_skip_mode_writes_counts_into_run_folder(tiny_models, manifest_dir, tmp_path, capsys):
    rows = (manifest_dir / "test.jsonl").read_text().splitlines()
    # Each row twice, the copy under an id of its own (a repeated id is a skip of its own kind).
    copies = [json.dumps({**json.loads(row), "id": f"copy-{i}"}) for i, row in enumerate(rows)]
    (manifest_dir / "train.jsonl").write_text("\n".join(rows + copies) + "\n")
    (manifest_dir / "validation.jsonl").write_text("\n".join(rows) + "\n")
    config = tmp_path / "c.yaml"
    config.write_text("{}\n")
    code = main(["train", str(config), "--model.name_or_path", str(tiny_models["qwen2_vl"]),
                 "--model.dtype", "fp32", "--data.datasets.0.source", str(manifest_dir),
                 "--data.datasets.0.max_pixels", "3136", "--data.on_bad_sample", "skip",
                 "--train.max_steps", "1", "--train.batch_size", "2", "--train.gradient_accumulation_steps", "1",
                 "--train.eval_steps", "0", "--train.save_steps", "1", "--train.report_to", "[none]",
                 "--output_root", str(tmp_path / "runs")])
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "runs" / "run" / "data_report.json").read_text())
    assert report["train:data/train"]["skipped_total"] == 8
    assert report["eval:data/validation"]["skipped"] == {
        "missing_image": 1, "empty_target": 1, "missing_field": 1, "unreadable_image": 1}


def test_missing_model_folder_is_one_line(tmp_path, capsys, lines_dir):
    config = tmp_path / "c.yaml"
    config.write_text("{}\n")
    code = main(["train", str(config), "--model.name_or_path", str(tmp_path / "no-model"),
                 "--data.datasets.0.source", str(lines_dir), "--output_root", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no-model" in err and "\n" not in err
