"""The training loss as a sum of named terms, and the answer-only logits they share.

``DocVLMTrainer.compute_loss`` builds one :class:`LossContext` per batch and returns
``sum(weight * term(ctx))`` over the terms :func:`build_loss_terms` made from the config; each term
is logged on its own (``loss_task``, ``loss_kl`` ...). A term is any object with a ``name`` and a
``__call__(ctx) -> scalar tensor``; it finds in the context what it needs without a second forward
pass: the labelled positions, the hidden states and float32 logits there, the targets, and (built
once, on demand) the base model's logits at the same positions.

Why logits only at the labelled positions: a document model's labels cover the answer alone, a few
dozen tokens, while the sequence holds hundreds to thousands of image and prompt tokens. With a real
vocabulary (Qwen2-VL: 151 936) the full float32 logits of a batch are gigabytes, almost all of them
thrown away by the loss. :func:`answer_logits` runs the model's own forward (through DDP/FSDP
wrappers, so gradient synchronisation and sharding keep working) and cuts the hidden states down to
the labelled positions at the input of the output head, through a forward pre-hook on the head, so
the head and the float32 cast see ``N`` rows instead of ``B * T``. Calling the inner backbone
(``model.model``) directly would be simpler but bypasses the DDP/FSDP wrapper's forward, which is
what prepares gradient reduction and unshards root parameters.

Normalisation follows transformers' Trainer exactly (``Trainer.compute_loss``/``training_step`` in
5.x): when the model accepts loss kwargs and the Trainer counted the labelled tokens of the whole
accumulated (and, across processes, gathered) batch, the token sum is divided by that count
(``num_items_in_batch``); otherwise it is a per-batch mean and the Trainer divides by the
accumulation steps. :meth:`LossContext.token_mean` applies that rule for any per-token term, and
:attr:`LossContext.step_fraction` scales a per-step term (L2 to the initial weights) so it counts
once per optimizer step.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from docvlm.errors import ConfigError

IGNORE_INDEX = -100


@runtime_checkable
class LossTerm(Protocol):
    """One named part of the training loss."""

    name: str
    """Logged as ``loss_<name>``."""

    def __call__(self, ctx: "LossContext") -> torch.Tensor:
        """A scalar tensor, already normalised the Trainer's way (see :meth:`LossContext.token_mean`)."""
        ...


@dataclass
class LossContext:
    """What every loss term of one batch may use, computed once."""

    model: Any
    """The model as the Trainer calls it (possibly wrapped by PEFT, DDP or FSDP)."""
    inputs: dict[str, Any]
    """The batch without ``labels``."""
    labels: torch.Tensor
    """The batch's labels as the collator made them (``-100`` = no loss)."""
    mask: torch.Tensor
    """Boolean ``[B, T]``: positions whose output predicts a label (causal: shifted by one)."""
    hidden: torch.Tensor
    """Last hidden states at ``mask`` positions, ``[N, H]`` (row-major order of ``mask``)."""
    logits: torch.Tensor
    """Float32 logits at ``mask`` positions, ``[N, V]``."""
    targets: torch.Tensor
    """Label ids predicted at ``mask`` positions, ``[N]``."""
    num_items_in_batch: torch.Tensor | int | None
    """Labelled tokens of the whole accumulated batch, as counted by the Trainer (or ``None``)."""
    normalise_by_items: bool
    """True when per-token sums are divided by ``num_items_in_batch`` (the Trainer's rule)."""
    step_fraction: float = 1.0
    """Factor for a per-optimizer-step quantity so that, summed over the accumulation steps and
    averaged over processes by the Trainer, it counts exactly once."""
    seq2seq: bool = False
    """Encoder-decoder model: labels are the decoder's targets, not shifted."""
    model_loss: torch.Tensor | None = None
    """The model's own loss when it was computed on full logits (``answer_only_logits: false``)."""
    reference: Callable[["LossContext"], torch.Tensor] | None = None
    """Returns the reference (base) model's float32 logits at ``mask`` positions, ``[N, V]``."""
    _reference_logits: torch.Tensor | None = field(default=None, repr=False)

    def token_mean(self, per_token: torch.Tensor) -> torch.Tensor:
        """Reduce a per-position value ``[N]`` the way the Trainer reduces the token loss."""
        if self.normalise_by_items:
            total = per_token.sum()
            count = self.num_items_in_batch
            return total / (count.to(total.device) if torch.is_tensor(count) else count)
        # Plain mean, as cross_entropy(reduction="mean") does; an empty batch gives 0, not NaN.
        return per_token.sum() / max(per_token.numel(), 1)

    def reference_logits(self) -> torch.Tensor:
        """The reference model's logits at the labelled positions, computed once per batch."""
        if self._reference_logits is None:
            if self.reference is None:
                raise ConfigError("a loss term needs the base model's logits, but no reference model is configured "
                                  "for this run (see train.kl_to_base)")
            self._reference_logits = self.reference(self)
        return self._reference_logits


