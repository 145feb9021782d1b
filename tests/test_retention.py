"""``docvlm retention`` on a tiny model: every suite kind, the report, bad inputs, WiSE-FT, merging."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import SMALL, make_config
from docvlm.cli import main
from docvlm.errors import DataError
from docvlm.models.tiny import build_tiny_model
from docvlm.retention.scenes import suite_configs, write_scenes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def qwen_model(tmp_path_factory):
    return build_tiny_model("qwen2_vl", tmp_path_factory.mktemp("qwen") / "model", SMALL, seed=0)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return write_scenes(tmp_path_factory.mktemp("scenes"), {"test": 6}, seed=3)


def _suites(scenes, lines_dir) -> list[dict]:
    suites = suite_configs(scenes, max_samples=4)
    suites.append({"kind": "docvqa", "max_samples": 4, "dataset": {
        "name": "lines_docvqa", "source": str(lines_dir), "test_split": "test", "prompt": "What is written?",
        "min_pixels": 784, "max_pixels": 3136}})
    return suites


def _add_suites(run_dir, suites, floor=0.9):
    path = run_dir / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data["retention"] = {"suites": suites, "floor": floor, "max_new_tokens": 6}
    data["evaluate"]["bootstrap_resamples"] = 50
    path.write_text(yaml.safe_dump(data))


@pytest.fixture(scope="module")
def lora_run(qwen_model, lines_dir, scenes, tmp_path_factory):
    from docvlm.train.trainer import run_training

    tmp = tmp_path_factory.mktemp("lora")
    cfg = make_config(tmp, qwen_model, lines_dir, "--tuning.method", "lora", "--train.max_steps", "2",
                      "--train.eval_steps", "0", "--tuning.lora.r", "4")
    run_training(cfg)
    _add_suites(cfg.run_dir, _suites(scenes, lines_dir))
    return cfg.run_dir


def test_retention_report_for_every_suite_kind(lora_run, capsys):
    assert main(["retention", str(lora_run)]) == 0
    out = capsys.readouterr().out
    report = json.loads((lora_run / "metrics" / "retention.json").read_text())
    kinds = {s["kind"] for s in report["suites"].values()}
    assert kinds == {"vqa", "caption", "multiple_choice", "retrieval", "probes", "docvqa"}
    vqa = report["suites"]["scenes_vqa"]["metrics"]["vqa_accuracy"]
    for key in ("base", "tuned", "delta", "retention", "retention_ci", "delta_ci", "verdict"):
        assert key in vqa
    assert set(report["suites"]["scenes_caption"]["metrics"]) == {"bleu4", "cider_d", "meteor"}
    assert report["suites"]["scenes_caption"]["options"]["caption"]["tokenizer"].startswith("ptb")
    assert report["suites"]["scenes_multiple_choice"]["options"]["choice_mode"] in ("likelihood", "generate")
    assert "i2t_r@1" in report["suites"]["scenes_retrieval"]["metrics"]
    probes = report["suites"]["scenes_probes"]["metrics"]
    assert probes["kl_base_tuned"]["value"] >= 0
    assert report["suites"]["lines_docvqa"]["group"] == "ocr"
    assert report["verdict"]["general"] in ("pass", "fail")
    assert "lines" in report["task"]  # joined from metrics/test.json (evaluate ran first)
    assert (lora_run / "metrics" / "test.json").is_file()
    assert "verdict" in out and "scenes_vqa" in out


def test_probes_kl_is_zero_when_the_adapter_does_nothing(lora_run, scenes):
    from docvlm.config import load_config
    from docvlm.retention.run import ModelPair
    from docvlm.retention.suites import load_suite, score_probes

    cfg = load_config(lora_run / "config.yaml")
    pair = ModelPair(lora_run, cfg)
    data = load_suite(next(s for s in cfg.retention.suites if s.kind == "probes"), cfg.data, cfg.retention)
    stats, _ = score_probes(data, pair.base, pair.tuned, pair.base_context, 4, 4)
    assert stats["kl_base_tuned"].value() > 0  # the trained adapter moved the distributions
    with pair.tuned.model.disable_adapter():
        same, _ = score_probes(data, pair.base, pair.tuned, pair.base_context, 4, 4)
    assert same["kl_base_tuned"].value() == pytest.approx(0.0, abs=1e-6)
    assert same["tuned_ce"].value() == pytest.approx(same["base_ce"].value(), rel=1e-5)


@pytest.mark.parametrize("problem, message", [
    ("empty", "no samples"),
    ("column", "field 'question' is missing"),
    ("answers", "no non-empty answer"),
])
def test_bad_suites_name_suite_file_and_sample(lora_run, scenes, tmp_path, problem, message):
    folder = tmp_path / "bad"
    folder.mkdir()
    rows = [json.loads(line) for line in (scenes / "vqa" / "test.jsonl").read_text().splitlines()]
    for row in rows:
        row["image"] = str((scenes / "vqa" / row["image"]).resolve())
    if problem == "empty":
        rows = []
    elif problem == "column":
        del rows[1]["question"]
    else:
        rows[2]["answers"] = []
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    from docvlm.config import RetentionConfig, RetentionSuiteConfig, from_dict, load_config
    from docvlm.retention.suites import load_suite

    cfg = load_config(lora_run / "config.yaml")
    suite = from_dict(RetentionSuiteConfig, {"kind": "vqa", "dataset": {
        "name": "badvqa", "source": str(folder), "test_split": "test", "question_column": "question",
        "answers_column": "answers", "allow_outside_root": True}})
    with pytest.raises(DataError) as error:
        load_suite(suite, cfg.data, RetentionConfig())
    text = str(error.value)
    assert "badvqa" in text and message in text
    if problem != "empty":
        assert "test.jsonl" in text and f"test-00000-q{1 if problem == 'column' else 2}" in text


# --------------------------------------------------------------------------------------------
# WiSE-FT and merging


def _greedy(loaded, lines_dir) -> list[str]:
    from docvlm.config import DataConfig, DatasetConfig
    from docvlm.data.sources import load_split
    from docvlm.predict.run import predict_samples

    dataset = DatasetConfig(source=str(lines_dir), min_pixels=784, max_pixels=3136)
    samples = load_split(dataset, "test", DataConfig(datasets=[dataset]))
    return [r["prediction"] for r in predict_samples(loaded, samples, 3, 6, progress=False)]


@pytest.fixture(scope="module")
def full_run(qwen_model, lines_dir, tmp_path_factory):
    from docvlm.train.trainer import run_training

    cfg = make_config(tmp_path_factory.mktemp("full"), qwen_model, lines_dir, "--tuning.method", "full",
                      "--train.max_steps", "3", "--train.eval_steps", "0", "--train.learning_rate", "3e-3")
    run_training(cfg)
    return cfg.run_dir


@pytest.mark.parametrize("kind", ["lora", "full"])
def test_interpolation_ends_reproduce_base_and_tuned_exactly(lora_run, full_run, kind):
    from docvlm.config import load_config
    from docvlm.retention.interpolate import Interpolator
    from docvlm.retention.run import ModelPair

    run = lora_run if kind == "lora" else full_run
    cfg = load_config(run / "config.yaml")
    lines_dir = cfg.data.datasets[0].source
    pair = ModelPair(run, cfg)
    tuned_answers = _greedy(pair.tuned, lines_dir)
    with pair.base_context():
        base_answers = _greedy(pair.base, lines_dir)
    assert tuned_answers != base_answers  # training changed the answers, so the test can fail
    interpolator = Interpolator(pair.tuned.model, None if pair.lora else pair.base.model)
    interpolator.set(0.0)
    assert _greedy(pair.tuned, lines_dir) == base_answers
    interpolator.set(0.5)
    interpolator.set(1.0)
    assert _greedy(pair.tuned, lines_dir) == tuned_answers


def test_retention_interpolate_sweep_picks_an_a(lora_run, capsys):
    assert main(["retention", str(lora_run), "--interpolate", "0,0.5,1"]) == 0
    report = json.loads((lora_run / "metrics" / "retention.json").read_text())
    assert [p["a"] for p in report["interpolation"]] == [0.0, 0.5, 1.0]
    at_zero = report["interpolation"][0]
    # At a = 0 the "tuned" side is the base: every general metric retains exactly 100%.
    assert at_zero["general_retention"] in (None, pytest.approx(1.0))
    assert report["chosen_a"] in (0.0, 0.5, 1.0)
    assert "chosen interpolation" in capsys.readouterr().out
    assert main(["retention", str(lora_run), "--interpolate", "0,2"]) == 2


def test_merge_cat_with_one_weight_is_the_first_adapter(lora_run, qwen_model, lines_dir, tmp_path, capsys):
    from docvlm.models.loading import load_tuned
    from docvlm.train.trainer import run_training

    other = make_config(tmp_path, qwen_model, lines_dir, "--tuning.method", "lora", "--train.max_steps", "2",
                        "--train.eval_steps", "0", "--tuning.lora.r", "4", "--train.seed", "7")
    run_training(other)
    merged = tmp_path / "merged"
    assert main(["merge", str(lora_run), str(other.run_dir), "--weights", "1,0", "--method", "cat",
                 "--output", str(merged)]) == 0
    assert (merged / "adapter" / "adapter_config.json").is_file() and (merged / "config.yaml").is_file()
    assert _greedy(load_tuned(merged), lines_dir) == _greedy(load_tuned(lora_run), lines_dir)
    assert main(["merge", str(lora_run), str(other.run_dir), "--weights", "0.5,0.5", "--method", "ties",
                 "--output", str(tmp_path / "ties")]) == 0
    assert (tmp_path / "ties" / "adapter" / "adapter_model.safetensors").is_file()
    assert main(["merge", str(lora_run), str(other.run_dir), "--weights", "1", "--output", str(tmp_path / "x")]) == 2
    for method, density in (("ties", "5"), ("ties", "0"), ("linear", "0.5")):  # a fraction, and only for pruning
        assert main(["merge", str(lora_run), str(other.run_dir), "--weights", "0.5,0.5", "--method", method,
                     "--density", density, "--output", str(tmp_path / "x")]) == 2
    assert "--density" in capsys.readouterr().err and not (tmp_path / "x").exists()
