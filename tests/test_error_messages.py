"""Errors that name the real cause (issue 9, items 19, 20 and 23)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import one_error_line
from docvlm.cli import main
from docvlm.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures" / "layout"


def test_predict_with_a_missing_run_folder_is_not_a_hub_error(tmp_path, monkeypatch, capsys, lines_dir):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    assert main(["predict", "runs/nope", str(lines_dir / "images")]) == 2
    line = one_error_line(capsys)
    assert "there is no folder runs/nope" in line and "huggingface" not in line


def test_evaluating_a_crashed_run_says_so(tmp_path, capsys, tiny_models, lines_dir):
    run = tmp_path / "crashed"
    run.mkdir()
    assert main(["config", "show", "--model.name_or_path", str(tiny_models["qwen2_vl"]),
                 "--data.datasets.0.source", str(lines_dir)]) == 0
    (run / "config.yaml").write_text(capsys.readouterr().out)
    (run / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    for command in (["evaluate", str(run)], ["predict", str(run), str(lines_dir / "images")]):
        assert main(command) == 2
        line = one_error_line(capsys)
        assert "run folder without trained weights" in line and "Unrecognized" not in line
        assert f"docvlm train {run / 'config.yaml'} --resume" in line


def test_malformed_xml_is_the_named_cause(tmp_path, capsys):
    (tmp_path / "broken.xml").write_text((FIXTURES / "page2013.xml").read_text()[:400])
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"data": {"on_bad_sample": "skip", "datasets": [
        {"name": "x", "source": str(tmp_path), "format": "page", "train_split": "train", "eval_split": "validation",
         "test_split": None}]}}))
    # A folder without split settings is the training split (validation empty), so data check
    # reports the page as a counted skip with the parse error, never as a missing split.
    assert main(["data", "check", str(config), "--output", str(tmp_path / "check.json")]) == 0
    printed = capsys.readouterr().out
    assert "1 skipped {'malformed_xml': 1}" in printed
    assert "broken.xml" in printed and "not well-formed XML" in printed and "no split" not in printed


def test_data_check_with_an_empty_split_reports_it(tmp_path, capsys, tiny_models, lines_dir):
    # A wrong column leaves every split empty: a report with the reason, not an IndexError.
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"model": {"name_or_path": str(tiny_models["qwen2_vl"])}, "data": {"datasets": [
        {"name": "lines", "source": str(lines_dir), "text_column": "transcript"}]}}))
    assert main(["data", "check", str(config), "--output", str(tmp_path / "check.json")]) == 0
    printed = capsys.readouterr().out
    assert "lines/train: 0 samples (of 24), 24 skipped {'missing_field': 24}" in printed
    report = json.loads((tmp_path / "check.json").read_text())
    assert report["splits"]["lines/test"]["skip_examples"][0].endswith("field 'transcript' is missing")


def test_skip_mode_with_every_sample_bad_names_the_reasons(tmp_path, capsys, tiny_models, lines_dir):
    config = tmp_path / "c.yaml"
    config.write_text("{}\n")
    assert main(["train", str(config), "--model.name_or_path", str(tiny_models["qwen2_vl"]),
                 "--data.datasets.0.source", str(lines_dir), "--data.datasets.0.text_column", "transcript",
                 "--data.on_bad_sample", "skip", "--output_root", str(tmp_path / "runs")]) == 2
    line = one_error_line(capsys)
    assert "no training samples: every one was skipped" in line
    assert "kept 0 of 24; skipped 24 (missing_field: 24)" in line and "field 'transcript' is missing" in line


def test_unwritable_output_fails_before_the_work(tmp_path, capsys, lines_dir):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    # The model does not exist either: the output is checked first, so that is not what is reported.
    assert main(["predict", str(tmp_path / "no-model"), str(lines_dir / "images"),
                 "--output", str(blocker / "out.jsonl")]) == 2
    assert "cannot write to" in one_error_line(capsys)
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"output_root": str(blocker), "data": {"datasets": [{"source": str(lines_dir)}]}}))
    assert main(["train", str(config)]) == 2
    assert f"cannot write to {blocker}" in one_error_line(capsys)
    assert main(["data", "check", str(config), "--output", str(blocker / "check.json")]) == 2
    assert "cannot write to" in one_error_line(capsys)


def test_any_oserror_on_output_is_one_line(tmp_path, capsys):
    predictions = tmp_path / "p.jsonl"
    predictions.write_text(json.dumps({"id": "a", "prediction": "x", "reference": "x"}) + "\n")
    (tmp_path / "out.json").mkdir()  # the output path is a folder: the write itself fails
    assert main(["evaluate", "--predictions", str(predictions), "--output", str(tmp_path / "out.json")]) == 2
    assert "out.json" in one_error_line(capsys)


def test_predict_reads_gt_txt_beside_line_images(tmp_path, capsys, tiny_models, lines_dir):
    folder = tmp_path / "lines"
    folder.mkdir()
    rows = [json.loads(line) for line in (lines_dir / "test.jsonl").read_text().splitlines()][:3]
    for row in rows:
        name = Path(row["image"]).name
        shutil.copy(lines_dir / row["image"], folder / name)
        if row is not rows[2]:  # the last one has no transcription: predicted, not scored
            (folder / name).with_suffix(".gt.txt").write_text(row["text"] + "\n")
    output = tmp_path / "p.jsonl"
    assert main(["predict", str(tiny_models["qwen2_vl"]), str(folder), "--output", str(output),
                 "--max-new-tokens", "3", "--max-pixels", "3136"]) == 0
    assert "3 of 3 inputs read, none skipped" in capsys.readouterr().out
    got = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["reference"] for r in got] == [rows[0]["text"], rows[1]["text"], None]
    assert main(["evaluate", "--predictions", str(output)]) == 2   # the third row has no reference...
    (folder / Path(rows[2]["image"]).name).with_suffix(".gt.txt").write_text(rows[2]["text"])
    assert main(["predict", str(tiny_models["qwen2_vl"]), str(folder), "--output", str(output),
                 "--max-new-tokens", "3", "--max-pixels", "3136"]) == 0
    assert main(["evaluate", "--predictions", str(output)]) == 0     # ...with all three it scores
    assert "cer" in capsys.readouterr().out.lower()


def test_bad_transcription_beside_an_image_is_named(tmp_path, lines_dir):
    from docvlm.data.schema import PixelBudget
    from docvlm.predict.run import samples_from_inputs

    image = next((lines_dir / "images").rglob("*.png"))
    shutil.copy(image, tmp_path / "a.png")
    (tmp_path / "a.gt.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(DataError, match=r"a.gt.txt: not UTF-8"):
        samples_from_inputs([str(tmp_path)], "p", PixelBudget(), "error")
    with pytest.raises(DataError, match=r"no inputs to predict on: inputs: kept 0 of 1; skipped 1 \(not_utf8: 1\)"):
        samples_from_inputs([str(tmp_path)], "p", PixelBudget(), "skip")
