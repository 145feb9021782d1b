"""Scoring predictions files: task metrics, bootstrap, bad input with line numbers, compare."""

import json

import numpy as np
import pytest

from docvlm.cli import main
from docvlm.config import EvalConfig
from docvlm.errors import DataError
from docvlm.evaluate.bootstrap import CorpusStats, paired_bootstrap, ratio, resampled_values
from docvlm.evaluate.predictions import read_predictions
from docvlm.evaluate.scoring import dataset_result, evaluate_predictions, score_rows


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


LINES = [
    {"id": "a", "prediction": "abxd", "reference": "abcd", "group": "g1"},
    {"id": "b", "prediction": "", "reference": "ef", "group": "g2"},
    {"id": "c", "prediction": "the cat", "reference": "the cat sat", "group": "g1"},
]


def test_bootstrap_resamples_recompute_the_micro_rate():
    # Sample 1: 0 edits / 1 unit, sample 2: 3 edits / 3 units. A resample of two samples is
    # {1,1} -> 0/2, {1,2} -> 3/4 or {2,2} -> 6/6: micro CER is one of 0, 0.75, 1 (a mean of line
    # CERs would give 0.5 for the mixed resample).
    stats = CorpusStats(np.array([[0, 1], [3, 3]]), ratio)
    values = resampled_values([stats], 500, seed=1)[:, 0]
    assert set(np.round(values, 6)) <= {0.0, 0.75, 1.0}
    assert np.array_equal(values, resampled_values([stats], 500, seed=1)[:, 0])  # seeded


def test_paired_bootstrap_p_value():
    base = CorpusStats(np.array([[2, 10]] * 20), ratio)
    better = CorpusStats(np.array([[1, 10]] * 20), ratio)
    result = paired_bootstrap(base, better, 200, 0, 0.95, higher_is_better=False)
    assert result.p_value == 0.0 and result.delta_ci == [pytest.approx(-0.1), pytest.approx(-0.1)]
    same = paired_bootstrap(base, base, 200, 0, 0.95, higher_is_better=False)
    assert same.p_value == 1.0  # never better than itself


def test_score_rows_reports_everything(tmp_path):
    rows = read_predictions(write_rows(tmp_path / "p.jsonl", LINES))
    cfg = EvalConfig(bootstrap_resamples=100, worst=2)
    result = dataset_result("p", "-", "transcription", ("cer", "wer"), cfg, score_rows(rows, ("cer", "wer"), cfg))
    # 1 sub + 2 del + 4 del ("" sat) = 7 edits over 4 + 2 + 11 = 17 characters.
    assert result["scores"]["cer"]["edits"] == 7 and result["scores"]["cer"]["reference_length"] == 17
    assert result["scores"]["cer"]["value"] == pytest.approx(7 / 17)
    low, high = result["scores"]["cer"]["ci"]
    assert low <= 7 / 17 <= high
    analysis = result["analysis"]
    assert (analysis["substitutions"], analysis["insertions"], analysis["deletions"]) == (1, 0, 6)
    # group g1: (1 + 4) / (4 + 11); g2: 2 / 2.
    assert analysis["groups"]["group"]["g1"]["cer"] == pytest.approx(5 / 15)
    assert analysis["groups"]["group"]["g2"] == {"n": 1, "cer": 1.0, "wer": 1.0}
    assert [w["id"] for w in analysis["worst"]] == ["b", "c"]
    assert analysis["worst"][1]["reference_aligned"] == "the cat sat"
    assert analysis["worst"][1]["prediction_aligned"] == "the cat\u2205\u2205\u2205\u2205"


def test_empty_reference_is_reported_not_divided(tmp_path):
    path = write_rows(tmp_path / "p.jsonl", [{"id": "e", "prediction": "x", "reference": ""},
                                             {"id": "f", "prediction": "ab", "reference": "ab"}])
    report = evaluate_predictions(str(path), ("cer",), EvalConfig(bootstrap_resamples=50))
    result = report["datasets"]["p"]
    assert result["empty_references"] == {"count": 1, "ids": ["e"]}
    assert result["scores"]["cer"]["value"] == pytest.approx(0.5)  # 1 inserted unit / 2
    only_empty = write_rows(tmp_path / "q.jsonl", [{"id": "e", "prediction": "x", "reference": ""}])
    assert evaluate_predictions(str(only_empty), ("cer",), EvalConfig())["datasets"]["q"]["scores"]["cer"]["value"] is None


def test_vqa_rows_use_every_reference(tmp_path):
    path = write_rows(tmp_path / "v.jsonl", [
        {"id": "1", "prediction": "10kg", "reference": "ten kilograms", "references": ["ten kilograms", "10 kg"]},
        {"id": "2", "prediction": "nothing", "references": ["abcd"]},
    ])
    result = evaluate_predictions(str(path), ("anls", "exact_match"), EvalConfig(bootstrap_resamples=0))
    scores = result["datasets"]["v"]["scores"]
    assert scores["anls"]["value"] == pytest.approx((0.8 + 0.0) / 2)
    assert scores["exact_match"]["value"] == 0.0
    assert result["options"]["anls"]["denominator"] == "raw"


