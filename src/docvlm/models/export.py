"""``docvlm export RUN OUT``: a run's weights as one standard transformers model folder.

LoRA/DoRA adapters are merged into the base weights (peft's ``merge_and_unload``), so the folder
holds plain safetensors, the model config, the processor the run trained with (pixel budget or
image options, chat template, tokenizer) and a generation config carrying the run's decoding
settings and end-of-turn token. ``AutoModelForImageTextToText.from_pretrained(OUT)`` and
``AutoProcessor.from_pretrained(OUT)`` load it with no docvlm import (vLLM reads the same layout).

QLoRA runs are merged into the *de-quantised* base: the base checkpoint is loaded at the export
dtype (not in 4 bit) and the adapters are added to it; the merge into NF4 weights would round them
away. A full-tuning run is exported as its weights are.

``interpolate`` (WiSE-FT, Wortsman et al. 2022) writes ``base + a * (tuned - base)`` for every
weight: for LoRA this equals scaling the adapter by ``a``; ``a = 1`` is the tuned model itself,
``a = 0`` the base.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch

from docvlm.errors import ConfigError
from docvlm.models.loading import ADAPTER_DIR, MODEL_DIR, is_run_dir, load_base, load_tuned, resolve_dtype
from docvlm.progress import bar

log = logging.getLogger(__name__)

DTYPES = ("auto", "bf16", "fp16", "fp32")


def export_run(run_dir: str | Path, output: str | Path, dtype: str | None = None, interpolate: float | None = None,
               overwrite: bool = False, say: Callable[[str], None] = log.info, progress: bool = True) -> dict:
    """Write the merged model of ``run_dir`` into ``output``; returns what was done (also printed)."""
    from docvlm.runs import load_run_config, write_json

    run_dir, output = Path(run_dir), Path(output)
    if not is_run_dir(run_dir):
        raise ConfigError(f"{run_dir}: not a trained run folder (needs config.yaml and {ADAPTER_DIR}/ or {MODEL_DIR}/)")
    _check_output(output, overwrite)
    if interpolate is not None and not 0 <= interpolate <= 1:
        raise ConfigError(f"--interpolate must be between 0 and 1 (share of the fine-tuning kept), got {interpolate}")
    if dtype is not None and dtype not in DTYPES:
        raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    cfg = load_run_config(run_dir)
    model_cfg = replace(cfg.model, dtype=dtype or cfg.model.dtype)
    method = cfg.tuning.method
    if method == "qlora":
        say(f"QLoRA run: the adapters are merged into the de-quantised base {model_cfg.name_or_path} loaded at "
            f"{resolve_dtype(model_cfg.dtype)} (not into 4-bit weights); the export is a full-precision model")
    stages = bar(total=3, desc="export", unit="step", enabled=progress)
    loaded, model = _merged(run_dir, model_cfg, interpolate, stages)
    stages.set_postfix_str("saving")
    _set_generation_config(model, loaded, cfg.generation)
    # Written whole into OUT.partial/, then moved into place: a killed export leaves no folder
    # with a config.json beside cut-short weights, and the rerun finds OUT as it was.
    staging = output.with_name(output.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging))
    loaded.processor.save_pretrained(str(staging))
    stages.update()
    stages.close()
    summary = {"run": str(run_dir), "output": str(output), "method": method,
               "merged": (run_dir / ADAPTER_DIR).is_dir(), "dtype": str(next(model.parameters()).dtype),
               "interpolate": interpolate, "base": cfg.model.name_or_path, "family": loaded.spec.name}
    write_json(staging / EXPORT_RECORD, summary)
    _publish(staging, output)
    return summary


EXPORT_RECORD = "docvlm_export.json"
"""Written last: an export folder without it is not a finished export."""


def _publish(staging: Path, output: Path) -> None:
    """Move the finished export into ``output``: a rename when ``output`` is new or empty; with
    ``--overwrite`` into a folder holding files, file by file (each replaced whole), the old
    record removed first and the new one moved last."""
    if not output.exists() or not any(output.iterdir()):
        if output.exists():
            output.rmdir()
        output.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, output)
        return
    (output / EXPORT_RECORD).unlink(missing_ok=True)
    for item in sorted(staging.iterdir(), key=lambda p: p.name == EXPORT_RECORD):
        target = output / item.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(item, target)
    staging.rmdir()


def _merged(run_dir: Path, model_cfg, interpolate: float | None, stages) -> tuple[Any, Any]:
    """(loaded run, plain transformers model with the adapters merged / the interpolation applied)."""
    stages.set_postfix_str("loading")
    loaded = load_tuned(run_dir, model_cfg)  # the base is loaded without quantisation here
    stages.update()
    stages.set_postfix_str("merging")
    model = loaded.model.merge_and_unload() if (run_dir / ADAPTER_DIR).is_dir() else loaded.model
    model = model.to(resolve_dtype(model_cfg.dtype))
    if interpolate is not None and interpolate != 1:
        base = load_base(model_cfg).model.to(resolve_dtype(model_cfg.dtype))
        interpolate_weights(model, base, interpolate)
        del base
    stages.update()
    return loaded, model


def _check_output(output: Path, overwrite: bool) -> None:
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise ConfigError(f"{output} exists and is not empty; choose a new folder or pass --overwrite")


@torch.no_grad()
def interpolate_weights(tuned: Any, base: Any, alpha: float) -> None:
    """WiSE-FT in place: every tuned weight becomes ``base + alpha * (tuned - base)``."""
    base_state = base.state_dict()
    done: set[int] = set()  # tied weights (embeddings = output head) share storage: interpolate once
    for name, tensor in tuned.state_dict().items():
        if name not in base_state or base_state[name].shape != tensor.shape:
            raise ConfigError(f"--interpolate: weight {name} has no counterpart of the same shape in the base model")
        if tensor.is_floating_point() and tensor.data_ptr() not in done:
            done.add(tensor.data_ptr())
            tensor.copy_(base_state[name].to(tensor.dtype) + alpha * (tensor - base_state[name].to(tensor.dtype)))


def _set_generation_config(model: Any, loaded: Any, generation: Any) -> None:
    """Greedy (or beam) decoding as the run evaluated it, stopping at the family's end-of-turn
    token, so ``model.generate(**inputs)`` in plain transformers answers like ``docvlm predict``."""
    tokenizer = loaded.processor.tokenizer
    end_ids = {tokenizer.convert_tokens_to_ids(loaded.spec.end_of_turn)}
    if tokenizer.eos_token_id is not None:
        end_ids.add(tokenizer.eos_token_id)
    config = model.generation_config
    config.do_sample = False
    config.num_beams = generation.num_beams
    config.max_new_tokens = generation.max_new_tokens
    config.eos_token_id = sorted(end_ids)
    config.pad_token_id = tokenizer.pad_token_id
    for sampling_only in ("temperature", "top_p", "top_k"):  # unused by greedy search; saved values warn
        setattr(config, sampling_only, None)


def format_summary(summary: dict) -> str:
    kind = "merged LoRA adapters into" if summary["merged"] else "copied the fully tuned weights of"
    alpha = f", WiSE-FT interpolation a={summary['interpolate']}" if summary["interpolate"] is not None else ""
    return (f"exported {summary['family']} run {summary['run']} ({summary['method']}: {kind} the base, "
            f"{summary['dtype']}{alpha}) to {summary['output']}")
