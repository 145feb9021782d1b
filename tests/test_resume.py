"""Resume and interrupt: never from a half-written checkpoint, never with a silently changed
schedule, and a Ctrl-C that leaves a summary and says how to go on (issue 9, items 17 and 22)."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from transformers import TrainerCallback

from conftest import make_config
from docvlm.cli import main
from docvlm.config import save_config
from docvlm.errors import ConfigError, Interrupted
from docvlm.train.resume import check_resume_config, incomplete_reason
from docvlm.train.trainer import run_training

FAST = ("--tuning.method", "lora", "--tuning.lora.r", "4", "--train.eval_steps", "0", "--train.logging_steps", "1",
        "--train.report_to", "[none]", "--train.batch_size", "2")


class StopAt(TrainerCallback):
    """Ctrl-C at the start of a step."""

    def __init__(self, step):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def _break_last_save(checkpoint, how):
    if how == "no_state":
        (checkpoint / "trainer_state.json").unlink()
    elif how == "empty_config":
        (checkpoint / "adapter_config.json").write_bytes(b"")
    elif how == "half_state":
        text = (checkpoint / "trainer_state.json").read_text()
        (checkpoint / "trainer_state.json").write_text(text[: len(text) // 2])


@pytest.mark.parametrize("how", ["no_state", "empty_config", "half_state"])
def test_resume_skips_a_half_written_checkpoint(tiny_models, lines_dir, tmp_path, how, caplog):
    cfg = make_config(tmp_path, tiny_models["qwen2_vl"], lines_dir, *FAST)
    with pytest.raises(Interrupted):
        run_training(cfg, extra_callbacks=[StopAt(3)])  # checkpoint-2 whole
    # A kill inside the save of checkpoint-4: copy checkpoint-2 there and break it.
    checkpoints = cfg.run_dir / "checkpoints"
    shutil.copytree(checkpoints / "checkpoint-2", checkpoints / "checkpoint-4")
    _break_last_save(checkpoints / "checkpoint-4", how)
    assert incomplete_reason(checkpoints / "checkpoint-4") and incomplete_reason(checkpoints / "checkpoint-2") is None
    with caplog.at_level("WARNING", logger="docvlm"):
        summary = run_training(cfg, resume=True)
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert "checkpoint-4 is incomplete" in messages and "resuming from" in messages
    assert "checkpoint-2 (step 2)" in messages
    assert summary["global_step"] == 4
    assert (cfg.run_dir / "checkpoints-incomplete" / "checkpoint-4").is_dir()      # kept, not deleted
    assert incomplete_reason(checkpoints / "checkpoint-4") is None                 # written anew


def test_no_complete_checkpoint_is_a_clear_error(tmp_path, tiny_models, lines_dir):
    cfg = make_config(tmp_path, tiny_models["qwen2_vl"], lines_dir, *FAST)
    (cfg.run_dir / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    save_config(cfg, cfg.run_dir / "config.yaml")
    with pytest.raises(ConfigError, match="no complete checkpoint in .*checkpoints-incomplete"):
        run_training(cfg, resume=True)


def test_resume_refuses_schedule_changes_unless_forced(tmp_path, tiny_models, lines_dir):
    cfg = make_config(tmp_path, tiny_models["qwen2_vl"], lines_dir, *FAST)
    cfg.run_dir.mkdir(parents=True)
    save_config(cfg, cfg.run_dir / "config.yaml")
    check_resume_config(cfg, cfg.run_dir, force=False)             # same config: fine, nothing rewritten
    assert not list(cfg.run_dir.glob("config.before-resume*"))
    changed = make_config(tmp_path, tiny_models["qwen2_vl"], lines_dir, *FAST, "--train.learning_rate", "0.5",
                          "--train.batch_size", "3")
    with pytest.raises(ConfigError, match=r"train.learning_rate, train.batch_size differ .*0.001 -> 0.5"):
        check_resume_config(changed, cfg.run_dir, force=False)
    assert yaml.safe_load((cfg.run_dir / "config.yaml").read_text())["train"]["learning_rate"] == 0.001
    check_resume_config(changed, cfg.run_dir, force=True)
    assert yaml.safe_load((cfg.run_dir / "config.yaml").read_text())["train"]["learning_rate"] == 0.5
    kept = yaml.safe_load((cfg.run_dir / "config.before-resume.yaml").read_text())
    assert kept["train"]["learning_rate"] == 0.001
    # A change that leaves the schedule alone (more evaluation samples) is accepted and kept visibly.
    harmless = make_config(tmp_path, tiny_models["qwen2_vl"], lines_dir, *FAST, "--train.learning_rate", "0.5",
                           "--train.batch_size", "3", "--train.eval_max_samples", "2")
    check_resume_config(harmless, cfg.run_dir, force=False)
    assert (cfg.run_dir / "config.before-resume.2.yaml").is_file()


def test_ctrl_c_writes_summary_and_says_how_to_resume(tiny_models, lines_dir, tmp_path, capsys):
    cfg = make_config(tmp_path, tiny_models["qwen2_vl"], lines_dir, *FAST)
    with pytest.raises(Interrupted) as stopped:
        run_training(cfg, extra_callbacks=[StopAt(3)])
    message = str(stopped.value)
    assert "interrupted at step 3" in message and "checkpoint-2" in message
    assert f"docvlm train {cfg.run_dir / 'config.yaml'} --resume" in message
    summary = json.loads((cfg.run_dir / "train_summary.json").read_text())
    assert summary["interrupted"] is True and summary["global_step"] == 3
    report = json.loads((cfg.run_dir / "data_report.json").read_text())
    assert report["train:lines/train"]["kept"] == 24
    # The hint works as printed.
    assert main(["train", str(cfg.run_dir / "config.yaml"), "--resume"]) == 0
    out = capsys.readouterr()
    assert "trained 4 steps" in out.out and "no sample skipped" in out.out


def test_a_new_run_never_overwrites_a_different_config_silently(tmp_path, tiny_models, lines_dir, caplog):
    from docvlm.train.resume import save_run_config

    first = make_config(tmp_path, tiny_models["qwen2_vl"], lines_dir, *FAST)
    first.run_dir.mkdir(parents=True)
    save_run_config(first, first.run_dir)
    save_run_config(first, first.run_dir)                            # the same config: nothing kept
    assert not (first.run_dir / "config.previous.yaml").exists()
    second = make_config(tmp_path, tiny_models["qwen2_vl"], lines_dir, *FAST, "--train.learning_rate", "0.5")
    with caplog.at_level("WARNING", logger="docvlm"):
        save_run_config(second, first.run_dir)
    assert yaml.safe_load((first.run_dir / "config.previous.yaml").read_text())["train"]["learning_rate"] == 0.001
    assert "kept as" in caplog.text
