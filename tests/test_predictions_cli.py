"""`docvlm evaluate --predictions`: lone surrogates, the task of a file, per-sample scores
(issue 9, items 4, 6, 7)."""

from __future__ import annotations

import json

import pytest

from docvlm.cli import main


def write(path, lines: list[str]):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def test_lone_surrogate_is_one_error_line_with_file_line_id_field(tmp_path, capsys):
    # JSON's "\ud800" escape without its low half: valid JSON, not a Unicode character.
    path = write(tmp_path / "p.jsonl", ['{"id": "a", "prediction": "ok", "reference": "ok"}',
                                       '{"id": "b", "prediction": "x\\ud800", "reference": "xy"}'])
    code = main(["evaluate", "--predictions", path, "--output", str(tmp_path / "m.json")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert f"{path}:2 (id b): field 'prediction' holds a lone surrogate U+D800" in err
    assert not (tmp_path / "m.json").exists()


def test_paired_surrogates_are_scored(tmp_path, capsys):
    # A correctly escaped emoji (a surrogate *pair* in JSON) is one character and scores normally.
    path = write(tmp_path / "p.jsonl", ['{"id": "a", "prediction": "\\ud83d\\ude00", "reference": "\\ud83d\\ude00!"}'])
    assert main(["evaluate", "--predictions", path, "--output", str(tmp_path / "m.json"),
                 "--evaluate.bootstrap_resamples", "0"]) == 0
    report = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert report["datasets"]["p"]["scores"]["cer"]["value"] == pytest.approx(0.5)


def test_several_references_without_metric_asks_for_the_task(tmp_path, capsys):
    path = write(tmp_path / "vqa.jsonl", ['{"id": "1", "prediction": "2", "references": ["2"]}',
                                         '{"id": "2", "prediction": "no", "references": ["no", "No", "yes"]}'])
    assert main(["evaluate", "--predictions", path]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2 (id 2): the row has 3 references, so the task is not clear" in err and "--task" in err
    assert main(["evaluate", "--predictions", path, "--task", "vqav2", "--evaluate.bootstrap_resamples", "0"]) == 0
    assert "VQA_ACCURACY" in capsys.readouterr().out


def test_task_field_and_single_references_pick_the_task(tmp_path, capsys):
    vqa = write(tmp_path / "vqa.jsonl", ['{"id": "1", "prediction": "Paris", "references": ["paris", "Paris"], '
                                         '"task": "vqa"}'])
    assert main(["evaluate", "--predictions", vqa, "--evaluate.bootstrap_resamples", "0"]) == 0
    out = capsys.readouterr().out
    assert "scored as vqa" in out and "ANLS" in out
    lines = write(tmp_path / "lines.jsonl", ['{"id": "1", "prediction": "abd", "reference": "abc"}'])
    assert main(["evaluate", "--predictions", lines, "--evaluate.bootstrap_resamples", "0"]) == 0
    out = capsys.readouterr().out
    assert "scored as transcription (every row has one reference" in out and "CER" in out


def test_per_sample_file_has_every_metric(tmp_path, capsys):
    path = write(tmp_path / "p.jsonl", ['{"id": "a", "prediction": "abd", "reference": "abc"}',
                                       '{"id": "b", "prediction": "x y", "reference": "x z w"}'])
    per_sample = tmp_path / "out" / "samples.jsonl"
    assert main(["evaluate", "--predictions", path, "--metric", "cer", "--metric", "wer", "--metric", "exact_match",
                 "--per-sample", str(per_sample), "--evaluate.bootstrap_resamples", "0"]) == 0
    rows = [json.loads(line) for line in per_sample.read_text(encoding="utf-8").splitlines()]
    assert rows[0] == {"id": "a", "cer": pytest.approx(1 / 3), "cer_edits": 1, "cer_reference_length": 3,
                       "wer": 1.0, "wer_edits": 1, "wer_reference_length": 1, "exact_match": 0.0}
    assert rows[1]["id"] == "b" and rows[1]["wer"] == pytest.approx(2 / 3) and rows[1]["cer_edits"] == 3


def test_per_sample_with_baseline_nests_both_systems(tmp_path, capsys):
    base = write(tmp_path / "base.jsonl", ['{"id": "a", "prediction": "abd", "reference": "abc"}'])
    tuned = write(tmp_path / "tuned.jsonl", ['{"id": "a", "prediction": "abc", "reference": "abc"}'])
    per_sample = tmp_path / "s.jsonl"
    assert main(["evaluate", "--predictions", tuned, "--baseline", base, "--task", "transcription",
                 "--per-sample", str(per_sample), "--evaluate.bootstrap_resamples", "0"]) == 0
    row = json.loads(per_sample.read_text(encoding="utf-8"))
    assert row["base"]["cer"] == pytest.approx(1 / 3) and row["tuned"]["cer"] == 0.0
