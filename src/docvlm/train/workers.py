"""How many data-loader worker processes a run gets, and how many threads its computation keeps.

``train.dataloader_workers: auto`` (the default) chooses from the machine:

- on a GPU the computation does not use CPU threads, so each training process gets up to 4 workers
  (half of its share of the CPU cores) to decode images and run the processor;
- on a CPU with at least two cores per process, one core goes to one worker and torch keeps the
  other cores for its threads; the worker prepares the next batches while the model computes.
  Measured on the demo's tiny Qwen2-VL, 2 cores (benchmarks/train_throughput.py, README
  "Performance"): the data pipeline in the training process cost ~20% of each step, and with one
  worker the step ran at ~0.95x of the compute-only ceiling.
- one core per process: no worker.

An integer is used as given (0: in the training process), and torch's threads are left alone.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

GPU_WORKERS_MAX = 4


@dataclass(frozen=True)
class LoaderPlan:
    workers: int
    compute_threads: int | None
    """torch's intra-op threads while training (None: leave them as they are)."""


def loader_plan(setting: int | str, on_gpu: bool, cpu_count: int, torch_threads: int,
                processes: int = 1) -> LoaderPlan:
    """The worker count and compute threads for ``train.dataloader_workers`` = ``setting``."""
    if setting != "auto":
        return LoaderPlan(int(setting), None)
    cores = max(1, cpu_count // max(1, processes))
    if on_gpu:
        return LoaderPlan(min(GPU_WORKERS_MAX, cores // 2), None)
    if cores < 2:
        return LoaderPlan(0, None)
    return LoaderPlan(1, max(1, min(torch_threads, cores - 1)))


def plan_for_this_machine(setting: int | str) -> LoaderPlan:
    import torch

    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cpu_count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return loader_plan(setting, torch.cuda.is_available(), cpu_count, torch.get_num_threads(), processes)


@contextmanager
def compute_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` inside the block (None: unchanged), restored
    after, so that evaluation and prediction later in the same process get every core again."""
    import torch

    before = torch.get_num_threads()
    if threads is not None and threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
