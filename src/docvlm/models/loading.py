"""Loading base models, tuned runs and adapters through transformers' Auto classes.

The same functions load ``Qwen/Qwen2-VL-2B-Instruct`` from the hub and a tiny model from a local
folder; tests and the demo take the user's path.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from docvlm.config import ModelConfig, TuningConfig
from docvlm.errors import ConfigError, ModelError
from docvlm.models.families import FamilySpec, family_for_model_type

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
MODEL_DIR = "model"


@dataclass
class Loaded:
    model: Any
    processor: Any
    spec: FamilySpec


def resolve_dtype(name: str) -> torch.dtype:
    if name == "fp32":
        return torch.float32
    if name == "fp16":
        return torch.float16
    if name == "bf16":
        return torch.bfloat16
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def _hub_kwargs(cfg: ModelConfig) -> dict:
    kwargs: dict = {"trust_remote_code": cfg.trust_remote_code}
    if cfg.revision:
        kwargs["revision"] = cfg.revision
    return kwargs


def _check_attention(cfg: ModelConfig) -> None:
    if cfg.attn_implementation == "flash_attention_2":
        if importlib.util.find_spec("flash_attn") is None:
            raise ConfigError("model.attn_implementation=flash_attention_2 needs the flash-attn package "
                              "(pip install flash-attn); use sdpa otherwise")
        if not torch.cuda.is_available():
            raise ConfigError("model.attn_implementation=flash_attention_2 needs a CUDA GPU; use sdpa on CPU")


def _quantization(tuning: TuningConfig | None, dtype: torch.dtype) -> dict:
    if tuning is None or tuning.method != "qlora":
        return {}
    if not torch.cuda.is_available():
        raise ConfigError("tuning.method=qlora needs a CUDA GPU (bitsandbytes 4-bit kernels); "
                          "use tuning.method=lora on CPU")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("tuning.method=qlora needs bitsandbytes: pip install 'docvlm[qlora]'")
    from transformers import BitsAndBytesConfig

    compute = dtype if dtype != torch.float32 else torch.bfloat16
    return {"quantization_config": BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute)}


def read_model_type(name_or_path: str, cfg: ModelConfig) -> str:
    from transformers import AutoConfig

    _refuse_remote_code_florence2(name_or_path, cfg)
    try:
        return AutoConfig.from_pretrained(name_or_path, **_hub_kwargs(cfg)).model_type
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot read a model config from '{name_or_path}': {_first_line(error)}") from None


# The original microsoft/Florence-2-* repositories ship a config for their own remote code: the text
# config is ``florence2_language`` and the DaViT vision config uses ``dim_embed``. transformers'
# native Florence2 classes (the ones docvlm's florence2 spec describes) read only the converted
# florence-community/Florence-2-* checkpoints, and AutoConfig rejects the original with a list of
# every model type it knows.
CONVERTED_FLORENCE2 = "florence-community/Florence-2-base-ft"


def _refuse_remote_code_florence2(name_or_path: str, cfg: ModelConfig) -> None:
    # Every microsoft/Florence-2-* hub repository has this layout: say so even when offline.
    config: dict = {}
    if not name_or_path.lower().startswith("microsoft/florence-2"):
        config = _raw_config(name_or_path, cfg)
        text, vision = config.get("text_config") or {}, config.get("vision_config") or {}
        if config.get("model_type") != "florence2" or (
                text.get("model_type") != "florence2_language" and "dim_embed" not in vision):
            return
    original = str(config.get("_name_or_path") or name_or_path)
    name = original.rsplit("/", 1)[-1] if "Florence-2-" in original else ""
    converted = f"florence-community/{name}" if name else CONVERTED_FLORENCE2
    raise ModelError(f"'{name_or_path}' is a Florence-2 checkpoint in the original remote-code layout "
                     f"(text_config florence2_language, vision_config dim_embed), which transformers' native "
                     f"Florence2 classes cannot load; use the converted checkpoint {converted} "
                     f"(florence-community/Florence-2-base, -base-ft, -large or -large-ft)")


def _raw_config(name_or_path: str, cfg: ModelConfig) -> dict:
    """The checkpoint's config.json as written, or {} where it cannot be read here (AutoConfig then
    reports why)."""
    local = Path(name_or_path) / "config.json"
    path: str | Path | None = local if local.is_file() else None
    if path is None and not Path(name_or_path).exists():
        from transformers.utils import cached_file

        try:
            path = cached_file(name_or_path, "config.json", revision=cfg.revision,
                               _raise_exceptions_for_missing_entries=False,
                               _raise_exceptions_for_connection_errors=False)
        except (OSError, ValueError):
            path = None
    if path is None:
        return {}
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def load_processor(path: str, cfg: ModelConfig):
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(path, **_hub_kwargs(cfg))
    except (OSError, ValueError, ImportError) as error:  # ImportError: SmolVLM2's processor needs num2words
        raise ModelError(f"cannot load a processor from '{path}': {_first_line(error)}") from None


def load_base(cfg: ModelConfig, tuning: TuningConfig | None = None, processor_from: str | None = None) -> Loaded:
    """The base model and processor; ``processor_from`` takes the processor from another folder
    (a run's adapter) so a tuned model's pixel budget also applies when scoring the base."""
    from transformers import AutoModelForImageTextToText

    _check_attention(cfg)
    spec = family_for_model_type(read_model_type(cfg.name_or_path, cfg), cfg.family, cfg.name_or_path)
    dtype = resolve_dtype(cfg.dtype)
    try:
        model = AutoModelForImageTextToText.from_pretrained(
            cfg.name_or_path, dtype=dtype, attn_implementation=cfg.attn_implementation,
            **_quantization(tuning, dtype), **_hub_kwargs(cfg))
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot load model '{cfg.name_or_path}': {_first_line(error)}") from None
    processor = load_processor(processor_from or cfg.name_or_path, cfg)
    apply_processor_options(processor, spec, cfg.processor_options, model.config)
    return Loaded(model, processor, spec)


def apply_processor_options(processor: Any, spec: FamilySpec, options: dict | None, model_config: Any = None) -> None:
    """Set the family's image-processor options (image splitting, resize size); the processor is
    saved with every checkpoint, so they travel with the weights like the pixel budget.
    ``model_config``: the model's config, to check a new size against its vision tower exactly."""
    for name, value in (options or {}).items():
        if name not in spec.processor_options:
            allowed = ", ".join(spec.processor_options) or "none"
            raise ConfigError(f"model.processor_options.{name}: not an option of the {spec.name} processor "
                              f"(allowed: {allowed})")
        current = _plain(getattr(processor.image_processor, name))
        if type(current) is not type(value) or (isinstance(value, dict) and not set(value) <= set(current)):
            raise ConfigError(f"model.processor_options.{name}: expected a value like {current!r}, got {value!r}")
        _check_fixed_token_count(processor, spec, name, current, value, model_config)
        setattr(processor.image_processor, name, value)


def _check_fixed_token_count(processor: Any, spec: FamilySpec, name: str, current: Any, value: Any,
                             model_config: Any = None) -> None:
    # Florence-2's prompt holds a fixed number of image tokens (image_seq_length) while its vision
    # tower (DaViT: strided convolutions) gives one token per cell of its output grid, so a new size
    # must give the same grid size. Equal areas are not enough (144 x 4096 has 768 x 768's area
    # and gives 640 cells, not 576); without the tower's config only the area can be compared.
    fixed = getattr(processor.image_processor, "image_seq_length", None)
    if name != "size" or fixed is None or not {"height", "width"} <= set(current):
        return
    if not {"height", "width"} <= set(value):
        raise ConfigError(f"model.processor_options.size: {spec.name} needs both height and width, got {value!r}")
    stages = _conv_stages(getattr(model_config, "vision_config", None))
    if stages is not None:
        want = _conv_cells(stages, current["height"], current["width"])
        got = _conv_cells(stages, value["height"], value["width"])
        if got != want:
            raise ConfigError(
                f"model.processor_options.size: {spec.name} reads every image as {fixed} visual tokens; "
                f"{value['height']}x{value['width']} gives its vision tower {got} cells, not the {want} of the "
                f"current {current['height']}x{current['width']} (keep height * width and use multiples of "
                f"{math.prod(stride for _, stride, _ in stages)})")
        return
    if value["height"] * value["width"] != current["height"] * current["width"]:
        raise ConfigError(
            f"model.processor_options.size: {spec.name} reads every image as {fixed} visual tokens, so a new size "
            f"must give height * width = {current['height'] * current['width']} (the current "
            f"{current['height']}x{current['width']}), got {value!r}")


def _conv_stages(vision_config: Any) -> list[tuple[int, int, int]] | None:
    """``(kernel, stride, padding)`` of each strided convolution stage of a tower such as Florence-2's
    DaViT (``patch_size``/``patch_stride``/``patch_padding``), or None for another tower."""
    stages = [getattr(vision_config, key, None) for key in ("patch_size", "patch_stride", "patch_padding")]
    if not all(isinstance(stage, (list, tuple)) and stage for stage in stages):
        return None
    return list(zip(*stages))


def _conv_cells(stages: list[tuple[int, int, int]], height: int, width: int) -> int:
    """Cells of the output grid the stages make of a ``height`` x ``width`` image."""
    def edge(length: int) -> int:
        for kernel, stride, padding in stages:
            length = (length + 2 * padding - kernel) // stride + 1
        return length

    return edge(height) * edge(width)


def _plain(value: Any) -> Any:
    """A size setting (SizeDict) as the plain dict a user writes in YAML, unset keys left out."""
    if hasattr(value, "__dict__") and not isinstance(value, (bool, int, float, str)):
        return {k: v for k, v in vars(value).items() if v is not None}
    return value


def prepare_for_training(loaded: Loaded, tuning: TuningConfig, gradient_checkpointing: bool) -> Any:
    """Apply freezing and (Q)LoRA; returns the model the Trainer should train."""
    model, spec = loaded.model, loaded.spec
    frozen = frozen_components(tuning)
    if tuning.method == "full":
        for name, parameter in model.named_parameters():
            parameter.requires_grad = (spec.in_scope(name, tuning.scope) if tuning.scope
                                       else spec.component_of(name) not in frozen)
        _freeze_matching(model, tuning.freeze_parameters)
        if not any(p.requires_grad for p in model.parameters()):
            raise ConfigError("tuning: every component is frozen, nothing would be trained")
        if gradient_checkpointing:
            model.enable_input_require_grads()
        return model
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model, prepare_model_for_kbit_training

    if tuning.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        model.enable_input_require_grads()
    targets = tuning.lora.target_modules
    if tuning.scope:
        targets = spec.scope_regex(tuning.scope)
    if not targets:
        trainable = [c for c in ("vision", "projector", "language") if c not in frozen]
        if not trainable:
            raise ConfigError("tuning: every component is frozen, LoRA would have no targets")
        targets = spec.lora_target_regex(trainable)
    peft_config = PeftLoraConfig(
        r=tuning.lora.r, lora_alpha=tuning.lora.alpha, lora_dropout=tuning.lora.dropout,
        target_modules=targets, use_dora=tuning.lora.use_dora, use_rslora=tuning.lora.use_rslora,
        task_type="SEQ_2_SEQ_LM" if spec.architecture == "seq2seq" else "CAUSAL_LM")
    try:
        model = get_peft_model(model, peft_config)
    except ValueError as error:
        raise ConfigError(f"tuning.lora.target_modules={targets!r}: {_first_line(error)}") from None
    adapted_in_frozen = sorted({spec.component_of(n) for n, p in model.named_parameters()
                                if p.requires_grad and spec.component_of(n) in frozen})
    if adapted_in_frozen:
        raise ConfigError(f"tuning.lora.target_modules={targets!r} places adapters in frozen "
                          f"component(s) {', '.join(adapted_in_frozen)}; unfreeze them or narrow the targets")
    return model


def _freeze_matching(model: Any, pattern: str | None) -> None:
    """Keep the parameters whose names match ``tuning.freeze_parameters`` fixed; a pattern that
    matches nothing is a mistake (a typo would otherwise train everything silently)."""
    if pattern is None:
        return
    matched = [p for name, p in model.named_parameters() if re.search(pattern, name)]
    if not matched:
        raise ConfigError(f"tuning.freeze_parameters: {pattern!r} matches no parameter name of this model "
                          f"(e.g. {next(iter(dict(model.named_parameters())))!r})")
    for parameter in matched:
        parameter.requires_grad = False


def frozen_components(tuning: TuningConfig) -> set[str]:
    if tuning.scope:  # the preset decides, the freeze_* flags are not read
        trained = {"projector": {"projector"}, "all": {"vision", "projector", "language"}}.get(tuning.scope, {"language"})
        return {"vision", "projector", "language"} - trained
    return {name for name, is_frozen in (("vision", tuning.freeze_vision), ("projector", tuning.freeze_projector),
                                         ("language", tuning.freeze_language)) if is_frozen}


def count_parameters(model: Any) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


# --------------------------------------------------------------------------------------------
# Tuned models: run folders, adapter folders and full model folders


def is_run_dir(path: Path) -> bool:
    return (path / "config.yaml").is_file() and ((path / ADAPTER_DIR).is_dir() or (path / MODEL_DIR).is_dir())


def load_tuned(path: str | Path, base_cfg: ModelConfig | None = None) -> Loaded:
    """Load what ``path`` holds: a run folder, an adapter folder, or a full model folder/hub id.

    The processor comes from the same folder as the weights, so the pixel budget the model was
    trained with is the one used here.
    """
    path = Path(path)
    _explain_missing(path)
    if is_run_dir(path):
        path = path / ADAPTER_DIR if (path / ADAPTER_DIR).is_dir() else path / MODEL_DIR
    adapter_config = path / "adapter_config.json"
    cfg = base_cfg or ModelConfig()
    if adapter_config.is_file():
        from peft import PeftModel

        base_path = json.loads(adapter_config.read_text())["base_model_name_or_path"]
        base_cfg_used = ModelConfig(**{**cfg.__dict__, "name_or_path": base_cfg.name_or_path if base_cfg else base_path})
        loaded = load_base(base_cfg_used, processor_from=str(path))
        model = PeftModel.from_pretrained(loaded.model, str(path))
        return Loaded(model.eval(), loaded.processor, loaded.spec)
    if not path.exists() and str(path).startswith((".", "/")):
        raise ModelError(f"model not found: {path}")
    loaded = load_base(ModelConfig(**{**cfg.__dict__, "name_or_path": str(path)}))
    loaded.model.eval()
    return loaded


def _explain_missing(path: Path) -> None:
    """Name the real cause when ``path`` cannot hold a model, before transformers reports it as a
    hub connection error or an "Unrecognized model"."""
    if (path / "config.yaml").is_file() and not is_run_dir(path) and not (path / "config.json").is_file():
        checkpoints = sorted((path / "checkpoints").glob("checkpoint-*"))
        state = "was interrupted" if (path / "train_summary.json").is_file() else "did not finish (or crashed)"
        hint = (f"resume it with: docvlm train {path / 'config.yaml'} --resume, or use a checkpoint folder "
                f"such as {checkpoints[-1]}" if checkpoints else "no checkpoint was written; train it again")
        raise ModelError(f"{path} is a run folder without trained weights (no {ADAPTER_DIR}/ or {MODEL_DIR}/): "
                         f"its training {state}; {hint}")
    if path.exists():
        return
    text = str(path)
    local = text.startswith((".", "/", "~")) or (len(path.parts) > 1 and Path(path.parts[0]).is_dir()) \
        or len(path.parts) > 2
    if local:
        raise ModelError(f"model not found: there is no folder {path}")


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