class TaskCrossEntropy:
    """Cross-entropy of the labels, float32, only at labelled positions."""

    name = "task"

    def __call__(self, ctx: LossContext) -> torch.Tensor:
        if ctx.model_loss is not None:
            return ctx.model_loss
        per_token = F.cross_entropy(ctx.logits, ctx.targets, reduction="none")
        return ctx.token_mean(per_token)


def build_loss_terms(cfg: Any, model: Any) -> list[tuple[LossTerm, float]]:
    """The configured loss terms with their weights; the task term always comes first."""
    return [(TaskCrossEntropy(), 1.0)]


def build_reference(cfg: Any, model: Any) -> Callable[[LossContext], torch.Tensor] | None:
    """The reference-logits provider for terms that compare with the base model; none by default."""
    return None


# --------------------------------------------------------------------------------------------
# The forward pass that yields hidden states and logits at the labelled positions only


def labelled_positions(labels: torch.Tensor, seq2seq: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mask [B, T], targets [N])``: the output positions that predict a label, and those labels.

    A causal model's output at position ``t`` predicts token ``t + 1``; an encoder-decoder's decoder
    output at ``t`` predicts label ``t`` (its inputs are the labels shifted right).
    """
    if seq2seq:
        mask = labels != IGNORE_INDEX
        return mask, labels[mask]
    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return mask, labels[:, 1:][labels[:, 1:] != IGNORE_INDEX]


def core_model(model: Any) -> Any:
    """The transformers model inside DDP/FSDP/compile and PEFT wrappers (LoRA layers stay in place)."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, torch.nn.Module):  # DDP, DeepSpeed
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile
            model = model._orig_mod
        elif hasattr(model, "get_base_model") and hasattr(model, "peft_config"):
            model = model.get_base_model()
        else:
            return model


def is_seq2seq(model: Any) -> bool:
    return bool(getattr(core_model(model).config, "is_encoder_decoder", False))


def decoder_inputs(model: Any, labels: torch.Tensor) -> torch.Tensor:
    """An encoder-decoder's decoder inputs made from its labels, the way its own forward makes them
    when given ``labels`` (its module's ``shift_tokens_right`` with the text config's ids)."""
    core = core_model(model)
    shift = getattr(sys.modules[type(core).__module__], "shift_tokens_right", None)
    text = getattr(core.config, "text_config", core.config)
    if shift is None:
        raise ConfigError(f"{type(core).__name__}: no shift_tokens_right in its module; set "
                          "train.answer_only_logits: false for this model")
    return shift(labels, text.pad_token_id, text.decoder_start_token_id)


def answer_logits(model: Any, inputs: dict[str, Any], labels: torch.Tensor, full: bool = False,
                  loss_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """One forward pass; hidden states and float32 logits at the labelled positions only.

    Returns ``mask``, ``targets``, ``hidden`` ``[N, H]``, ``logits`` ``[N, V]`` and, with ``full``
    (the model computes full logits and its own loss, the path of ``answer_only_logits: false``;
    ``loss_kwargs`` such as ``num_items_in_batch`` go to it), ``model_loss``.
    Used for the trained model and, with adapters disabled or a frozen copy, for the reference.
    """
    seq2seq = is_seq2seq(model)
    mask, targets = labelled_positions(labels, seq2seq)
    head = core_model(model).get_output_embeddings()
    captured: dict[str, torch.Tensor] = {}

    def keep_labelled(_module, args):
        hidden = args[0]
        if hidden.shape[:2] != mask.shape:
            raise RuntimeError(f"output head got hidden states of shape {tuple(hidden.shape)}, labels are "
                               f"{tuple(mask.shape)}: this model's forward does not fit answer-only logits; "
                               "set train.answer_only_logits: false")
        captured["hidden"] = hidden[mask]
        return None if full else (captured["hidden"], *args[1:])

    call = dict(inputs, use_cache=False)
    if full:
        call.update(labels=labels, **(loss_kwargs or {}))
    elif seq2seq:
        call["decoder_input_ids"] = decoder_inputs(model, labels)
    handle = head.register_forward_pre_hook(keep_labelled)
    try:
        outputs = model(**call)
    finally:
        handle.remove()
    logits = outputs.logits[mask] if full else outputs.logits
    return {"mask": mask, "targets": targets, "hidden": captured["hidden"], "logits": logits.float(),
            "model_loss": outputs.loss if full else None}
