"""train -> checkpoint -> resume -> predict -> evaluate on a tiny model, through the real code paths."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from docvlm.cli import main
from docvlm.errors import Interrupted
from docvlm.evaluate.metrics import cer
from docvlm.models.families import FAMILIES
from docvlm.models.loading import load_base, load_tuned
from docvlm.predict.run import predict_samples, samples_from_inputs
from docvlm.data.schema import PixelBudget
from docvlm.train.trainer import run_training

from conftest import make_config

pytestmark = pytest.mark.slow


def weights(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.fixture(scope="module")
def lora_run(tiny_models, lines_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lora")
    cfg = make_config(tmp, tiny_models["qwen2_vl"], lines_dir, "--tuning.method", "lora",
                      "--tuning.lora.r", "4", "--tuning.lora.dropout", "0")
    summary = run_training(cfg)
    return cfg, summary


def test_lora_run_folder_contract(lora_run):
    cfg, summary = lora_run
    run = cfg.run_dir
    for name in ("config.yaml", "env.json", "data_report.json", "train_summary.json",
                 "adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                 "adapter/processor_config.json", "logs/train_log.jsonl"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert any((run / "logs" / "tensorboard").iterdir())
    log = [json.loads(line) for line in (run / "logs" / "train_log.jsonl").read_text().splitlines()]
    assert any("eval_cer" in entry for entry in log) and any("loss" in entry for entry in log)
    assert summary["global_step"] == 4 and summary["best_eval_cer"] is not None
    assert summary["best_checkpoint"].endswith(("checkpoint-2", "checkpoint-4"))
    report = json.loads((run / "data_report.json").read_text())
    assert report["train:lines/train"]["kept"] == 24


def test_lora_trains_adapters_only(lora_run, tiny_models):
    cfg, _ = lora_run
    base = load_base(cfg.model).model
    tuned = load_tuned(cfg.run_dir).model
    adapter = load_file(str(cfg.run_dir / "adapter" / "adapter_model.safetensors"))
    lora_b = [k for k in adapter if "lora_B" in k]
    assert lora_b and all(adapter[k].abs().sum() > 0 for k in lora_b)  # B starts at zero: it trained
    # Defaults: vision frozen, projector and language model adapted.
    spec = FAMILIES["qwen2_vl"]
    assert {spec.component_of(k) for k in adapter} == {"language", "projector"}
    merged = tuned.merge_and_unload()
    before, after = weights(base), weights(merged)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert {spec.component_of(n) for n in changed} == {"language", "projector"}


def test_full_tuning_changes_trainable_weights_and_respects_freezing(tiny_models, lines_dir, tmp_path):
    cfg = make_config(tmp_path, tiny_models["qwen2_vl"], lines_dir, "--tuning.method", "full",
                      "--tuning.freeze_vision", "true", "--train.eval_steps", "0")
    run_training(cfg)
    base, tuned = weights(load_base(cfg.model).model), weights(load_tuned(cfg.run_dir).model)
    spec = FAMILIES["qwen2_vl"]
    for name in base:
        same = torch.equal(base[name], tuned[name])
        if spec.component_of(name) == "vision":
            assert same, f"frozen {name} changed"
        elif name.endswith("weight") and "norm" not in name:
            assert not same, f"trainable {name} did not change"


class StopAfter(TrainerCallback):
    """Simulates a killed job: raises once the given step's checkpoint exists."""

    def __init__(self, step):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


@pytest.mark.parametrize("method", ["full", "lora"])
def test_resume_after_kill_equals_uninterrupted(tiny_models, lines_dir, tmp_path, method):
    common = ["--tuning.method", method, "--tuning.freeze_vision", "false", "--tuning.lora.dropout", "0.1",
              "--train.lr_scheduler", "cosine", "--train.eval_steps", "0", "--train.max_steps", "4"]
    straight = make_config(tmp_path, tiny_models["qwen2_vl"], lines_dir, *common, "--run_name", "straight")
    run_training(straight)
    killed = make_config(tmp_path, tiny_models["qwen2_vl"], lines_dir, *common, "--run_name", "killed")
    with pytest.raises(Interrupted):  # Ctrl-C: the run says what it kept and how to resume
        run_training(killed, extra_callbacks=[StopAfter(2)])
    assert (killed.run_dir / "checkpoints" / "checkpoint-2").is_dir()
    assert not (killed.run_dir / "checkpoints" / "checkpoint-4").exists()
    summary = run_training(killed, resume=True)
    assert summary["global_step"] == 4
    a, b = weights(load_tuned(straight.run_dir).model), weights(load_tuned(killed.run_dir).model)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name)


def test_training_twice_into_one_run_folder_is_refused(lora_run):
    cfg, _ = lora_run
    from docvlm.errors import ConfigError

    with pytest.raises(ConfigError, match="already holds a training run; pass --resume"):
        run_training(cfg)


def test_batched_and_single_predictions_agree(lora_run, lines_dir):
    cfg, _ = lora_run
    loaded = load_tuned(cfg.run_dir)
    samples = samples_from_inputs([str(lines_dir / "test.jsonl")], cfg.data.datasets[0].prompt,
                                  PixelBudget(784, 3136), "error")
    batched = predict_samples(loaded, samples, batch_size=6, max_new_tokens=6, progress=False)
    single = predict_samples(loaded, samples, batch_size=1, max_new_tokens=6, progress=False)
    assert [r["prediction"] for r in batched] == [r["prediction"] for r in single]
    assert [r["id"] for r in batched] == [f"test-{i:06d}" for i in range(6)]


