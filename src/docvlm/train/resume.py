"""Resuming a run safely: which checkpoint is whole, and whether the config still describes the run.

A run killed while it writes a checkpoint leaves a folder that looks like one (``checkpoint-N``)
but lacks files or holds empty ones; the Trainer's own ``resume_from_checkpoint=True`` takes the
newest folder and crashes on it. transformers 5's ``Trainer._save_checkpoint`` writes the weights,
then optimizer, scheduler and RNG states, and ``trainer_state.json`` last, so a checkpoint is
complete when its ``trainer_state.json`` parses, it holds weights, and no file in it is empty.
Incomplete ones are moved aside (never deleted) so the Trainer's rotation never sees them.

A resume continues the saved learning-rate schedule, optimizer state and data order; settings
that change them would produce a run that matches neither config, so they are refused unless
forced, and the saved ``config.yaml`` is only replaced with a copy of the old one kept beside it.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from docvlm.config import Config, config_yaml, read_yaml, save_config, to_dict
from docvlm.errors import ConfigError
from docvlm.files import write_text_atomic

log = logging.getLogger(__name__)

INCOMPLETE_DIR = "checkpoints-incomplete"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
SCHEDULE_KEYS = ("train.learning_rate", "train.batch_size", "train.gradient_accumulation_steps",
                 "train.max_steps", "train.num_epochs", "train.lr_scheduler", "train.warmup", "train.seed",
                 "train.weight_decay", "data.", "tuning.", "model.name_or_path", "model.revision", "model.dtype")
"""Config keys (or key prefixes) whose change alters the schedule, the data order or the weights
being trained; a resume refuses them without ``--force``."""


def checkpoint_step(path: Path) -> int:
    match = re.fullmatch(r"checkpoint-(\d+)", path.name)
    return int(match.group(1)) if match else -1


def incomplete_reason(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be resumed from, or ``None`` when it is complete."""
    state = checkpoint / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json (the save was cut short)"
    try:
        json.loads(state.read_text(encoding="utf-8"))["global_step"]
    except (ValueError, KeyError, TypeError, OSError):
        return "trainer_state.json is not a complete trainer state"
    files = [p for p in checkpoint.rglob("*") if p.is_file()]
    empty = [p for p in files if p.stat().st_size == 0]
    if empty:
        return f"{empty[0].relative_to(checkpoint)} is empty"
    if not any(p.suffix in WEIGHT_SUFFIXES for p in files):
        return "no weights file"
    return None


def resume_checkpoint(run_dir: Path, checkpoints: Path) -> Path:
    """The newest complete checkpoint; newer incomplete ones are moved to ``checkpoints-incomplete/``."""
    found = sorted((p for p in checkpoints.glob("checkpoint-*") if checkpoint_step(p) >= 0 and p.is_dir()),
                   key=checkpoint_step, reverse=True)
    for checkpoint in found:
        reason = incomplete_reason(checkpoint)
        if reason is None:
            log.warning("resuming from %s (step %d)", checkpoint, checkpoint_step(checkpoint))
            return checkpoint
        moved = _set_aside(run_dir, checkpoint)
        log.warning("%s is incomplete (%s): moved to %s; falling back to an earlier checkpoint",
                    checkpoint.name, reason, moved)
    raise ConfigError(f"--resume: no complete checkpoint in {checkpoints} to resume from"
                      + (f" (incomplete ones are in {run_dir / INCOMPLETE_DIR})" if found else "")
                      + "; start the run again without --resume")


def trim_log(path: Path, step: int) -> int:
    """Drop the entries of ``logs/train_log.jsonl`` logged after ``step`` (the checkpoint resumed
    from), and a last line a kill cut short: the resumed run logs those steps again, and the report
    would draw both attempts as one zig-zag curve. Returns how many lines were dropped."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
            keep = isinstance(entry, dict) and entry.get("step", 0) <= step
        except ValueError:
            keep = False
        if keep:
            kept.append(line + "\n")
        else:
            dropped += 1
    if dropped:
        write_text_atomic(path, "".join(kept))
        log.warning("%s: %d entries after step %d (the attempt that was cut short) dropped", path, dropped, step)
    return dropped


def _set_aside(run_dir: Path, checkpoint: Path) -> Path:
    target = run_dir / INCOMPLETE_DIR / checkpoint.name
    number = 1
    while target.exists():
        number += 1
        target = run_dir / INCOMPLETE_DIR / f"{checkpoint.name}.{number}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(checkpoint), str(target))
    return target


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        flat = {f"{prefix}length": len(data)}
        for index, item in enumerate(data):
            flat.update(_flatten(item, f"{prefix}{index}."))
        return flat
    return {prefix[:-1]: data}


def config_changes(saved: dict, current: Config) -> list[tuple[str, Any, Any]]:
    """``(key, saved value, current value)`` for every key of the saved config that now differs
    (keys the saved config does not know, added by a newer docvlm, are not differences)."""
    before, after = _flatten(saved), _flatten(to_dict(current))
    return [(key, before[key], after.get(key)) for key in before if key in after and before[key] != after[key]]


def schedule_changes(changes: list[tuple[str, Any, Any]]) -> list[tuple[str, Any, Any]]:
    return [change for change in changes if any(change[0] == key or (key.endswith(".") and change[0].startswith(key))
                                                for key in SCHEDULE_KEYS)]


def check_resume_config(cfg: Config, run_dir: Path, force: bool) -> None:
    """Refuse a resume whose schedule-changing settings differ from the saved config (unless
    ``force``); replace the saved config only after keeping the old one beside it."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        save_config(cfg, path)
        return
    saved = read_yaml(path) or {}  # a file that is not YAML: one error line naming it
    changes = config_changes(saved, cfg)
    if not changes:
        return
    described = "; ".join(f"{key}: {old!r} -> {new!r}" for key, old, new in changes[:5]) + (
        f"; and {len(changes) - 5} more" if len(changes) > 5 else "")
    schedule = schedule_changes(changes)
    if schedule and not force:
        keys = ", ".join(key for key, _, _ in schedule[:5])
        raise ConfigError(f"--resume: {keys} differ from the run's saved config ({described}); a resume "
                          f"continues the saved schedule, so resume with {path} itself, or pass --force")
    kept = _next_free(run_dir / "config.before-resume.yaml")
    shutil.copy2(path, kept)
    save_config(cfg, path)
    log.warning("resuming with a changed config (%s); the previous one is kept as %s", described, kept)


def save_run_config(cfg: Config, run_dir: Path) -> None:
    """Write the run's ``config.yaml`` for a new run; a different one already there (a run that
    stopped before its first checkpoint) is kept as ``config.previous.yaml``, and the user told."""
    path = run_dir / "config.yaml"
    if path.is_file() and path.read_text(encoding="utf-8") != config_yaml(cfg):
        kept = _next_free(run_dir / "config.previous.yaml")
        shutil.copy2(path, kept)
        log.warning("%s held another config; it is kept as %s", path, kept)
    save_config(cfg, path)


def _next_free(path: Path) -> Path:
    number = 1
    candidate = path
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}.{number}{path.suffix}")
    return candidate
