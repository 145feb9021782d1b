"""The run folder: the contract between commands.

``runs/<name>/`` holds ``config.yaml`` (resolved), ``env.json``, ``data_report.json``,
``checkpoints/``, ``adapter/`` or ``model/`` (weights with their processor and pixel budget),
``logs/`` (tensorboard + ``train_log.jsonl``), ``predictions/*.jsonl`` and ``metrics/*.json``.
Later commands read what earlier ones wrote.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from docvlm.config import Config, load_config
from docvlm.errors import ConfigError, OutputError
from docvlm.files import write_text_atomic


PACKAGES = ("docvlm", "torch", "torchvision", "transformers", "peft", "accelerate", "datasets", "tokenizers")


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (temporary file + rename) so a killed run never leaves half a file."""
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=True) + "\n")


def replace_dir(staging: Path, target: Path) -> None:
    """Put the folder ``staging``, written in full, in the place of ``target`` (renames only), so
    ``target`` is never a folder half written; a kill between the renames leaves ``target`` absent
    and the old content beside it as ``<target>.old``."""
    old = target.with_name(target.name + ".old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def ensure_writable(folder: str | Path) -> Path:
    """Create ``folder`` and prove a file can be written in it, before any work that writes there."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".docvlm-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        # "File exists" / "Not a directory" when a file stands where a folder must be: name that file.
        blocking = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), None)
        cause = f"{blocking} is a file, not a folder" if blocking else error.strerror or error
        raise OutputError(f"cannot write to {folder}: {cause}") from None
    return folder


def check_output_file(path: str | Path, flag: str, inputs: list = (), example: str = "out.jsonl") -> Path:
    """An output file the user named, checked before any work: not a folder (found only at the end,
    after the work), not one of the command's inputs (it would be overwritten), in a writable folder."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{flag} {path} is a folder; give a file name, e.g. {path / example}")
    for item in inputs:
        if item is not None and Path(item).is_file() and path.resolve() == Path(item).resolve():
            raise OutputError(f"{flag} {path} would overwrite the input {item}; choose another file")
    ensure_writable(path.parent)
    return path


def environment() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    info = {"python": sys.version.split()[0], "platform": platform.platform(), "packages": versions,
            "git_commit": _git_commit()}
    try:
        import torch

        info["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        info["cuda"] = torch.version.cuda
        info["threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return info


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def load_run_config(run_dir: str | Path, overrides: list[str] | None = None) -> Config:
    run_dir = Path(run_dir)
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no config.yaml); run 'docvlm train' first")
    return load_config(path, overrides)
