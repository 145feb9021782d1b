"""How many data-loader worker processes a training process gets.

``train.dataloader_workers: auto`` (the default) chooses from the machine:

- on a GPU the computation does not use CPU threads, so each training process gets up to 4 workers
  (half of its share of the CPU cores) to decode images and run the processor while it computes;
- on a CPU, none: torch's threads already use every core, and a worker only competes with them.
  Measured on the demo's tiny Qwen2-VL on an idle 2-core machine (benchmarks/train_throughput.py,
  README "Performance"): 96.8 samples/s with the data pipeline in the training process and two
  compute threads, 91.3 with one worker and one compute thread.

An integer is used as given (0: in the training process).
"""

from __future__ import annotations

import os

GPU_WORKERS_MAX = 4


def loader_workers(setting: int | str, on_gpu: bool, cpu_count: int, processes: int = 1) -> int:
    """The worker count for ``train.dataloader_workers`` = ``setting``."""
    if setting != "auto":
        return int(setting)
    if not on_gpu:
        return 0
    cores = max(1, cpu_count // max(1, processes))
    return min(GPU_WORKERS_MAX, cores // 2)


def workers_for_this_machine(setting: int | str) -> int:
    import torch

    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cpu_count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return loader_workers(setting, torch.cuda.is_available(), cpu_count, processes)
