"""Mitigations: each switch changes what training does (scope presets, KL to base, L2-SP, WiSE-FT)."""

from __future__ import annotations

import pytest
import torch

from conftest import SMALL, make_config
from docvlm.models.families import FAMILIES
from docvlm.models.tiny import build_tiny_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def qwen_model(tmp_path_factory):
    return build_tiny_model("qwen2_vl", tmp_path_factory.mktemp("qwen") / "model", SMALL, seed=0)


def _weights(path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(str(path), dtype=torch.float32)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


EXPECTED_TRAINED = {
    "language_attention": lambda n: n.startswith("model.language_model.") and any(
        f".{p}." in n for p in ("q_proj", "k_proj", "v_proj", "o_proj")),
    "language_mlp_gate_up": lambda n: n.startswith("model.language_model.") and any(
        f".{p}." in n for p in ("gate_proj", "up_proj")),
    "projector": lambda n: n.startswith("model.visual.merger."),
}


@pytest.mark.parametrize("scope", sorted(EXPECTED_TRAINED))
def test_full_tuning_scope_changes_only_its_parameters(qwen_model, lines_dir, tmp_path, scope):
    from docvlm.train.trainer import run_training

    cfg = make_config(tmp_path, qwen_model, lines_dir, "--tuning.method", "full", "--tuning.scope", scope,
                      "--train.max_steps", "2", "--train.eval_steps", "0")
    run_training(cfg)
    before, after = _weights(qwen_model), _weights(cfg.run_dir / "model")
    inside = EXPECTED_TRAINED[scope]
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed, "nothing trained"
    assert all(inside(n) for n in changed), sorted(n for n in changed if not inside(n))[:5]
    # Every weight matrix in the scope moved.
    assert all(n in changed for n in before if inside(n) and n.endswith("weight"))


def test_lora_scope_targets_only_attention(qwen_model, lines_dir, tmp_path):
    from docvlm.config import load_config
    from docvlm.models.loading import load_base, prepare_for_training

    cfg = make_config(tmp_path, qwen_model, lines_dir, "--tuning.method", "lora", "--tuning.scope",
                      "language_attention")
    model = prepare_for_training(load_base(cfg.model, cfg.tuning), cfg.tuning, False)
    adapted = {n.split(".lora_")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert adapted and all(n.rsplit(".", 1)[1] in ("q_proj", "k_proj", "v_proj", "o_proj") for n in adapted)
    assert all(".language_model." in n for n in adapted)
    assert not any(".visual." in n for n in adapted)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_names_its_attention_and_gate_up_layers(family):
    spec = FAMILIES[family]
    import re

    attention = spec.scope_regex("language_attention")
    language = spec.language[0].prefix
    assert re.fullmatch(attention, f"{language}.layers.0.self_attn.{spec.attention_layers[0]}")
    assert not re.fullmatch(attention, f"{language}.layers.0.mlp.{spec.mlp_gate_up_layers[0]}")
    assert re.fullmatch(spec.scope_regex("language_mlp_gate_up"), f"{language}.layers.0.mlp.{spec.mlp_gate_up_layers[0]}")


def test_scope_and_target_modules_exclude_each_other():
    from docvlm.config import load_config
    from docvlm.errors import ConfigError

    with pytest.raises(ConfigError, match="exclude each other"):
        load_config(None, ["--tuning.scope", "language", "--tuning.lora.target_modules", "[q_proj]"])
