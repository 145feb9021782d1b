"""Family specs, tiny models loaded through the Auto classes, and load-time errors."""

import json
import re

import pytest
import torch

from docvlm.config import ModelConfig, TuningConfig
from docvlm.errors import ConfigError, ModelError
from docvlm.models.families import FAMILIES, family_for_model_type
from docvlm.models.loading import load_base, prepare_for_training, read_model_type

from conftest import FAMILIES as BUILT


@pytest.mark.parametrize("family", BUILT)
def test_tiny_model_loads_like_a_hub_checkpoint(tiny_models, family):
    path = tiny_models[family]
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == family
    loaded = load_base(ModelConfig(name_or_path=str(path), dtype="fp32"))
    chat = loaded.spec.architecture == "chat"
    for name in ("tokenizer.json", "processor_config.json", "model.safetensors") + (("chat_template.jinja",) if chat else ()):
        assert (path / name).is_file(), name
    assert loaded.spec.name == family
    assert type(loaded.model).__name__.endswith("ForConditionalGeneration")
    assert type(loaded.processor).__name__.endswith("Processor")
    tokenizer = loaded.processor.tokenizer
    family_tokens = {"qwen": ["<|im_start|>", "<|vision_start|>"], "idefics": ["<fake_token_around_image>", "<global-img>"],
                     "smolvlm": ["<fake_token_around_image>", "<global-img>", "<video>"],
                     "florence2": ["<s>", "<loc_0>", "<loc_999>"]}
    extra = next(tokens for prefix, tokens in family_tokens.items() if family.startswith(prefix))
    for token in [loaded.spec.end_of_turn, loaded.processor.image_token, *extra]:
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id
        assert len(tokenizer.encode(token, add_special_tokens=False)) == 1
    # Every parameter belongs to exactly one declared component.
    assert {loaded.spec.component_of(n) for n, _ in loaded.model.named_parameters()} == {
        "vision", "projector", "language"}


@pytest.mark.parametrize("family", BUILT)
def test_default_lora_targets_follow_freezing(tiny_models, family):
    loaded = load_base(ModelConfig(name_or_path=str(tiny_models[family]), dtype="fp32"))
    spec = loaded.spec
    regex = re.compile(spec.lora_target_regex(["language"]))
    matched = [n for n, m in loaded.model.named_modules() if isinstance(m, torch.nn.Linear) and regex.fullmatch(n)]
    assert matched and all(spec.component_of(n) == "language" for n in matched)
    assert not any(n == "lm_head" for n in matched)
    every = re.compile(spec.lora_target_regex(["vision", "projector", "language"]))
    linear = [n for n, m in loaded.model.named_modules() if isinstance(m, torch.nn.Linear) and n != "lm_head"]
    assert [n for n in linear if not every.fullmatch(n)] == []  # the spec misses no linear layer


def test_unknown_model_type_lists_supported_families():
    with pytest.raises(ModelError, match=r"model_type 'llava' has no family spec \(supported: florence2, idefics2, "
                                         r"idefics3, qwen2_5_vl, qwen2_vl, qwen3_vl, smolvlm\)"):
        family_for_model_type("llava")
    with pytest.raises(ModelError, match="unknown model family 'qwen9'"):
        family_for_model_type("qwen2_vl", "qwen9")
    assert family_for_model_type("qwen2_5_vl").name == "qwen2_5_vl"


def test_unknown_model_folder_is_a_model_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelError, match="has no family spec"):
        load_base(ModelConfig(name_or_path=str(tmp_path)))
    with pytest.raises(ModelError, match="cannot read a model config"):
        read_model_type(str(tmp_path / "missing"), ModelConfig())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU error path")
def test_qlora_and_flash_attention_need_cuda(tiny_models):
    path = str(tiny_models["qwen2_vl"])
    with pytest.raises(ConfigError, match="qlora needs a CUDA GPU"):
        load_base(ModelConfig(name_or_path=path), TuningConfig(method="qlora"))
    with pytest.raises(ConfigError, match="flash_attention_2 needs"):
        load_base(ModelConfig(name_or_path=path, attn_implementation="flash_attention_2"))


def test_lora_options_reach_peft(tiny_models):
    loaded = load_base(ModelConfig(name_or_path=str(tiny_models["qwen2_vl"]), dtype="fp32"))
    tuning = TuningConfig(method="lora")
    tuning.lora.r, tuning.lora.use_dora, tuning.lora.use_rslora = 4, True, True
    tuning.lora.target_modules = r"model\.language_model\.layers\.0\.self_attn\.(q|v)_proj"
    model = prepare_for_training(loaded, tuning, gradient_checkpointing=False)
    config = model.peft_config["default"]
    assert config.r == 4 and config.use_dora and config.use_rslora
    adapted = sorted({n.split(".lora_")[0] for n, p in model.named_parameters() if p.requires_grad and "lora_A" in n})
    assert adapted == ["base_model.model.model.language_model.layers.0.self_attn.q_proj",
                       "base_model.model.model.language_model.layers.0.self_attn.v_proj"]
    assert any("lora_magnitude_vector" in n for n, _ in model.named_parameters())


def test_freeze_parameters_keeps_the_matching_weights_of_trained_components_fixed(tiny_models):
    from docvlm.models.tiny import IDEFICS2_ROUTING

    path = str(tiny_models["idefics2"])
    tuning = TuningConfig(method="full", freeze_vision=False, freeze_parameters=IDEFICS2_ROUTING)
    model = prepare_for_training(load_base(ModelConfig(name_or_path=path)), tuning, False)
    fixed = sorted(n for n, p in model.named_parameters() if not p.requires_grad)
    assert fixed == ["model.connector.perceiver_resampler.latents",
                     "model.connector.perceiver_resampler.layers.0.input_context_norm.weight",
                     "model.connector.perceiver_resampler.layers.0.input_latents_norm.weight",
                     "model.connector.perceiver_resampler.layers.0.self_attn.k_proj.weight",
                     "model.connector.perceiver_resampler.layers.0.self_attn.q_proj.weight",
                     "model.vision_model.embeddings.position_embedding.weight"]
    tuning.freeze_parameters = r"no_such_weight"  # a typo must not silently train everything
    with pytest.raises(ConfigError, match="tuning.freeze_parameters: 'no_such_weight' matches no parameter"):
        prepare_for_training(load_base(ModelConfig(name_or_path=path)), tuning, False)


def test_targets_in_frozen_parts_and_empty_matches_are_errors(tiny_models):
    path = str(tiny_models["qwen2_vl"])
    tuning = TuningConfig(method="lora", freeze_vision=True)
    tuning.lora.target_modules = ["qkv"]  # only the vision tower has 'qkv'
    with pytest.raises(ConfigError, match="frozen component"):
        prepare_for_training(load_base(ModelConfig(name_or_path=path)), tuning, False)
    tuning.lora.target_modules = ["no_such_layer"]
    with pytest.raises(ConfigError, match="target_modules"):
        prepare_for_training(load_base(ModelConfig(name_or_path=path)), tuning, False)
    frozen = TuningConfig(method="full", freeze_vision=True, freeze_projector=True, freeze_language=True)
    with pytest.raises(ConfigError, match="every component is frozen"):
        prepare_for_training(load_base(ModelConfig(name_or_path=path)), frozen, False)
