"""Checkpoint selection by each evaluation dataset's own task metric; replay data never selects."""

import json
import shutil

import pytest

from docvlm.config import load_config
from docvlm.errors import ConfigError
from docvlm.train.evaluation import EvalPart, score_parts, selection_metric
from docvlm.train.trainer import run_training, training_arguments

from conftest import make_config

VQA = ("--data.datasets.0.task", "vqa", "--data.datasets.0.question_column", "question",
       "--data.datasets.0.answers_column", "answers")


def _rows(pairs):
    return [{"id": str(i), "prediction": p, "references": refs} for i, (p, refs) in enumerate(pairs)]


def test_task_average_ignores_replay_datasets():
    cfg = load_config(None, [])
    parts = [EvalPart("htr", "transcription", "task", None), EvalPart("general", "transcription", "replay", None),
             EvalPart("docvqa", "vqa", "task", None)]
    rows = {"htr": _rows([("abcd", ["abcf"])]),                   # CER 1/4
            "general": _rows([("xyz", ["abc"])]),                 # CER 3/3
            "docvqa": _rows([("12", ["12", "twelve"]), ("hello", ["help"])])}
    scores = score_parts(rows, parts, cfg)
    assert scores["eval_htr_cer"] == pytest.approx(0.25) and scores["eval_general_cer"] == pytest.approx(1.0)
    # The replay dataset is logged but is not part of the selection average.
    assert scores["eval_cer"] == pytest.approx(0.25)
    # ANLS: 1 for the exact answer; "hello" vs "help": 1 - 2/5 = 0.6 (>= 0.5, kept).
    assert scores["eval_docvqa_anls"] == pytest.approx((1 + 0.6) / 2) == scores["eval_anls"]
    assert "eval_general_anls" not in scores


def test_selection_metric_follows_the_task_and_its_direction(tmp_path):
    transcription = load_config(None, ["--output_root", str(tmp_path)])
    assert selection_metric(transcription) == ("cer", False)
    docvqa = load_config(None, ["--output_root", str(tmp_path), *VQA])
    assert selection_metric(docvqa) == ("anls", True)
    args = training_arguments(docvqa, tmp_path / "run", evaluating=True)
    assert args.metric_for_best_model == "eval_anls" and args.greater_is_better is True
    override = load_config(None, ["--output_root", str(tmp_path), "--train.selection_metric", "wer"])
    assert selection_metric(override) == ("wer", False)
    assert selection_metric(load_config(None, ["--train.selection_metric", "loss"])) == ("loss", False)
    with pytest.raises(ConfigError, match=r"train\.selection_metric': 'anls' is not computed"):
        load_config(None, ["--train.selection_metric", "anls"])


def test_replay_dataset_first_does_not_choose_the_default_metric(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"data": {"datasets": [
        {"name": "general", "task": "transcription", "role": "replay", "source": "x"},
        {"name": "docvqa", "task": "vqa", "source": "y"}]}}))
    assert selection_metric(load_config(path)) == ("anls", True)
    with pytest.raises(ConfigError, match=r"train\.selection_metric': 'cer' is not computed"):
        load_config(path, ["--train.selection_metric", "cer"])


@pytest.fixture
def vqa_dir(lines_dir, tmp_path):
    """The synthetic lines as DocVQA-style rows: a question and a list of acceptable answers."""
    out = tmp_path / "vqa"
    shutil.copytree(lines_dir, out)
    for manifest in out.glob("*.jsonl"):
        rows = [json.loads(line) for line in manifest.read_text().splitlines()]
        manifest.write_text("".join(json.dumps({"id": r["id"], "image": r["image"], "question": "Which number?",
                                                "answers": [r["text"], r["text"][:3]]}) + "\n" for r in rows))
    return out


def test_docvqa_run_selects_its_best_checkpoint_by_anls_and_ignores_replay(tiny_models, lines_dir, vqa_dir,
                                                                            tmp_path):
    cfg = make_config(tmp_path, tiny_models["qwen2_vl"], vqa_dir, *VQA, "--data.datasets.0.name", "docvqa",
                      "--train.report_to", "[none]")
    replay = {**cfg.data.datasets[0].__dict__, "name": "general", "source": str(lines_dir), "task": "transcription",
              "role": "replay", "question_column": None, "answers_column": None}
    cfg.data.datasets.append(type(cfg.data.datasets[0])(**replay))
    summary = run_training(cfg)
    assert summary["selection_metric"] == "eval_anls"
    evals = [json.loads(line) for line in (cfg.run_dir / "logs" / "train_log.jsonl").read_text().splitlines()]
    evals = [e for e in evals if "eval_anls" in e]
    assert [e["step"] for e in evals] == [2, 4]
    for entry in evals:
        assert entry["eval_anls"] == entry["eval_docvqa_anls"]   # the task dataset alone
        assert "eval_general_cer" in entry and "eval_cer" not in entry  # replay: logged, never averaged
    best = max(evals, key=lambda e: (e["eval_anls"], -e["step"]))  # higher is better; first of ties
    assert summary["best_eval_anls"] == pytest.approx(best["eval_anls"])
    assert summary["best_checkpoint"].endswith(f"checkpoint-{best['step']}")
    state = json.loads((cfg.run_dir / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["best_metric"] == pytest.approx(best["eval_anls"])
    assert json.loads((cfg.run_dir / "train_summary.json").read_text())["best_eval_anls"] == summary["best_eval_anls"]
