"""Declarative model-family specs.

A family is data, not a class: where its parts live in the module tree, which linear layers LoRA
should target in each part, how its processor expresses the pixel budget, and which token closes
an assistant turn. Everything else (prompt format, image placeholders, batching of pixel values)
comes from the checkpoint's own processor and chat template, so nothing here copies a template.

Adding a family means adding one ``FamilySpec`` to ``FAMILIES`` and one builder entry in
``docvlm.models.tiny``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from docvlm.errors import ModelError


@dataclass(frozen=True)
class Component:
    """One part of the model: its module prefix and the linear layers adapters may wrap."""

    prefix: str
    """Dotted module path, e.g. ``model.visual``; ``lm_head`` style leaves are allowed."""
    linear_layers: tuple[str, ...] = ()
    """Names of linear layers (relative, may contain dots) inside this component."""
    exclude: tuple[str, ...] = ()
    """Sub-prefixes that belong to another component (Qwen's merger sits inside ``visual``)."""


@dataclass(frozen=True)
class FamilySpec:
    name: str
    model_types: tuple[str, ...]
    """``config.model_type`` values served by this spec."""
    vision: Component
    projector: Component | tuple[Component, ...]
    """The vision-to-language connector; several parts where the model has several (Qwen3-VL's
    merger and its deepstack mergers)."""
    language: tuple[Component, ...]
    """The language model; the output head is listed separately so it can be told apart."""
    end_of_turn: str
    """Token that closes an assistant turn (chat) or the decoder's target (seq2seq); it is part
    of the training target and stops generation."""
    architecture: Literal["chat", "seq2seq"] = "chat"
    """``chat``: a decoder-only model prompted through its chat template, loss on the answer
    span. ``seq2seq``: an encoder-decoder driven by task prompts (Florence-2): the prompt goes to
    the encoder, the target is the decoder's sequence."""
    pixel_budget_keys: tuple[str, str] | None = ("shortest_edge", "longest_edge")
    """Keys of ``image_processor.size`` that hold the min and max pixel area; ``None`` for
    families whose images are resized by edge length or to a fixed size (no area budget)."""
    processor_options: tuple[str, ...] = ()
    """Image-processor settings a config may change (``model.processor_options``), e.g. Idefics'
    ``do_image_splitting``; they are saved with every checkpoint like the pixel budget."""
    default_prompt: str | None = None
    """Prompt used by ``predict`` on a bare model folder when none is given (Florence-2 needs a
    task token); ``None``: the default dataset prompt."""
    generation: dict = field(default_factory=dict)
    """Generation defaults of the family (``generation`` config keys) that a shipped config or
    ``predict`` on a bare model start from."""
    attention_layers: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    """The language model's attention projections (``tuning.scope: language_attention``)."""
    mlp_gate_up_layers: tuple[str, ...] = ("gate_proj", "up_proj")
    """The language model's MLP gate and up projections (``tuning.scope: language_mlp_gate_up``)."""
    notes: str = ""

    def components(self) -> dict[str, tuple[Component, ...]]:
        projector = self.projector if isinstance(self.projector, tuple) else (self.projector,)
        return {"vision": (self.vision,), "projector": projector, "language": self.language}

    def component_of(self, parameter_name: str) -> str | None:
        """Which component a parameter (or module) name belongs to, ignoring PEFT prefixes."""
        name = strip_peft_prefix(parameter_name)
        for component_name, parts in self.components().items():
            for part in parts:
                if _inside(name, part.prefix) and not any(_inside(name, e) for e in part.exclude):
                    return component_name
        return None

    def lora_target_regex(self, components: list[str]) -> str:
        """A full-match regex over module names covering the linear layers of ``components``."""
        alternatives = []
        for component_name in components:
            for part in self.components()[component_name]:
                if not part.linear_layers:
                    continue
                layers = "|".join(re.escape(layer) for layer in part.linear_layers)
                excluded = "".join(f"(?!{re.escape(e[len(part.prefix) + 1:])}\\.)" for e in part.exclude)
                alternatives.append(f"{re.escape(part.prefix)}\\.{excluded}(?:.*\\.)?(?:{layers})")
        if not alternatives:
            raise ModelError(f"{self.name}: no linear layers to adapt in components {components}")
        return "^(?:" + "|".join(alternatives) + ")$"


    def scope_components(self, scope: str) -> list[str]:
        """The components a ``tuning.scope`` preset trains."""
        return {"projector": ["projector"], "all": ["vision", "projector", "language"]}.get(scope, ["language"])

    def scope_regex(self, scope: str) -> str:
        """A full-match regex over module names: the linear layers a scope preset trains (LoRA targets)."""
        narrow = {"language_attention": self.attention_layers, "language_mlp_gate_up": self.mlp_gate_up_layers}
        if scope not in narrow:
            return self.lora_target_regex(self.scope_components(scope))
        parts = [Component(part.prefix, narrow[scope], part.exclude) for part in self.language if part.linear_layers]
        alternatives = [f"{re.escape(p.prefix)}\\.(?:.*\\.)?(?:{'|'.join(map(re.escape, p.linear_layers))})" for p in parts]
        return "^(?:" + "|".join(alternatives) + ")$"

    def in_scope(self, parameter_name: str, scope: str) -> bool:
        """Whether full tuning with a scope preset trains this parameter (weights and biases of the
        scope's linear layers; every parameter of a whole-component scope)."""
        if scope in ("language_attention", "language_mlp_gate_up"):
            module = strip_peft_prefix(parameter_name).rsplit(".", 1)[0]
            return re.fullmatch(self.scope_regex(scope), module) is not None
        return self.component_of(parameter_name) in self.scope_components(scope)


def _inside(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def strip_peft_prefix(name: str) -> str:
    return name[len("base_model.model."):] if name.startswith("base_model.model.") else name


_QWEN_LANGUAGE = (
    Component("model.language_model", ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")),
    Component("lm_head"),
)

_LLAMA_LAYERS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_SIGLIP_LAYERS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")

def _idefics(name: str, model_types: tuple[str, ...], connector: Component) -> FamilySpec:
    """Idefics2/3 and SmolVLM: SigLIP vision model, connector, Llama/Mistral text model; images are
    sized by edge length and may be split into tiles. (Idefics3's tile size, ``max_image_size``,
    must equal the vision encoder's image size, so it is not an option.)"""
    return FamilySpec(
        name=name, model_types=model_types, vision=Component("model.vision_model", _SIGLIP_LAYERS),
        projector=connector, language=(Component("model.text_model", _LLAMA_LAYERS), Component("lm_head")),
        end_of_turn="<end_of_utterance>", pixel_budget_keys=None, processor_options=("do_image_splitting", "size"))


FAMILIES: dict[str, FamilySpec] = {
    spec.name: spec
    for spec in [
        FamilySpec(
            name="qwen2_vl",
            model_types=("qwen2_vl",),
            vision=Component("model.visual", ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"), exclude=("model.visual.merger",)),
            projector=Component("model.visual.merger", ("mlp.0", "mlp.2")),
            language=_QWEN_LANGUAGE,
            end_of_turn="<|im_end|>",
        ),
        FamilySpec(
            name="qwen2_5_vl",
            model_types=("qwen2_5_vl",),
            vision=Component(
                "model.visual",
                ("attn.qkv", "attn.proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
                exclude=("model.visual.merger",),
            ),
            projector=Component("model.visual.merger", ("mlp.0", "mlp.2")),
            language=_QWEN_LANGUAGE,
            end_of_turn="<|im_end|>",
        ),
        FamilySpec(
            name="qwen3_vl",
            model_types=("qwen3_vl",),
            vision=Component("model.visual", ("attn.qkv", "attn.proj", "mlp.linear_fc1", "mlp.linear_fc2"),
                             exclude=("model.visual.merger", "model.visual.deepstack_merger_list")),
            projector=(Component("model.visual.merger", ("linear_fc1", "linear_fc2")),
                       Component("model.visual.deepstack_merger_list", ("linear_fc1", "linear_fc2"))),
            language=_QWEN_LANGUAGE,
            end_of_turn="<|im_end|>",
            notes="Qwen3-VL patches are 16 pixels: a visual token covers 32 x 32 pixels (28 x 28 for Qwen2/2.5-VL).",
        ),
        # The Idefics2 connector is the modality projection MLP and the perceiver resampler.
        _idefics("idefics2", ("idefics2",), Component("model.connector", _LLAMA_LAYERS)),
        # SmolVLM-Instruct is model_type idefics3; SmolVLM2 (model_type smolvlm) has the same module
        # layout and prompt format with its own classes, a video processor and num2words.
        _idefics("idefics3", ("idefics3",), Component("model.connector", ("modality_projection.proj",))),
        _idefics("smolvlm", ("smolvlm",), Component("model.connector", ("modality_projection.proj",))),
        FamilySpec(
            name="florence2",
            model_types=("florence2",),
            architecture="seq2seq",
            vision=Component("model.vision_tower", ("qkv", "proj", "fc1", "fc2")),
            projector=Component("model.multi_modal_projector", ("image_projection",)),
            # The BART encoder reads the visual tokens and the task prompt; the decoder writes.
            language=(Component("model.language_model", ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")),
                      Component("lm_head")),
            end_of_turn="</s>",
            # BART's attention ends in out_proj, and its MLP has no gate: fc1 is the up projection.
            attention_layers=("q_proj", "k_proj", "v_proj", "out_proj"),
            mlp_gate_up_layers=("fc1",),
            pixel_budget_keys=None,
            processor_options=("size",),
            default_prompt="<OCR>",
            generation={"num_beams": 3},
            notes="Images are resized to one fixed size (processor option size: {height, width}).",
        ),
    ]
}


def family_for_model_type(model_type: str, requested: str | None = None, where: str = "") -> FamilySpec:
    """The spec for a checkpoint, by explicit name or by its ``config.model_type``."""
    supported = ", ".join(sorted(FAMILIES))
    if requested:
        if requested not in FAMILIES:
            raise ModelError(f"unknown model family '{requested}' (supported: {supported})")
        return FAMILIES[requested]
    for spec in FAMILIES.values():
        if model_type in spec.model_types:
            return spec
    prefix = f"{where}: " if where else ""
    raise ModelError(f"{prefix}model_type '{model_type}' has no family spec (supported: {supported})")
