"""Inference latency, throughput, peak memory and cost, measured around generation batches.

A batch's wall time is shared equally by its samples (what a user pays per image at that batch
size), so the per-sample percentiles are over those shares. Peak memory is
``torch.cuda.max_memory_allocated`` on a GPU (reset when measuring starts) and the process's
peak resident set size on CPU (``getrusage``; a high-water mark of the whole process, so it also
covers what ran before in the same process). Cost per 1 000 images follows from the throughput and
an hourly price: ``price_per_hour / 3600 * 1000 / samples_per_second``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from docvlm.errors import ConfigError
from docvlm.resources import device_name, peak_memory_bytes, reset_peak_memory


@dataclass
class LatencyMeter:
    """Collects batch timings; ``summary`` turns them into the figures a results table needs."""

    batch_size: int
    per_sample_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def start(self) -> None:
        reset_peak_memory()

    def add_batch(self, samples: int, seconds: float) -> None:
        if samples <= 0:
            return
        self.seconds += seconds
        self.per_sample_ms += [1000.0 * seconds / samples] * samples

    def add_timed_batch(self, samples: int, started: float) -> None:
        """A batch of ``samples`` that began at ``started`` (``time.perf_counter()``) and is done now;
        the GPU's queued work is waited for first, so the time is the batch's."""
        _synchronize()
        self.add_batch(samples, time.perf_counter() - started)

    def summary(self, price_per_hour: float | None = None) -> dict:
        n = len(self.per_sample_ms)
        memory, memory_kind = peak_memory_bytes()
        times = np.asarray(self.per_sample_ms) if n else np.zeros(1)
        rate = n / self.seconds if self.seconds > 0 else None
        report = {
            "samples": n, "batch_size": self.batch_size, "seconds": round(self.seconds, 4),
            "samples_per_second": rate, "mean_ms": float(times.mean()) if n else None,
            "p50_ms": float(np.percentile(times, 50)) if n else None,
            "p95_ms": float(np.percentile(times, 95)) if n else None,
            "peak_memory_mb": round(memory / 2**20, 1), "peak_memory_kind": memory_kind, "device": device_name(),
            "price_per_hour": price_per_hour,
            "cost_per_1000_images": cost_per_1000(price_per_hour, rate),
        }
        return report


def _synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def check_price(price_per_hour: float | None, where: str = "--price-per-hour") -> float | None:
    if price_per_hour is not None and not (price_per_hour >= 0 and price_per_hour != float("inf")):
        raise ConfigError(f"{where} must be a finite number >= 0 (USD per hour), got {price_per_hour}")
    return price_per_hour


def cost_per_1000(price_per_hour: float | None, samples_per_second: float | None) -> float | None:
    if price_per_hour is None or not samples_per_second:
        return None
    return price_per_hour / 3600.0 * 1000.0 / samples_per_second


def format_latency(latency: dict) -> str:
    """One line: throughput, per-sample times, memory, device, cost."""
    if not latency.get("samples"):
        return "latency: no samples"
    cost = latency.get("cost_per_1000_images")
    cost_text = (f"; ${cost:.4f} per 1000 images at ${latency['price_per_hour']}/h" if cost is not None
                 else "; cost: give --price-per-hour")
    return (f"latency: {latency['samples_per_second']:.2f} samples/s, {latency['mean_ms']:.1f} ms/sample "
            f"(p50 {latency['p50_ms']:.1f}, p95 {latency['p95_ms']:.1f}) at batch size {latency['batch_size']}; "
            f"peak memory {latency['peak_memory_mb']:.0f} MB ({latency['peak_memory_kind']}); "
            f"{latency['device']}{cost_text}")


def start_meter(batch_size: int, price_per_hour: float | None, cfg=None) -> tuple[LatencyMeter, float | None]:
    """A started meter for ``docvlm predict`` and the checked price: ``price_per_hour`` as given
    on the command line, else the run's ``evaluate.price_per_hour`` (``cfg``: the run's config)."""
    price = check_price(price_per_hour if price_per_hour is not None else
                        (cfg.evaluate.price_per_hour if cfg is not None else None))
    meter = LatencyMeter(batch_size)
    meter.start()
    return meter, price


def finish_meter(meter: LatencyMeter, price_per_hour: float | None, timing_file) -> str:
    """Write the meter's summary to ``timing_file`` (JSON); returns its one-line description."""
    from docvlm.runs import write_json

    latency = meter.summary(price_per_hour)
    write_json(timing_file, latency)
    return format_latency(latency)
