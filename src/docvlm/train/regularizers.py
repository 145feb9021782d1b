"""Loss terms that hold a fine-tune close to where it started (forgetting mitigations).

- :class:`KLToBase` (``train.kl_to_base``): ``KL(base || tuned)`` of the next-token distributions
  at the answer positions of every training sample (replay samples included), averaged per token
  the way the task loss is. The base logits come from the context's reference hook: for LoRA the
  same model with its adapters disabled (no second copy, as TRL's DPO trainer does), for full
  tuning a frozen copy of the starting model, which costs one more model in memory (about 2 bytes
  per parameter in bf16: 4.4 GB for Qwen2-VL-2B, 16.6 GB for 7B) and one more forward pass per step.
- :class:`L2ToInit` (``train.l2_to_init``): L2-SP (Li et al. 2018), ``sum (w - w0)^2`` over the
  trainable weights, counted once per optimizer step. It keeps a float32 copy of the trainable
  weights (for LoRA only the adapters, which start at B = 0).
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import torch

from docvlm.train.losses import LossContext, answer_logits, core_model


class KLToBase:
    name = "kl"

    def __call__(self, ctx: LossContext) -> torch.Tensor:
        log_q = torch.log_softmax(ctx.logits, dim=-1)
        log_p = torch.log_softmax(ctx.reference_logits(), dim=-1)
        per_token = (log_p.exp() * (log_p - log_q)).sum(dim=-1)
        return ctx.token_mean(per_token)


class L2ToInit:
    name = "l2_init"

    def __init__(self, model: Any):
        self.pairs = [(p, p.detach().float().clone()) for p in model.parameters() if p.requires_grad]

    def __call__(self, ctx: LossContext) -> torch.Tensor:
        total = sum(((p.float() - start.to(p.device)) ** 2).sum() for p, start in self.pairs)
        return total * ctx.step_fraction


def peft_model(model: Any) -> Any | None:
    """The PEFT wrapper inside DDP/compile wrappers, or ``None`` for a model without adapters."""
    from peft import PeftModel

    while not isinstance(model, PeftModel):
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return None
        model = inner
    return model


def reference_logits_provider(model: Any) -> Callable[[LossContext], torch.Tensor]:
    """Base-model logits at the context's labelled positions: adapters disabled, or a frozen copy."""
    adapted = peft_model(model)
    if adapted is not None:
        def from_disabled_adapters(ctx: LossContext) -> torch.Tensor:
            with torch.no_grad(), adapted.disable_adapter():
                return answer_logits(adapted, ctx.inputs, ctx.labels)["logits"]

        return from_disabled_adapters
    frozen = copy.deepcopy(core_model(model)).eval()
    frozen.requires_grad_(False)

    def from_frozen_copy(ctx: LossContext) -> torch.Tensor:
        with torch.no_grad():
            return answer_logits(frozen, ctx.inputs, ctx.labels)["logits"]

    from_frozen_copy.model = frozen  # type: ignore[attr-defined]  (kept alive with the provider)
    return from_frozen_copy
