"""The machine a command ran on: device name and peak memory (shared by train, evaluate and predict).

Peak memory is ``torch.cuda.max_memory_allocated`` on a GPU (reset by :func:`reset_peak_memory`)
and the process's peak resident set size on CPU (``getrusage``): a high-water mark of the whole
process, so in one process running several steps (a sweep) it also covers what ran before.
"""

from __future__ import annotations

import platform
import resource
import sys


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu: {_cpu_model()} ({torch.get_num_threads()} threads)"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_memory_bytes() -> tuple[int, str]:
    """(bytes, what was measured)."""
    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated()), "torch.cuda.max_memory_allocated"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return int(peak if sys.platform == "darwin" else peak * 1024), "process peak RSS"


def reset_peak_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
