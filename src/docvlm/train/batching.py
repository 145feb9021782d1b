"""How training batches are drawn and accounted for: length grouping, padding, worker skips.

``BatchingMixin`` is mixed into the Trainer and touches only the data side of the loop:

- with ``train.group_by_length`` the sampler is transformers' ``LengthGroupedSampler`` (random
  mega-batches of 50 batches, each sorted by length), fed with a length per sample estimated
  without decoding any image: visual tokens from the image header and the pixel budget (the
  processor's own rule, ``models.lengths``) plus the answer's tokens. Samples of one batch then have similar lengths,
  so less of each batch is padding;
- every training batch's real and padded token counts are summed, and the padding fraction (pad
  positions / all positions) goes into every loss log entry and the run summary;
- skips made in data-loader worker processes come back inside the batch (``docvlm.data.skips``)
  and are added to the main process's reports here, so ``data_report.json`` stays true with
  ``train.dataloader_workers > 0``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from docvlm.data.schema import SkipReport
from docvlm.data.skips import SKIPS_KEY, raise_worker_error, worker_errors_raised

log = logging.getLogger(__name__)


@dataclass
class BatchStats:
    """Token counts over the training batches seen so far."""

    batches: int = 0
    samples: int = 0
    tokens: int = 0
    """Non-padding positions (attention mask ones)."""
    positions: int = 0
    """All positions of the padded ``input_ids``."""

    def add(self, batch: dict) -> None:
        ids = batch.get("input_ids")
        mask = batch.get("attention_mask")
        if ids is None or mask is None:
            return
        self.batches += 1
        self.samples += int(ids.shape[0])
        self.tokens += int(mask.sum())
        self.positions += int(ids.numel())

    @property
    def padding_fraction(self) -> float:
        return 1.0 - self.tokens / self.positions if self.positions else 0.0

    def as_dict(self) -> dict:
        return {"batches": self.batches, "samples": self.samples, "tokens": self.tokens,
                "positions": self.positions, "padding_fraction": round(self.padding_fraction, 4)}


class BatchingMixin:
    """Trainer mixin: length-grouped sampling, padding accounting, skips from worker processes.

    Configure with ``configure_batching`` before ``train()``; without it the Trainer behaves as
    its base class (random sampler) and only the accounting is done.
    """

    group_lengths: list[int] | None = None
    skip_reports: dict[str, SkipReport] | None = None

    def configure_batching(self, group_lengths: list[int] | None, skip_reports: dict[str, SkipReport]) -> None:
        self.group_lengths = group_lengths
        self.skip_reports = skip_reports

    @property
    def batch_stats(self) -> BatchStats:
        if not hasattr(self, "_batch_stats"):
            self._batch_stats = BatchStats()
        return self._batch_stats

    def _get_train_sampler(self, train_dataset=None):
        if self.group_lengths is None:
            return super()._get_train_sampler(train_dataset)
        from transformers.trainer_pt_utils import LengthGroupedSampler

        # Mega-batches span the optimizer step's samples, as transformers' own group_by_length does.
        return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                    lengths=self.group_lengths)

    def _skip_report(self, name: str):
        """The report named ``name``, or for ``train:<dataset>`` (a collator skip, which knows the
        dataset but not the split) the one training report of that dataset."""
        reports = self.skip_reports or {}
        if name in reports:
            return reports[name]
        matches = [report for key, report in reports.items() if key.startswith(name + "/")]
        return matches[0] if len(matches) == 1 else None

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        # Checked as each batch arrives: the Trainer looks into a batch's labels before preparing it.
        return super().get_batch_samples(worker_errors_raised(epoch_iterator), num_batches, device)

    def _prepare_inputs(self, inputs):
        raise_worker_error(inputs)
        skips = inputs.pop(SKIPS_KEY, None) if isinstance(inputs, dict) else None
        for name, reason, message, key in skips or ():
            if not self.model.training:  # the eval-loss loader shares the collator: its skips are eval's
                name = name.replace("train:", "eval:", 1)
            report = self._skip_report(name)
            if report is None:
                log.warning("skip in report %r, which this run does not keep: %s", name, message)
            elif key is None:
                report.skip(reason, message)
            else:  # kept -> skipped, once per sample (epochs meet it again)
                report.skip_kept(key, reason, message)
        if self.model.training and isinstance(inputs, dict):
            self.batch_stats.add(inputs)
        return super()._prepare_inputs(inputs)

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self.batch_stats.positions:
            logs = {**logs, "padding_fraction": round(self.batch_stats.padding_fraction, 4)}
        super().log(logs, *args, **kwargs)
