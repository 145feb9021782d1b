"""What a run needs to know about its other processes under ``torchrun`` / ``accelerate launch``.

docvlm has no launcher of its own: the launchers start one ``docvlm train`` per process and set
``RANK``/``WORLD_SIZE``; transformers' Trainer (through accelerate) does the rest. This module holds
the two things the Trainer cannot do for us: telling whether this process writes the run folder
(before the Trainer exists, so from the launcher's environment), and summing the skip counts that
each process made while it read its share of the data.

Skip reports hold counts made when the datasets were indexed (the same on every process, since
every process indexes every dataset) and counts made while training or evaluating (decode-time
and collation-time skips, each process on its own share). Only the second kind is summed: a
snapshot after indexing marks where it starts.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import sys
from collections import Counter
from typing import Any

from docvlm.data.schema import SkipReport

EXAMPLES_KEPT = 20  # as SkipReport.skip keeps


def is_main_process() -> bool:
    """True in the process that writes the run folder (rank 0, or the only process)."""
    return int(os.environ.get("RANK", "0")) == 0


def end_process_group() -> None:
    """Take down the process group the launcher's run set up, before the interpreter exits. Left to
    interpreter shutdown, gloo's threads can be destroyed while still joinable: one rank then dies
    with "terminate called without an active exception" (SIGABRT) after a run that succeeded (seen
    once in the 2-process test on a loaded machine)."""
    distributed = sys.modules.get("torch.distributed")  # never imported here: only if a run did
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()


def snapshot(reports: dict[str, SkipReport]) -> dict[str, SkipReport]:
    """Copies of the reports as they stand now (after indexing, before any batch is read)."""
    return {key: copy.deepcopy(report) for key, report in reports.items()}


def _delta(now: SkipReport, before: SkipReport) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    for f in dataclasses.fields(SkipReport):
        current, earlier = getattr(now, f.name), getattr(before, f.name)
        if isinstance(current, Counter):
            delta[f.name] = Counter({k: v - earlier.get(k, 0) for k, v in current.items() if v != earlier.get(k, 0)})
        elif isinstance(current, list):
            delta[f.name] = current[len(earlier):]
        elif isinstance(current, dict):  # e.g. unread files: entries added since the snapshot
            delta[f.name] = {k: v for k, v in current.items() if k not in earlier}
        else:  # numbers, and sets of keys (set difference)
            delta[f.name] = current - earlier
    return delta


def sum_over_processes(reports: dict[str, SkipReport], before: dict[str, SkipReport], accelerator: Any) -> None:
    """Make every report hold the indexing counts once plus every process's run-time counts.

    Collective: every process must call it (it gathers), with the same report keys."""
    if accelerator is None or accelerator.num_processes < 2:
        return
    from accelerate.utils import gather_object

    mine = {key: _delta(report, before[key]) for key, report in reports.items() if key in before}
    everyone = gather_object([mine])
    for key, report in reports.items():
        if key not in before:
            continue
        start = before[key]
        for f in dataclasses.fields(SkipReport):
            value = copy.deepcopy(getattr(start, f.name))
            for deltas in everyone:
                change = deltas[key][f.name]
                if isinstance(value, Counter):
                    value.update(change)
                elif isinstance(value, list):
                    value.extend(change[:max(EXAMPLES_KEPT - len(value), 0)])
                elif isinstance(value, (dict, set)):
                    value.update(change)
                else:
                    value += change
            setattr(report, f.name, value)
