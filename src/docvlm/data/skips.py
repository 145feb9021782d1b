"""Skip counts that survive data-loader worker processes.

A ``SkipReport`` filled in a worker process is a copy: the main process never sees it, so a run
with ``train.dataloader_workers > 0`` would report no skips at all. Here a skipped sample is
returned as a ``Skipped`` marker that travels with its batch (the collator lists the batch's skips
under ``SKIPS_KEY``) and the main process adds it to the real report when the batch arrives
(``docvlm.train.batching``). Without workers the reports are filled in place, as before.

An error a worker meets (``on_bad_sample: error``: an unreadable image, a sample too long) would
reach the main process as torch's multi-line "Caught BadSample in DataLoader worker process 0"
with the worker's traceback. It travels back as a ``Failed`` marker instead (a batch holding
``FAILED_KEY``) and is raised in the main process as the same one-line error, of the same class
(``BadSample``, which needs its reason too, as its base ``DataError``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from docvlm.errors import DataError, DocVLMError

SKIPS_KEY = "docvlm_skips"
"""Batch key holding ``(report name, reason, message, sample key)`` for each sample skipped in a
worker; the key lets the main process count a sample once however many epochs meet it."""


FAILED_KEY = "docvlm_failed"
"""Batch key holding the ``Failed`` marker of an error met while a worker built the batch."""


@dataclass(frozen=True)
class Failed:
    """A sample (or batch) a worker process could not build: the error's class and message."""

    message: str
    error: type = DataError

    @classmethod
    def of(cls, error: DocVLMError) -> "Failed":
        return cls(str(error), type(error))

    def raise_it(self) -> None:
        try:
            error = self.error(self.message)
        except TypeError:  # a class that needs more than the message (BadSample): its base
            error = DataError(self.message)
        raise error


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
        try:
            sample = self.samples[index]
        except DocVLMError as error:
            return Failed.of(error)
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


def raise_worker_error(batch: Any) -> None:
    """Raise, in the main process, the error a worker met while building ``batch``."""
    if isinstance(batch, dict) and FAILED_KEY in batch:
        batch[FAILED_KEY].raise_it()


def worker_errors_raised(batches: Any):
    """``batches`` passed through, raising a worker's error when its batch comes up."""
    for batch in batches:
        raise_worker_error(batch)
        yield batch
