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


# --------------------------------------------------------------------------------------------
# KL to the base and L2-SP as loss terms


def _lora_context(qwen_model, lines_dir, full: bool = False):
    from docvlm.config import ModelConfig, TuningConfig
    from docvlm.data.sources import load_split
    from docvlm.config import DataConfig, DatasetConfig
    from docvlm.models.loading import load_base, prepare_for_training
    from docvlm.models.prompting import ChatFormat, TrainingCollator
    from docvlm.train.losses import LossContext, answer_logits
    from docvlm.train.regularizers import reference_logits_provider

    tuning = TuningConfig(method="full" if full else "lora", freeze_vision=False)
    loaded = load_base(ModelConfig(name_or_path=str(qwen_model), dtype="fp32"), tuning)
    model = prepare_for_training(loaded, tuning, False)
    model.eval()
    dataset = DatasetConfig(source=str(lines_dir), min_pixels=784, max_pixels=3136)
    samples = load_split(dataset, "train", DataConfig(datasets=[dataset]))
    batch = TrainingCollator(ChatFormat(loaded.processor, loaded.spec))([samples[i] for i in range(3)])
    reference = reference_logits_provider(model)

    def context():
        inputs = dict(batch)
        labels = inputs.pop("labels")
        found = answer_logits(model, inputs, labels)
        return LossContext(model=model, inputs=inputs, labels=labels, mask=found["mask"], hidden=found["hidden"],
                           logits=found["logits"], targets=found["targets"], num_items_in_batch=None,
                           normalise_by_items=False, reference=reference)

    return model, context


@pytest.mark.parametrize("full", [False, True])
def test_kl_term_is_zero_when_models_agree_and_positive_otherwise(qwen_model, lines_dir, full):
    from docvlm.train.regularizers import KLToBase

    model, context = _lora_context(qwen_model, lines_dir, full)
    term = KLToBase()
    assert term(context()).item() == pytest.approx(0.0, abs=1e-6)  # LoRA B = 0 / copy of the start
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.requires_grad and ("lora_B" in name or full) and parameter.dim() == 2:
                parameter.add_(torch.randn_like(parameter) * 0.05)
    ctx = context()
    value = term(ctx)
    assert value.item() > 1e-4
    # The hand formula on the same logits.
    log_p = torch.log_softmax(ctx.reference_logits(), -1)
    log_q = torch.log_softmax(ctx.logits, -1)
    assert value.item() == pytest.approx(float((log_p.exp() * (log_p - log_q)).sum(-1).mean().detach()), rel=1e-5)
    value.backward()  # gradients reach the trained weights only
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad)


def test_l2_term_is_zero_at_start_and_the_squared_distance_after(qwen_model, lines_dir):
    from docvlm.train.regularizers import L2ToInit

    model, context = _lora_context(qwen_model, lines_dir)
    term = L2ToInit(model)
    assert term(context()).item() == 0.0
    parameter = next(p for n, p in model.named_parameters() if "lora_B" in n)
    with torch.no_grad():
        parameter.add_(0.5)
    assert term(context()).item() == pytest.approx(0.25 * parameter.numel(), rel=1e-5)


def _adapter_kl(run_dir, lines_dir) -> float:
    """Mean per-token KL(base || tuned) of a LoRA run on held-out lines (the base's greedy answers)."""
    from docvlm.config import DataConfig, DatasetConfig, RetentionConfig, RetentionSuiteConfig, load_config
    from docvlm.retention.run import ModelPair
    from docvlm.retention.suites import load_suite, score_probes

    cfg = load_config(run_dir / "config.yaml")
    pair = ModelPair(run_dir, cfg)
    suite = RetentionSuiteConfig(kind="probes", dataset=DatasetConfig(
        name="probe", source=str(lines_dir), test_split="validation", text_column="", min_pixels=784, max_pixels=3136))
    data = load_suite(suite, cfg.data, RetentionConfig())
    stats, _ = score_probes(data, pair.base, pair.tuned, pair.base_context, 6, 4)
    return stats["kl_base_tuned"].value()


@pytest.mark.parametrize("switch", ["--train.kl_to_base", "--train.l2_to_init"])
def test_training_with_the_term_drifts_less_than_without(qwen_model, lines_dir, tmp_path, switch):
    from docvlm.train.trainer import run_training

    common = ("--tuning.method", "lora", "--train.max_steps", "6", "--train.eval_steps", "0",
              "--train.learning_rate", "1e-2", "--tuning.lora.dropout", "0")
    plain = make_config(tmp_path / "plain", qwen_model, lines_dir, *common)
    held = make_config(tmp_path / "held", qwen_model, lines_dir, *common, switch, "5.0")
    run_training(plain)
    summary = run_training(held)
    log_lines = (held.run_dir / "logs" / "train_log.jsonl").read_text()
    assert ("loss_kl" if "kl" in switch else "loss_l2_init") in log_lines
    assert _adapter_kl(held.run_dir, lines_dir) < _adapter_kl(plain.run_dir, lines_dir)
    assert summary["global_step"] == 6