@pytest.mark.parametrize("content, message", [
    (b'{"id": "a", "prediction": "x", "reference": "x"}\n{"id": "b", "prediction": "\xff", "reference": "y"}\n',
     ":2: not UTF-8"),
    (b'{"id": "a", "prediction": "x", "reference": "x"}\n\n', ":2: empty line"),
    (b'{"prediction": "x", "reference": "x"}\n', ":1: missing field 'id'"),
    (b'{"id": "a", "prediction": "x", "reference": "x"}\n{"id": "a", "prediction": "x", "reference": "x"}\n',
     ":2: id 'a' already used on line 1"),
    (b'{"id": "a", "prediction": "x", "reference": "x", "references": ["y", "z"]}\n',
     ":1 (id a): 'reference' 'x' is not among 'references'"),
    (b'{"id": "a", "prediction": "x"}\n', ":1 (id a): no 'reference' or 'references'"),
    (b'{"id": "a", "prediction": "x", "reference": "x"\n', ":1: not valid JSON"),
    (b'{"id": "a", "reference": "x"}\n', ":1 (id a): field 'prediction' missing"),
])
def test_bad_predictions_files_name_the_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match="bad.jsonl" + __import__("re").escape(message)):
        read_predictions(path)


def test_evaluate_predictions_cli(tmp_path, capsys):
    path = write_rows(tmp_path / "p.jsonl", LINES)
    out = tmp_path / "m.json"
    assert main(["evaluate", "--predictions", str(path), "--metric", "cer", "--output", str(out),
                 "--evaluate.bootstrap_resamples", "20", "--evaluate.text.case_fold", "true"]) == 0
    printed = capsys.readouterr().out
    assert "CER" in printed and "41.18%" in printed and "WER" not in printed.split("\n")[1]
    report = json.loads(out.read_text())
    assert report["options"]["cer_wer"]["case_fold"] is True
    assert report["options"]["bootstrap"]["resamples"] == 20
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"id": "a", "prediction": "x", "reference": "x"}\n\n')
    assert main(["evaluate", "--predictions", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {bad}:2: empty line (one JSON object per line expected)"


def test_baseline_must_cover_the_same_samples(tmp_path, capsys):
    tuned = write_rows(tmp_path / "t.jsonl", [dict(r, prediction=r["reference"]) for r in LINES])
    base = write_rows(tmp_path / "b.jsonl", LINES)
    assert main(["evaluate", "--predictions", str(tuned), "--baseline", str(base),
                 "--evaluate.bootstrap_resamples", "50"]) == 0
    table = capsys.readouterr().out
    assert "-41.18%" in table  # tuned CER 0 - base 7/17
    changed = write_rows(tmp_path / "c.jsonl", [dict(LINES[0], reference="abce")] + LINES[1:])
    assert main(["evaluate", "--predictions", str(changed), "--baseline", str(base)]) == 2
    assert "c.jsonl:1: references of id 'a' differ" in capsys.readouterr().err


def test_compare_runs(tmp_path, capsys):
    cfg = EvalConfig(bootstrap_resamples=20)
    for name, prediction in (("run_a", "abxd"), ("run_b", "abcd")):
        base_rows = read_predictions(write_rows(tmp_path / f"{name}-b.jsonl", LINES))
        tuned_rows = read_predictions(write_rows(tmp_path / f"{name}-t.jsonl", [dict(LINES[0], prediction=prediction)]
                                                 + LINES[1:]))
        result = dataset_result("lines", "test", "transcription", ("cer", "wer"), cfg,
                                score_rows(tuned_rows, ("cer", "wer"), cfg),
                                base=score_rows(base_rows, ("cer", "wer"), cfg))
        (tmp_path / name / "metrics").mkdir(parents=True)
        (tmp_path / name / "metrics" / "test.json").write_text(json.dumps({"split": "test",
                                                                          "datasets": {"lines": result}}))
    assert main(["compare", str(tmp_path / "run_a"), str(tmp_path / "run_b")]) == 0
    table = capsys.readouterr().out
    assert "run_a" in table and "run_b" in table
    cer_line = next(line for line in table.splitlines() if line.startswith("lines") and "CER" in line)
    assert "41.18%" in cer_line and "35.29%" in cer_line  # base 7/17, run_b tuned 6/17
    assert main(["compare", str(tmp_path / "missing")]) == 2


def test_evaluate_argument_and_option_mistakes(tmp_path, capsys):
    path = write_rows(tmp_path / "p.jsonl", LINES)
    assert main(["evaluate", "--predictions", str(path), "--evaluate.confidence", "1.5"]) == 2
    assert "evaluate.confidence" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path), "--metric", "cer"]) == 2
    assert "go with --predictions" in capsys.readouterr().err
    assert main(["evaluate"]) == 2
    assert "give a run folder" in capsys.readouterr().err
