"""WiSE-FT (weight-space interpolation between the base and the tuned model) and adapter merging.

``base + a * (tuned - base)``: ``a = 0`` is the base model, ``a = 1`` the tuned one, values between
trade task gain for retention at no training cost (Wortsman et al. 2022). For a LoRA run the
difference *is* the adapter's ``scaling * B @ A``, so interpolating means scaling the adapter: no
second copy of the weights. A fully tuned model needs the base weights beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from docvlm.errors import ConfigError


def _lora_layers(model: Any) -> list:
    from peft.tuners.lora import LoraLayer

    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def is_peft(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def check_fraction(a: float) -> None:
    if not 0 <= a <= 1:
        raise ConfigError(f"--interpolate: {a} is not between 0 (base) and 1 (tuned)")


class Interpolator:
    """Moves one model between its base (a = 0) and tuned (a = 1) weights, repeatably.

    LoRA: every adapter's scaling becomes ``a`` times its trained value. Full tuning: the tuned
    and base values of every floating-point parameter are kept (two extra copies on the CPU) and
    ``base + a * (tuned - base)`` is written into the model.
    """

    def __init__(self, model: Any, base: Any | None = None):
        self.model = model
        self.lora = is_peft(model)
        if self.lora:
            layers = _lora_layers(model)
            if any(getattr(layer, "use_dora", {}).get(name) for layer in layers for name in layer.use_dora):
                raise ConfigError("--interpolate: a DoRA adapter's magnitude is trained, so scaling the adapter "
                                  "does not lead back to the base model; use plain LoRA or full tuning")
            self.scalings = [(layer, dict(layer.scaling)) for layer in layers]
            return
        if base is None:
            raise ConfigError("--interpolate on a fully tuned model needs the base model's weights")
        base_state = base.state_dict() if hasattr(base, "state_dict") else base
        self.pairs = []
        for name, parameter in model.named_parameters():
            if not parameter.is_floating_point() or name not in base_state:
                continue
            start = base_state[name].detach().to("cpu", torch.float32)
            tuned = parameter.detach().to("cpu", torch.float32).clone()
            if not torch.equal(start, tuned):
                self.pairs.append((parameter, start, tuned))

    @torch.no_grad()
    def set(self, a: float) -> None:
        check_fraction(a)
        if self.lora:
            for layer, trained in self.scalings:
                for adapter, value in trained.items():
                    layer.scaling[adapter] = value * a
            return
        for parameter, start, tuned in self.pairs:
            # lerp computes from the nearer end, so a = 0 and a = 1 give the base and tuned values exactly.
            parameter.copy_(torch.lerp(start, tuned, a).to(parameter.dtype))


def interpolate_model(model: Any, a: float, base: Any | None = None) -> Any:
    """Set ``model`` (in place) to ``base + a * (tuned - base)`` and return it.

    For a PEFT (LoRA) model the adapter is scaled by ``a`` and ``base`` is not needed; merging
    it afterwards (``merge_and_unload``) writes the interpolated weights. A fully tuned model
    needs ``base`` (a model or a state dict with the same parameter names).
    """
    Interpolator(model, base).set(a)
    return model


MERGE_METHODS = ("linear", "cat", "ties", "dare_ties", "dare_linear", "svd", "magnitude_prune")


def merge_adapters(run_a: str | Path, run_b: str | Path, weights: list[float], method: str, output: str | Path,
                   density: float | None = None) -> Path:
    """Merge the LoRA adapters of two runs with PEFT's ``add_weighted_adapter`` into ``output``
    (a run folder with ``adapter/`` and the first run's config, so evaluate and retention read it)."""
    import shutil

    from docvlm.config import save_config
    from docvlm.models.loading import ADAPTER_DIR, load_tuned
    from docvlm.runs import load_run_config, replace_dir

    if method not in MERGE_METHODS:
        raise ConfigError(f"--method {method!r} is not one of {', '.join(MERGE_METHODS)}")
    if len(weights) != 2:
        raise ConfigError(f"--weights needs one weight per run (2), got {len(weights)}")
    pruning = ("ties", "dare_ties", "dare_linear", "magnitude_prune")
    if density is not None and method not in pruning:
        raise ConfigError(f"--density goes with --method {' / '.join(pruning)}; {method} keeps every weight")
    if density is not None and not 0 < density <= 1:
        raise ConfigError(f"--density {density}: the fraction of weights kept must be in (0, 1]")
    if method in pruning and density is None:
        density = 0.5
    runs = [Path(run_a), Path(run_b)]
    for run in runs:
        if not (run / ADAPTER_DIR / "adapter_config.json").is_file():
            raise ConfigError(f"{run}: not a LoRA run (no {ADAPTER_DIR}/adapter_config.json); only adapters merge")
    cfg = load_run_config(runs[0])
    loaded = load_tuned(runs[0], cfg.model)
    model = loaded.model
    model.load_adapter(str(runs[1] / ADAPTER_DIR), adapter_name="other")
    first = model.active_adapter if isinstance(model.active_adapter, str) else model.active_adapter[0]
    _check_same_targets(model, first, "other", runs)
    kwargs = {"density": density} if density is not None else {}
    try:
        model.add_weighted_adapter([first, "other"], list(weights), "merged", combination_type=method, **kwargs)
    except ValueError as error:
        raise ConfigError(f"--method {method}: {error}") from None
    model.set_adapter("merged")
    output = Path(output)
    target = output / ADAPTER_DIR
    # Adapter and processor are written whole in _merge/ and then take the place of adapter/: a kill
    # never leaves an adapter/ (which predict and evaluate load) with half its files.
    staging = output / "_merge"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging), selected_adapters=["merged"])
    loaded.processor.save_pretrained(str(staging / "merged"))
    replace_dir(staging / "merged", target)
    shutil.rmtree(staging, ignore_errors=True)
    cfg.run_name, cfg.output_root = output.name, str(output.parent)
    save_config(cfg, output / "config.yaml")
    return output


def _check_same_targets(model: Any, first: str, second: str, runs: list[Path]) -> None:
    config_a, config_b = model.peft_config[first], model.peft_config[second]
    if config_a.base_model_name_or_path != config_b.base_model_name_or_path:
        raise ConfigError(f"{runs[0]} and {runs[1]} adapt different base models "
                          f"({config_a.base_model_name_or_path} vs {config_b.base_model_name_or_path})")
