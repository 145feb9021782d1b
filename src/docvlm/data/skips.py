"""Skip counts that survive data-loader worker processes.

A ``SkipReport`` filled in a worker process is a copy: the main process never sees it, so a run
with ``train.dataloader_workers > 0`` would report no skips at all. Here a skipped sample is
returned as a ``Skipped`` marker that travels with its batch (the collator lists the batch's skips
under ``SKIPS_KEY``) and the main process adds it to the real report when the batch arrives
(``docvlm.train.batching``). Without workers the reports are filled in place, as before.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

SKIPS_KEY = "docvlm_skips"
"""Batch key holding ``(report name, reason, message, sample key)`` for each sample skipped in a
worker; the key lets the main process count a sample once however many epochs meet it."""


@dataclass(frozen=True)
class Skipped:
    """A sample dropped in a worker process, with the report it must be counted in."""

    report: str
    reason: str
    message: str
    key: Any = None


def in_worker() -> bool:
    import torch.utils.data

    return torch.utils.data.get_worker_info() is not None


class WorkerSafeSamples:
    """A sample set whose skips in worker processes come back as ``Skipped`` markers.

    ``reports`` names the set's per-dataset reports (the parts of a concatenation or mixture, in
    order) so that a marker says which report the skip belongs to.
    """

    def __init__(self, samples: Any, report_names: list[str]):
        self.samples = samples
        self.parts = getattr(samples, "parts", [samples])
        if len(report_names) != len(self.parts):
            raise ValueError("one report name per part of the sample set is needed")
        self.report_names = report_names

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def records(self):
        return self.samples.records

    def __getitem__(self, index: int):
        if not in_worker():
            return self.samples[index]  # the main process counts skips in place
        before = [(Counter(part.report.skipped), len(part.report.examples)) for part in self.parts]
        sample = self.samples[index]
        if sample is not None:
            return sample
        for name, part, (counts, examples) in zip(self.report_names, self.parts, before):
            risen = part.report.skipped - counts
            if risen:
                message = part.report.examples[-1] if len(part.report.examples) > examples else ""
                return Skipped(name, next(iter(risen)), message, _record_key(self.samples, index))
        return None


def _record_key(samples: Any, index: int) -> Any:
    records = getattr(samples, "records", None)
    return getattr(records[index], "key", None) if records is not None and index < len(records) else None
