"""What a report needs from a run folder, read once: every file is optional except config.yaml."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docvlm.config import read_yaml
from docvlm.errors import ConfigError


@dataclass
class RunData:
    path: Path
    config: dict
    env: dict | None = None
    train_summary: dict | None = None
    train_log: list[dict] = field(default_factory=list)
    metrics: dict[str, dict] = field(default_factory=dict)
    """split -> metrics file (``metrics/<split>.json``)."""
    data_check: dict | None = None
    retention: dict | None = None
    sweep: dict | None = None

    @property
    def name(self) -> str:
        return self.path.name


def read_run(path: str | Path) -> RunData:
    path = Path(path)
    config_file = path / "config.yaml"
    if not path.is_dir():
        raise ConfigError(f"{path}: no such run folder")
    sweep = _json(path / "sweep.json")
    if not config_file.is_file() and sweep is None:
        raise ConfigError(f"{path}: not a run folder (no config.yaml) nor a sweep folder (no sweep.json)")
    config = {}
    if config_file.is_file():
        config = read_yaml(config_file) or {}
    metrics = {}
    for file in sorted((path / "metrics").glob("*.json")):
        if file.stem != "retention":
            metrics[file.stem] = _json(file)
    return RunData(path=path, config=config, env=_json(path / "env.json"),
                   train_summary=_json(path / "train_summary.json"), train_log=_jsonl(path / "logs" / "train_log.jsonl"),
                   metrics={k: v for k, v in metrics.items() if v is not None},
                   data_check=_json(path / "data_check.json"), retention=_json(path / "metrics" / "retention.json"),
                   sweep=sweep)


def _json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid JSON ({error})") from None


def _jsonl(path: Path) -> list[dict]:
    """A training log; a line cut short by a killed run is skipped, not fatal."""
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def read_predictions(run: RunData, system: str, dataset: str, split: str) -> dict[str, dict]:
    """id -> row of ``predictions/<system>-<dataset>-<split>.jsonl`` (empty when absent)."""
    rows = {}
    for row in _jsonl(run.path / "predictions" / f"{system}-{dataset}-{split}.jsonl"):
        if "id" in row:
            rows[str(row["id"])] = row
    return rows


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """``{"tuning": {"lora": {"r": 8}}}`` -> ``{"tuning.lora.r": 8}`` (lists indexed like overrides)."""
    flat: dict[str, Any] = {}
    items = config.items() if isinstance(config, dict) else enumerate(config)
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, dict) or (isinstance(value, list) and value and all(isinstance(v, dict) for v in value)):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
