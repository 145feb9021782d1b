"""Splits for sources that do not come split: by their own labels, or a seeded split of whole units.

A *unit* is what must never be divided between splits: a page (PAGE/ALTO file), a folder of line
images, a conversation. The rule, in order:

1. own labels: when any unit carries a split label (a ``train/``, ``validation/``, ``test/``
   subfolder, or a per-file tag), each unit belongs to the split it names;
2. ``split_ratios``: a seeded random split of the units (``split_seed``), ratios for
   ``[train, validation, test]`` in the configured split names' order;
3. otherwise the whole source is the training split; its other splits are empty (a warning says
   so), so a dataset with the default ``eval_split``/``test_split`` trains without complaint.

An empty split name (``""`` or ``null``) means "no such split" everywhere.
"""

from __future__ import annotations

import logging
import random
from typing import Callable, Sequence, TypeVar

from docvlm.config import DatasetConfig
from docvlm.errors import ConfigError, DataError

T = TypeVar("T")

log = logging.getLogger(__name__)


def split_names(dataset: DatasetConfig) -> list[str | None]:
    return [dataset.train_split or None, dataset.eval_split or None, dataset.test_split or None]


def units_of_split(units: Sequence[T], label: Callable[[T], str | None], dataset: DatasetConfig,
                   split: str) -> list[T]:
    """The units that make up ``split`` (order kept), by the rule in the module docstring."""
    labels = [label(unit) for unit in units]
    if any(lab is not None for lab in labels):
        unlabelled = [unit for unit, lab in zip(units, labels) if lab is None]
        if unlabelled:
            raise DataError(f"dataset '{dataset.name}': {unlabelled[0]} has no split label while others do "
                            f"({len(unlabelled)} without); label every file or none and use split_ratios")
        found = sorted(set(labels))
        if split not in found:
            raise DataError(f"dataset '{dataset.name}': no split '{split}' (found splits: {', '.join(found)})")
        return [unit for unit, lab in zip(units, labels) if lab == split]
    if dataset.split_ratios is not None:
        return [units[i] for i in _ratio_split(len(units), dataset)[split]]
    if split == (dataset.train_split or None):
        return list(units)
    log.warning("dataset '%s': %s has no '%s' split of its own (no split subfolders, tags or split_ratios): "
                "the whole source is the training split and '%s' is empty", dataset.name, dataset.source,
                split, split)
    return []


def _ratio_split(count: int, dataset: DatasetConfig) -> dict[str, list[int]]:
    ratios = dataset.split_ratios or []
    names = split_names(dataset)
    if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise ConfigError(f"dataset '{dataset.name}': split_ratios must be three non-negative numbers "
                          f"[train, validation, test], got {ratios}")
    order = list(range(count))
    random.Random(dataset.split_seed).shuffle(order)
    total = sum(ratios)
    # Cumulative rounding: the counts add up to ``count`` exactly and no unit is in two splits.
    bounds, running = [0], 0.0
    for ratio in ratios:
        running += ratio
        bounds.append(round(count * running / total))
    chosen: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        if name is not None:
            chosen[name] = sorted(order[bounds[index]:bounds[index + 1]])
    return chosen