def test_predict_cli_on_files_folder_and_manifest(lora_run, lines_dir, tmp_path, capsys):
    cfg, _ = lora_run
    image = lines_dir / "images" / "test" / "test-000000.png"
    out = tmp_path / "p.jsonl"
    code = main(["predict", str(cfg.run_dir), str(image), str(lines_dir / "images" / "validation"),
                 str(lines_dir / "test.jsonl"), "--output", str(out), "--batch-size", "4",
                 "--generation.max_new_tokens", "4"])
    assert code == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1 + 6 + 6
    assert rows[0]["id"] == "test-000000.png" and rows[0]["reference"] is None
    assert rows[-1]["reference"] == (lines_dir / "test.jsonl").read_text().splitlines()[-1].split('"text": "')[1][:-2]
    # The --generation.max_new_tokens override reached generation: same answers as the API at 4.
    samples = samples_from_inputs([str(lines_dir / "test.jsonl")], cfg.data.datasets[0].prompt,
                                  PixelBudget(784, 3136), "error")
    expected = predict_samples(load_tuned(cfg.run_dir), samples, batch_size=4, max_new_tokens=4, progress=False)
    assert [r["prediction"] for r in rows[-6:]] == [r["prediction"] for r in expected]
    assert "13 predictions written" in capsys.readouterr().out


def test_predict_split_defaults_to_run_folder(lora_run, capsys):
    cfg, _ = lora_run
    assert main(["predict", str(cfg.run_dir), "--split", "test"]) == 0
    rows = (cfg.run_dir / "predictions" / "predictions.jsonl").read_text().splitlines()
    assert len(rows) == 6


def test_evaluate_scores_base_and_tuned(lora_run, capsys):
    cfg, _ = lora_run
    assert main(["evaluate", str(cfg.run_dir), "--evaluate.bootstrap_resamples", "50"]) == 0
    table = capsys.readouterr().out
    assert "lines/test" in table and "CER" in table and "WER" in table and "[" in table  # CIs printed
    assert "lines/test: scored 6 samples; 0 skipped" in table
    metrics_file = json.loads((cfg.run_dir / "metrics" / "test.json").read_text())
    assert not (cfg.run_dir / "metrics" / "lines-test.json").exists()
    metrics = metrics_file["datasets"]["lines"]
    assert metrics["n"] == 6 and metrics["task"] == "transcription" and metrics["split"] == "test"
    for which in ("base", "tuned"):
        rows = [json.loads(line) for line in
                (cfg.run_dir / "predictions" / f"{which}-lines-test.jsonl").read_text().splitlines()]
        expected = cer([r["reference"] for r in rows], [r["prediction"] for r in rows])
        assert metrics[which]["cer"]["value"] == pytest.approx(expected.rate)
        assert metrics[which]["cer"]["edits"] == expected.edits
        low, high = metrics[which]["cer"]["ci"]
        assert low <= expected.rate <= high
        analysis = metrics["analysis"][which]
        assert analysis["substitutions"] + analysis["insertions"] + analysis["deletions"] == expected.edits
        # Every sample's value of every metric of the task, base and tuned (issue 9 item 7).
        per_sample = [json.loads(line) for line in
                      (cfg.run_dir / "metrics" / "test.per_sample.jsonl").read_text().splitlines()]
        assert [r["id"] for r in per_sample] == [r["id"] for r in rows]
        assert {r["dataset"] for r in per_sample} == {"lines"}
        for sample, row in zip(per_sample, rows):
            assert set(metrics["metrics"]) <= set(sample[which])
            one = cer([row["reference"]], [row["prediction"]])
            assert sample[which]["cer_edits"] == one.edits and sample[which]["cer"] == pytest.approx(one.rate)
        assert sum(s[which]["cer_edits"] for s in per_sample) == expected.edits
    assert metrics["delta"]["cer"] == pytest.approx(metrics["tuned"]["cer"]["value"] - metrics["base"]["cer"]["value"])
    assert 0.0 <= metrics["p_value"]["cer"] <= 1.0
    assert metrics_file["options"]["cer_wer"]["normalization"] == "none"
    assert metrics_file["options"]["bootstrap"]["resamples"] == 50


def test_train_cli_with_yaml_and_overrides(tiny_models, lines_dir, tmp_path, capsys):
    import yaml

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name_or_path": str(tiny_models["qwen2_5_vl"]), "dtype": "fp32"},
        "tuning": {"method": "lora", "lora": {"r": 2, "target_modules": ["q_proj", "v_proj"]}},
        "data": {"datasets": [{"name": "l", "source": str(lines_dir), "max_pixels": 3136}]},
        "train": {"batch_size": 4, "gradient_accumulation_steps": 1, "eval_steps": 0, "save_steps": 1,
                  "report_to": ["none"]},
    }))
    code = main(["train", str(config), "--train.max_steps", "2", "--output_root", str(tmp_path / "runs"),
                 "--run_name", "cli"])
    assert code == 0, capsys.readouterr().err
    assert "trained 2 steps" in capsys.readouterr().out
    adapter = json.loads((tmp_path / "runs" / "cli" / "adapter" / "adapter_config.json").read_text())
    assert sorted(adapter["target_modules"]) == ["q_proj", "v_proj"]


def test_non_finite_loss_stops_training():
    from transformers import TrainerControl, TrainerState

    from docvlm.train.trainer import NonFiniteLossCallback

    control, state = TrainerControl(), TrainerState()
    NonFiniteLossCallback().on_log(None, state, control, logs={"loss": 0.5})
    assert not control.should_training_stop
    control.should_save = True
    NonFiniteLossCallback().on_log(None, state, control, logs={"loss": float("nan")})
    assert control.should_training_stop and not control.should_save
