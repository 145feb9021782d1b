"""``config check`` catches what would fail (or silently misbehave) later (issue 9, item 18)."""

from pathlib import Path

import pytest

from docvlm.cli import main
from docvlm.config import load_config
from docvlm.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("override, message", [
    (("--train.learning_rate", "-1e-4"), "'train.learning_rate': must be > 0, got -0.0001"),
    (("--train.batch_size", "0"), "'train.batch_size': must be >= 1, got 0"),
    (("--train.gradient_accumulation_steps", "0"), "'train.gradient_accumulation_steps': must be >= 1"),
    (("--train.max_steps", "0"), "'train.max_steps': must be >= 1, or -1 to train num_epochs; got 0"),
    (("--train.num_epochs", "0"), "'train.num_epochs': must be > 0 when max_steps is -1"),
    (("--tuning.lora.r", "0"), "'tuning.lora.r': must be >= 1, got 0"),
    (("--tuning.lora.dropout", "1.5"), "'tuning.lora.dropout': must be in [0, 1)"),
    (("--model.name_or_path", "./no/such/model"), "'./no/such/model' is neither an existing folder nor a hub id"),
    (("--model.name_or_path", "a/b/c"), "'a/b/c' is neither an existing folder nor a hub id"),
    (("--model.name_or_path", "bad name!"), "is neither an existing folder nor a hub id"),
    (("--train.save_steps", "3", "--train.eval_steps", "2"), "'train.save_steps': (3) must be a multiple of"),
    (("--data.datasets.0.split_ratios", "[0.5, 0.5]"), "'data.datasets.0.split_ratios': must be three"),
    (("--data.datasets.0.test_select", "'9:2'"), "'data.datasets.0.test_select': '9:2' ends before it starts"),
    (("--data.datasets.0.test_select", "abc"), "'abc' is not a row range"),
    (("--data.datasets.0.min_pixels", "5000", "--data.datasets.0.max_pixels", "100"), "is above max_pixels"),
    (("--data.mixture", "weighted", "--data.datasets.0.weight", "0"), "a weighted mixture needs weights"),
    (("--data.min_image_side", "0"), "'data.min_image_side': must be >= 1"),
    (("--generation.batch_size", "0"), "'generation.batch_size': must be >= 1"),
    (("--evaluate.confidence", "1.5"), "'evaluate.confidence': must be between 0 and 1"),
    (("--tuning.freeze_vision", "true", "--tuning.freeze_projector", "true", "--tuning.freeze_language", "true"),
     "every component is frozen"),
    (("--tuning.freeze_parameters", "latents"), "'tuning.freeze_parameters': applies to method full only"),
    (("--tuning.method", "full", "--tuning.freeze_parameters", "(q_proj"),
     "'tuning.freeze_parameters': is not a valid regex"),
])
def test_config_check_refuses(override, message, capsys):
    with pytest.raises(ConfigError) as error:
        load_config(CONFIG_DIR / "qwen2_vl" / "htr_lora.yaml", list(override))
    assert message in str(error.value)
    # The same refusal through the CLI: one line, exit 2, before any work.
    assert main(["config", "check", str(CONFIG_DIR / "qwen2_vl" / "htr_lora.yaml"), *override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err


def test_every_shipped_config_passes_and_hub_ids_and_folders_are_accepted(tmp_path):
    for path in sorted(CONFIG_DIR.rglob("*.yaml")):
        # demo.yaml's model folder exists once the demo has built it; accelerate/ holds launcher configs.
        if path.name != "demo.yaml" and path.parent.name != "accelerate":
            load_config(path)
    for name in ("Qwen/Qwen2-VL-2B-Instruct", "gpt2", "florence-community/Florence-2-base-ft", str(tmp_path)):
        assert load_config(None, ["--model.name_or_path", name]).model.name_or_path == name


def test_the_demo_overrides_of_every_family_pass_config_check(tmp_path):
    from docvlm.demo import DEMO_CONFIG, FAMILY_OVERRIDES

    for family, overrides in FAMILY_OVERRIDES.items():
        cfg = load_config(DEMO_CONFIG, ["--model.name_or_path", str(tmp_path), *overrides])
        assert cfg.tuning.method == "full", family
    idefics2 = load_config(DEMO_CONFIG, ["--model.name_or_path", str(tmp_path), *FAMILY_OVERRIDES["idefics2"]])
    assert "perceiver_resampler" in idefics2.tuning.freeze_parameters and idefics2.train.learning_rate == 5e-4


def test_a_missing_folder_under_an_existing_one_is_not_taken_for_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(ConfigError, match="'runs/nope' is neither an existing folder"):
        load_config(None, ["--model.name_or_path", "runs/nope"])


def test_every_command_stops_before_work(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("train: {batch_size: 0}\n")
    for command in (["train", str(config)], ["data", "check", str(config)]):
        assert main(command) == 2
        assert "train.batch_size" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
