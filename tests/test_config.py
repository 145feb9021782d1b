from pathlib import Path

import pytest
import yaml

from docvlm.cli import main, split_overrides
from docvlm.config import Config, field_docs, load_config, save_config
from docvlm.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def write(tmp_path, data) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults_load_without_a_file():
    cfg = load_config()
    assert isinstance(cfg, Config)
    assert cfg.model.name_or_path == "Qwen/Qwen2-VL-2B-Instruct"
    assert cfg.tuning.method == "lora"


def test_yaml_values_and_overrides(tmp_path):
    path = write(tmp_path, {"train": {"learning_rate": "1e-4", "max_steps": 10},
                            "data": {"datasets": [{"name": "a", "source": "x.jsonl"}, {"name": "b"}]}})
    cfg = load_config(path, ["--train.max_steps", "20", "--data.datasets.1.max_pixels=1000",
                             "--tuning.lora.target_modules", "[q_proj, v_proj]", "--run_name", "r1"])
    assert cfg.train.learning_rate == pytest.approx(1e-4)  # "1e-4" is a string to PyYAML
    assert cfg.train.max_steps == 20
    assert cfg.data.datasets[1].max_pixels == 1000
    assert cfg.data.datasets[0].max_pixels is None
    assert cfg.tuning.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.run_name == "r1"


def test_regex_target_modules_stay_a_string():
    cfg = load_config(None, ["--tuning.lora.target_modules", r".*language_model.*\.(q_proj|v_proj)"])
    assert cfg.tuning.lora.target_modules == r".*language_model.*\.(q_proj|v_proj)"


@pytest.mark.parametrize("data, message", [
    ({"train": {"learning_rat": 1e-4}}, "unknown config key 'train.learning_rat'"),
    ({"bogus": 1}, "unknown config key 'bogus'"),
    ({"train": {"max_steps": "ten"}}, "config key 'train.max_steps': expected an integer, got str 'ten'"),
    ({"train": {"max_steps": True}}, "config key 'train.max_steps': expected an integer"),
    ({"tuning": {"method": "lorra"}}, "config key 'tuning.method': 'lorra' is not one of"),
    ({"data": {"datasets": [{"prompt": 3}]}}, "config key 'data.datasets.0.prompt': expected a string"),
    ({"data": {"datasets": {"name": "a"}}}, "config key 'data.datasets': expected a list"),
    ({"train": 5}, "train: expected a mapping"),
])
def test_validation_errors_name_the_key(tmp_path, data, message):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, data))
    assert message in str(error.value)


def test_override_errors_name_the_key():
    with pytest.raises(ConfigError, match="unknown config key 'train.nope'"):
        load_config(None, ["--train.nope", "1"])
    with pytest.raises(ConfigError, match="'5' is not an index"):
        load_config(None, ["--data.datasets.5.name", "x"])
    with pytest.raises(ConfigError, match="has no value"):
        load_config(None, ["--train.max_steps"])


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(None, ["--train.learning_rate", "3e-5", "--data.datasets.0.max_pixels", "200704"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


def test_every_field_is_documented():
    rows = field_docs()
    assert {key for key, *_ in rows} >= {"train.learning_rate", "data.datasets.N.max_pixels", "tuning.lora.r"}
    undocumented = [key for key, _, _, doc in rows if not doc]
    assert undocumented == []


# configs/accelerate/ holds accelerate launch configs, not docvlm configs (tests/test_distributed.py).
SHIPPED = sorted(p for p in CONFIG_DIR.rglob("*.yaml") if p.parent.name != "accelerate")


def test_required_configs_are_shipped():
    names = {str(p.relative_to(CONFIG_DIR)) for p in SHIPPED}
    assert {"demo.yaml", "qwen2_vl/htr_lora.yaml", "qwen2_vl/htr_full.yaml", "qwen2_5_vl/htr_lora.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(CONFIG_DIR)))
def test_shipped_config_is_valid(path, tmp_path):
    # demo.yaml's model folder exists once `docvlm demo` has built it; the demo passes it in.
    cfg = load_config(path, ["--model.name_or_path", str(tmp_path)] if path.name == "demo.yaml" else [])
    assert cfg.data.datasets and all(d.source for d in cfg.data.datasets)
    if cfg.train.eval_steps:
        assert cfg.train.save_steps % cfg.train.eval_steps == 0


def test_split_overrides_never_eats_positionals():
    rest, overrides = split_overrides(["predict", "run", "a.png", "--generation.max_new_tokens", "5", "b.png",
                                       "--batch-size", "2", "--run_name=x"])
    assert rest == ["predict", "run", "a.png", "b.png", "--batch-size", "2"]
    assert overrides == ["--generation.max_new_tokens", "5", "--run_name=x"]


def test_cli_reports_config_errors_in_one_line(tmp_path, capsys):
    path = write(tmp_path, {"train": {"learning_rat": 1}})
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "train.learning_rat" in err and "\n" not in err
    assert main(["config", "check", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_config_show_prints_the_resolved_config(capsys):
    assert main(["config", "show", str(CONFIG_DIR / "demo.yaml"), "--train.max_steps", "7"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["train"]["max_steps"] == 7 and shown["tuning"]["method"] == "full"
