"""A new user's mistakes and kills, through the CLI as typed: one ``error:`` line (exit 2) naming the
file, sample and field, or a counted skip; no half-written output that looks complete."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import one_error_line
from docvlm.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "layout"


# --------------------------------------------------------------------------------------------
# Config files


def test_malformed_yaml_is_one_line_with_file_line_and_column(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("train:\n  learning_rate: [1,\n  batch_size: 2\n")
    assert main(["config", "check", str(config)]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {config}:4:1: not valid YAML (") and "<unicode string>" not in line


def test_config_that_is_not_utf8_is_an_error_not_a_traceback(tmp_path, capsys):
    config = tmp_path / "latin1.yaml"
    config.write_bytes("run_name: ok\nrun_name: caf\u00e9\n".encode("latin-1"))
    assert main(["config", "check", str(config)]) == 2
    assert one_error_line(capsys) == (f"error: {config}:2: not UTF-8 text (byte 0xe9 at offset 26); "
                                      "save the file as UTF-8")


def test_config_check_without_a_file_is_refused(capsys):
    assert main(["config", "check"]) == 2
    assert "config check needs a config file" in one_error_line(capsys)


# --------------------------------------------------------------------------------------------
# Helpers: a config for the tiny model and the session's synthetic lines


def write_config(tmp_path, model_dir, data_dir, **train) -> str:
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({
        "run_name": "run", "output_root": str(tmp_path / "runs"),
        "model": {"name_or_path": str(model_dir), "dtype": "fp32"},
        "tuning": {"method": "lora", "lora": {"r": 4, "dropout": 0}},
        "data": {"datasets": [{"name": "lines", "source": str(data_dir), "min_pixels": 784, "max_pixels": 3136}]},
        "train": {"batch_size": 4, "max_steps": 4, "learning_rate": 1e-3, "warmup": 0, "logging_steps": 1,
                  "eval_steps": 0, "save_steps": 2, "report_to": [], **train},
        "generation": {"max_new_tokens": 3, "batch_size": 3}}))
    return str(config)


def copy_lines(lines_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(lines_dir, data)
    return data


# --------------------------------------------------------------------------------------------
# Duplicate sample ids


def test_a_repeated_id_in_a_manifest_is_an_error_naming_both_lines(tmp_path, capsys, lines_dir):
    data = copy_lines(lines_dir, tmp_path)
    first = (data / "test.jsonl").read_text().splitlines()[0]
    with open(data / "test.jsonl", "a") as manifest:
        manifest.write(first + "\n")
    config = write_config(tmp_path, "Qwen/Qwen2-VL-2B-Instruct", data)
    assert main(["data", "export", config, "--output", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys)
    assert f"test.jsonl:7 (sample 'test-000000'): field 'id': id 'test-000000' is already the id of " in line
    assert "test.jsonl:1 (sample 'test-000000')" in line
    # skip mode: counted, and kept + skipped = read
    assert main(["data", "export", config, "--output", str(tmp_path / "out"), "--data.on_bad_sample", "skip"]) == 0
    assert "lines/test: kept 6 of 7; skipped 1 (duplicate_id: 1)" in capsys.readouterr().out
    assert len((tmp_path / "out" / "lines" / "test.jsonl").read_text().splitlines()) == 6


def test_two_input_folders_with_the_same_file_names_give_distinct_ids(tmp_path, capsys, tiny_models, lines_dir):
    images = sorted((lines_dir / "images" / "test").glob("*.png"))[:2]
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        for image in images:
            shutil.copy(image, tmp_path / folder / image.name)
            (tmp_path / folder / image.name).with_suffix(".gt.txt").write_text("123\n")
    out = tmp_path / "p.jsonl"
    assert main(["--quiet", "predict", str(tiny_models["qwen2_vl"]), str(tmp_path / "a"), str(tmp_path / "b"),
                 "--output", str(out), "--max-new-tokens", "2"]) == 0
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert len(ids) == 4 and len(set(ids)) == 4, ids
    capsys.readouterr()
    assert main(["evaluate", "--predictions", str(out), "--metric", "cer"]) == 0  # was: id already used on line 1
    # The same image given twice is a duplicate: an error, or a counted skip.
    twice = [str(tiny_models["qwen2_vl"]), str(tmp_path / "a"), str(tmp_path / "a" / images[0].name)]
    assert main(["--quiet", "predict", *twice, "--output", str(out), "--max-new-tokens", "2"]) == 2
    assert "given twice" in one_error_line(capsys)
    assert main(["--quiet", "predict", *twice, "--output", str(out), "--max-new-tokens", "2",
                 "--on-bad-sample", "skip"]) == 0
    assert "2 of 3 inputs read, 1 skipped (duplicate_id: 1)" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# Output paths: never an input, never a folder found only after the work


def test_predict_never_overwrites_its_input_manifest(tmp_path, capsys, tiny_models, lines_dir):
    data = copy_lines(lines_dir, tmp_path)
    manifest = data / "test.jsonl"
    before = manifest.read_text()
    assert main(["predict", str(tiny_models["qwen2_vl"]), str(manifest), "--output", str(manifest)]) == 2
    assert f"--output {manifest} would overwrite the input {manifest}" in one_error_line(capsys)
    assert manifest.read_text() == before


def test_evaluate_never_overwrites_the_predictions_it_scores(tmp_path, capsys):
    predictions = tmp_path / "p.jsonl"
    predictions.write_text('{"id": "a", "prediction": "ab", "reference": "ab"}\n')
    for flag in ("--output", "--per-sample"):
        assert main(["evaluate", "--predictions", str(predictions), "--metric", "cer", flag, str(predictions)]) == 2
        assert f"{flag} {predictions} would overwrite the input" in one_error_line(capsys)
    assert predictions.read_text() == '{"id": "a", "prediction": "ab", "reference": "ab"}\n'


def test_an_output_file_that_is_a_folder_is_refused_before_the_work(tmp_path, capsys, tiny_models, lines_dir):
    folder = tmp_path / "out"
    folder.mkdir()
    predictions = tmp_path / "p.jsonl"
    predictions.write_text('{"id": "a", "prediction": "ab", "reference": "ab"}\n')
    commands = [["predict", str(tiny_models["qwen2_vl"]), str(lines_dir / "images" / "test"), "--output", str(folder)],
                ["evaluate", "--predictions", str(predictions), "--metric", "cer", "--output", str(folder)],
                ["report", str(tmp_path), "--output", str(folder)]]
    for command in commands:
        assert main(command) == 2
        assert f"--output {folder} is a folder; give a file name" in one_error_line(capsys)
    assert list(tmp_path.glob("*.tmp")) == []


# --------------------------------------------------------------------------------------------
# Kills: no half-written file that looks complete


def cut_short(monkeypatch, suffixes: tuple[str, ...]):
    """Every text write to a file whose name ends with one of ``suffixes`` writes half its text and
    is then killed (KeyboardInterrupt), as a kill in the middle of the write would leave it."""
    real = Path.write_text

    def half(self, data, *args, **kwargs):
        if self.name.endswith(suffixes):
            real(self, data[:len(data) // 2], *args, **kwargs)
            raise KeyboardInterrupt
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", half)


def test_a_report_killed_while_written_leaves_the_old_page(tmp_path, capsys, monkeypatch, tiny_models, lines_dir):
    run = tmp_path / "run"
    run.mkdir()
    assert main(["config", "show", "--model.name_or_path", str(tiny_models["qwen2_vl"]),
                 "--data.datasets.0.source", str(lines_dir)]) == 0
    (run / "config.yaml").write_text(capsys.readouterr().out)
    (run / "report.html").write_text("OLD")
    cut_short(monkeypatch, ("report.html", "report.html.tmp"))
    assert main(["report", str(run)]) == 130
    assert (run / "report.html").read_text() == "OLD" and not (run / "report.html.tmp").exists()
    monkeypatch.undo()
    assert main(["report", str(run)]) == 0 and (run / "report.html").read_text().rstrip().endswith("</html>")


def test_per_sample_scores_killed_while_written_leave_the_old_file(tmp_path, monkeypatch):
    predictions = tmp_path / "p.jsonl"
    predictions.write_text("".join(json.dumps({"id": str(i), "prediction": "ab", "reference": "abc"}) + "\n"
                                   for i in range(20)))
    per_sample = tmp_path / "scores.jsonl"
    per_sample.write_text("OLD")
    cut_short(monkeypatch, ("scores.jsonl", "scores.jsonl.tmp"))
    assert main(["evaluate", "--predictions", str(predictions), "--metric", "cer", "--per-sample",
                 str(per_sample)]) == 130
    assert per_sample.read_text() == "OLD"


def test_a_killed_data_export_leaves_the_previous_export_whole(tmp_path, capsys, monkeypatch, lines_dir):
    from PIL import Image

    config = write_config(tmp_path, "Qwen/Qwen2-VL-2B-Instruct", lines_dir)
    out = tmp_path / "out"
    assert main(["data", "export", config, "--output", str(out)]) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real, calls = Image.Image.save, []

    def killed_on_the_tenth(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", killed_on_the_tenth)
    assert main(["data", "export", config, "--output", str(out)]) == 130
    after = {p.relative_to(out): p.read_bytes() for p in (out / "lines").rglob("*") if p.is_file()}
    assert after == before  # the earlier export, whole; the new one was left in lines.partial/
    monkeypatch.undo()
    assert main(["data", "export", config, "--output", str(out)]) == 0  # the rerun works
    assert not (out / "lines.partial").exists()
    assert len((out / "lines" / "train.jsonl").read_text().splitlines()) == 24


def test_a_page_killed_while_written_back_is_not_left_half_written(tmp_path, capsys, monkeypatch, tiny_models):
    from PIL import Image

    from docvlm import files

    pages = tmp_path / "pages"
    pages.mkdir()
    shutil.copy(FIXTURES / "page2019.xml", pages / "page2019.xml")
    Image.new("RGB", (400, 300), "white").save(pages / "page2019.png")

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", killed)  # the rename that ends every atomic write
    out = tmp_path / "out"
    assert main(["--quiet", "predict", str(tiny_models["qwen2_vl"]), str(pages), "--output", str(out),
                 "--max-new-tokens", "2"]) == 130
    assert not (out / "page2019.xml").exists() and not (out / "predictions.jsonl").exists()
    monkeypatch.undo()
    (pages / "broken.xml").write_text((FIXTURES / "page2019.xml").read_text()[:500])
    capsys.readouterr()
    assert main(["--quiet", "predict", str(tiny_models["qwen2_vl"]), str(pages), "--output", str(out),
                 "--max-new-tokens", "2", "--on-bad-sample", "skip"]) == 0
    assert (out / "page2019.xml").read_text().rstrip().endswith("</PcGts>")
    # The counts as predict on images prints them: kept + skipped = read.
    assert "3 of 4 inputs read, 1 skipped (malformed_xml: 1)" in capsys.readouterr().out


def test_a_run_killed_while_its_final_weights_are_written(tmp_path, capsys, monkeypatch, tiny_models, lines_dir):
    from transformers import Trainer

    config = write_config(tmp_path, tiny_models["qwen2_vl"], lines_dir)
    run = tmp_path / "runs" / "run"
    real = Trainer.save_model

    def killed_mid_save(self, output_dir=None, *args, **kwargs):
        real(self, output_dir, *args, **kwargs)
        if Path(output_dir).name.startswith("checkpoint-"):  # checkpoints are saved whole
            return
        weights = Path(output_dir) / "adapter_model.safetensors"
        weights.write_bytes(weights.read_bytes()[:100])  # the file as a kill mid-write leaves it
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save_model", killed_mid_save)
    assert main(["--quiet", "train", config]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    images = str(lines_dir / "images" / "test")
    assert main(["--quiet", "predict", str(run), images, "--output", str(tmp_path / "p.jsonl")]) == 2
    line = one_error_line(capsys)
    assert "run folder without trained weights" in line and f"docvlm train {run / 'config.yaml'} --resume" in line
    assert main(["--quiet", "train", str(run / "config.yaml"), "--resume"]) == 0
    assert "train:lines/train: kept 24 of 24\n" in capsys.readouterr().out  # the counts of every split
    assert not (run / "adapter.partial").exists()
    assert main(["--quiet", "predict", str(run), images, "--output", str(tmp_path / "p.jsonl"),
                 "--max-new-tokens", "2"]) == 0


def test_resume_without_any_checkpoint_says_what_to_do(tmp_path, capsys, tiny_models, lines_dir):
    config = write_config(tmp_path, tiny_models["qwen2_vl"], lines_dir)
    run = tmp_path / "runs" / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(config, run / "config.yaml")
    assert main(["train", str(run / "config.yaml"), "--resume"]) == 2
    assert "start it again without --resume" in one_error_line(capsys)


# --------------------------------------------------------------------------------------------
# Retention without general suites


def test_retention_without_general_suites_gives_no_pass():
    from docvlm.retention.run import format_retention, verdict

    judged = verdict({"lines": {"group": "task", "metrics": {"cer": {"retention": 0.5}}}}, 0.95)
    assert judged["general"] == "n/a" and judged["metrics_checked"] == 0
    text = format_retention({"suites": {}, "task": {}, "verdict": judged})
    assert "PASS" not in text and "no general suite was scored" in text


# --------------------------------------------------------------------------------------------
# Run names and output folders


@pytest.mark.parametrize("name", ["../../elsewhere", "a/b", "", ".."])
def test_a_run_name_with_a_path_is_refused(tmp_path, capsys, name):
    assert main(["config", "check", write_config(tmp_path, "Qwen/Qwen2-VL-2B-Instruct", tmp_path),
                 "--run_name", name]) == 2
    assert "config key 'run_name': must be a folder name" in one_error_line(capsys)


def test_a_file_standing_where_an_output_folder_goes_is_named(tmp_path, capsys, lines_dir):
    config = write_config(tmp_path, "Qwen/Qwen2-VL-2B-Instruct", lines_dir)
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert main(["data", "export", config, "--output", str(blocker / "sub")]) == 2
    assert one_error_line(capsys) == f"error: cannot write to {blocker / 'sub'}: {blocker} is a file, not a folder"
    (tmp_path / "folder").mkdir()
    assert main(["data", "check", config, "--output", str(tmp_path / "folder")]) == 2
    assert "is a folder; give a file name" in one_error_line(capsys)


def test_a_manifest_line_that_is_not_utf8_is_named_by_its_line(tmp_path, capsys, lines_dir):
    data = copy_lines(lines_dir, tmp_path)
    with open(data / "train.jsonl", "ab") as manifest:
        manifest.write(b'{"id": "x", "image": "images/train/train-000000.png", "text": "caf\xe9"}\n')
    config = write_config(tmp_path, "Qwen/Qwen2-VL-2B-Instruct", data)
    assert main(["data", "export", config, "--output", str(tmp_path / "out")]) == 2
    assert one_error_line(capsys) == (f"error: {data / 'train.jsonl'}:25: not UTF-8 text "
                                      "(byte 0xe9; invalid continuation byte)")


def test_resume_drops_the_log_of_the_steps_it_trains_again(tmp_path, capsys, tiny_models, lines_dir):
    config = write_config(tmp_path, tiny_models["qwen2_vl"], lines_dir)
    assert main(["--quiet", "train", config]) == 0
    run = tmp_path / "runs" / "run"
    # As a SIGKILL after step 4 was logged, before checkpoint-4 and the weights were whole.
    shutil.rmtree(run / "checkpoints" / "checkpoint-4")
    shutil.rmtree(run / "adapter")
    with open(run / "logs" / "train_log.jsonl", "a") as log:
        log.write('{"step": 4, "loss": 1.')
    assert main(["--quiet", "train", str(run / "config.yaml"), "--resume"]) == 0
    entries = [json.loads(line) for line in (run / "logs" / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in entries if "loss" in e] == [1, 2, 3, 4]


def test_a_killed_export_leaves_no_model_folder_that_looks_whole(tmp_path, capsys, monkeypatch, tiny_models,
                                                                 lines_dir):
    from transformers import ProcessorMixin

    config = write_config(tmp_path, tiny_models["qwen2_vl"], lines_dir, max_steps=2)
    assert main(["--quiet", "train", config]) == 0
    run, out = tmp_path / "runs" / "run", tmp_path / "merged"

    def killed(*args, **kwargs):  # the weights are written; the kill comes before the processor
        raise KeyboardInterrupt

    monkeypatch.setattr(ProcessorMixin, "save_pretrained", killed)
    assert main(["--quiet", "export", str(run), str(out)]) == 130
    assert not (out / "config.json").exists() and not (out / "model.safetensors").exists()
    monkeypatch.undo()
    assert main(["--quiet", "export", str(run), str(out)]) == 0  # no --overwrite needed: nothing was left
    assert {"config.json", "model.safetensors", "docvlm_export.json"} <= {p.name for p in out.iterdir()}
    (out / "notes.txt").write_text("mine")
    assert main(["--quiet", "export", str(run), str(out), "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "docvlm_export.json").is_file()
    assert not (tmp_path / "merged.partial").exists()


def test_a_merge_killed_while_written_leaves_no_half_adapter(tmp_path, capsys, monkeypatch, tiny_models, lines_dir):
    from transformers import ProcessorMixin

    config = write_config(tmp_path, tiny_models["qwen2_vl"], lines_dir, max_steps=2)
    assert main(["--quiet", "train", config]) == 0
    run, out = tmp_path / "runs" / "run", tmp_path / "merged"
    assert main(["merge", str(run), str(run), "--output", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in (out / "adapter").iterdir()}

    def killed(*args, **kwargs):  # the merged adapter's weights are written, its processor not yet
        raise KeyboardInterrupt

    monkeypatch.setattr(ProcessorMixin, "save_pretrained", killed)
    assert main(["merge", str(run), str(run), "--weights", "0.3,0.7", "--output", str(out)]) == 130
    assert {p.name: p.read_bytes() for p in (out / "adapter").iterdir()} == before  # the earlier merge, whole
    monkeypatch.undo()
    assert main(["merge", str(run), str(run), "--weights", "0.3,0.7", "--output", str(out)]) == 0
    assert (out / "adapter" / "processor_config.json").is_file() and not (out / "_merge").exists()


def test_a_run_folder_given_as_the_config_names_its_config_file(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("run_name: run\n")
    assert main(["train", str(run), "--resume"]) == 2
    assert one_error_line(capsys) == (f"error: {run} is a folder, not a config file; a run's config is "
                                      f"{run / 'config.yaml'} (e.g. docvlm train {run / 'config.yaml'} --resume)")


@pytest.mark.parametrize("flags, message", [
    (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (["--batch-size", "-3"], "--batch-size must be >= 1, got -3"),
    (["--max-new-tokens", "-1"], "--max-new-tokens must be >= 1, got -1"),
    (["--min-pixels", "0"], "--min-pixels must be >= 1, got 0"),
    (["--min-pixels", "100", "--max-pixels", "10"], "--min-pixels (100) is above --max-pixels (10)")])
def test_predict_refuses_numbers_it_cannot_use(tmp_path, capsys, tiny_models, lines_dir, flags, message):
    assert main(["predict", str(tiny_models["qwen2_vl"]), str(lines_dir / "images" / "test"),
                 "--output", str(tmp_path / "p.jsonl"), *flags]) == 2
    assert one_error_line(capsys) == f"error: {message}"


def test_manifests_saved_with_a_bom_are_read(tmp_path, capsys, lines_dir):
    data = copy_lines(lines_dir, tmp_path)
    for split in ("train", "validation", "test"):  # JSONL as Windows Notepad saves it
        manifest = data / f"{split}.jsonl"
        manifest.write_bytes(b"\xef\xbb\xbf" + manifest.read_bytes())
    config = write_config(tmp_path, "Qwen/Qwen2-VL-2B-Instruct", data)
    assert main(["data", "export", config, "--output", str(tmp_path / "out")]) == 0
    assert "lines/train: kept 24 of 24\n" in capsys.readouterr().out
    for split in ("train", "validation", "test"):  # CSV as Excel's "CSV UTF-8" saves it
        rows = [json.loads(line) for line in (data / f"{split}.jsonl").read_text(encoding="utf-8-sig").splitlines()]
        (data / f"{split}.jsonl").unlink()
        (data / f"{split}.csv").write_bytes("\ufeffimage,text\n".encode() + "".join(
            f"{row['image']},{row['text']}\n" for row in rows).encode())
    assert main(["data", "export", config, "--output", str(tmp_path / "out2")]) == 0  # was: field 'image' is missing
    assert "lines/train: kept 24 of 24\n" in capsys.readouterr().out
    predictions = tmp_path / "p.jsonl"
    predictions.write_bytes(b'\xef\xbb\xbf{"id": "a", "prediction": "ab", "reference": "ab"}\n')
    assert main(["evaluate", "--predictions", str(predictions), "--metric", "cer"]) == 0
