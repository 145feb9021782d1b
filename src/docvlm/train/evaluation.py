"""Evaluation during training: every evaluation dataset answered by generation and scored with its
own task metric, and the one number that chooses the best checkpoint.

Each dataset with an ``eval_split`` is scored through :mod:`docvlm.evaluate.scoring` with the
metrics of its task (CER/WER for transcription, ANLS for vqa ...) and logged as
``eval_<dataset>_<metric>``. The datasets of role ``task`` are also averaged per metric into
``eval_<metric>`` (the mean over datasets, each dataset weighing the same); the selection metric
(``train.selection_metric``, else the first metric of the first task dataset's task) is one of
those. Datasets of role ``replay`` are scored and logged but enter no average, so they never choose
a checkpoint.

On several processes the samples of each dataset are split between the ranks
(``accelerate``'s ``split_between_processes``), generated, and gathered (``gather_object``) so
that every rank scores the same rows and agrees on the best checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from docvlm.config import Config
from docvlm.data.schema import SkipReport
from docvlm.data.sources import ConcatSampleSet, SampleSet, load_split, split_name
from docvlm.evaluate.scoring import LOWER_IS_BETTER, TASK_METRICS, score_rows
from docvlm.models.lengths import generation_batches
from docvlm.models.prompting import ChatFormat, generate_answers


@dataclass
class EvalPart:
    """One dataset's evaluation split, capped at ``train.eval_max_samples``."""

    name: str
    task: str
    role: str
    samples: SampleSet


def load_eval_parts(cfg: Config) -> tuple[list[EvalPart], dict[str, SkipReport]]:
    """The evaluation split of every dataset that has one, each capped on its own (a cap on the
    concatenation would drop the later datasets entirely), with their skip reports."""
    parts, reports = [], {}
    for dataset in cfg.data.datasets:
        samples = load_split(dataset, "eval", cfg.data)
        if samples is None:
            continue
        reports[f"eval:{dataset.name}/{split_name(dataset, 'eval')}"] = samples.report
        if len(samples):
            parts.append(EvalPart(dataset.name, dataset.task, dataset.role, samples.head(cfg.train.eval_max_samples)))
    return parts, reports


def loss_set(parts: list[EvalPart]) -> SampleSet | None:
    """The samples whose loss the Trainer reports as ``eval_loss``: task datasets, or every
    evaluated dataset when no task dataset has an evaluation split (the Trainer evaluates on a
    schedule only with an evaluation set; selection stays with task datasets either way)."""
    chosen = [p.samples for p in parts if p.role == "task"] or [p.samples for p in parts]
    if not chosen:
        return None
    return chosen[0] if len(chosen) == 1 else ConcatSampleSet(chosen)


def selection_metric(cfg: Config) -> tuple[str, bool]:
    """``(metric, greater_is_better)`` that ranks checkpoints, without the ``eval_`` prefix."""
    metric = cfg.train.selection_metric
    if metric is None:
        tasks = [d.task for d in cfg.data.datasets if d.role == "task" and d.eval_split]
        metric = TASK_METRICS[tasks[0]][0] if tasks else "cer"
    metric = metric.removeprefix("eval_")
    return metric, not (metric in LOWER_IS_BETTER or metric == "loss")


def generate_rows(model: Any, chat: ChatFormat, samples: SampleSet, batch_size: int, max_new_tokens: int,
                  accelerator: Any = None, synced: bool = False, max_visual_tokens: int | None = None) -> list[dict]:
    """Prediction rows (``index``, ``id``, ``prediction``, ``references``) of every readable sample,
    this rank's share generated here and all ranks' shares gathered, in sample order.

    Batches are cut as ``docvlm predict`` cuts them (``generation_batches``: similar image sizes
    together, at most ``max_visual_tokens`` visual tokens per batch), so evaluating page-sized
    images during training needs no more memory than predicting them.

    ``synced``: sharded engines (FSDP, ZeRO-3) need every rank in every forward pass, so the shares
    are padded to equal length, cut into the same number of fixed-size batches on every rank, and
    generation runs until all ranks are done (``synced_gpus``)."""
    indices = list(range(len(samples)))
    several = accelerator is not None and accelerator.num_processes > 1
    if several:
        with accelerator.split_between_processes(indices, apply_padding=synced) as mine:
            indices = list(mine)
    rows = []
    for batch in _batches(chat, samples, indices, batch_size, max_visual_tokens, synced and several):
        chosen = [(i, samples[i]) for i in batch]
        chosen = [(i, s) for i, s in chosen if s is not None]  # None: skipped at decode time (counted)
        if not chosen:
            continue
        answers = generate_answers(model, chat, [s for _, s in chosen], max_new_tokens,
                                   **({"synced_gpus": True} if synced and several else {}))
        rows += [{"index": i, "id": s.record.id, "prediction": answer,
                  "references": list(s.record.all_references) or [""]}
                 for (i, s), answer in zip(chosen, answers)]
    if several:
        from accelerate.utils import gather_object

        rows = list({row["index"]: row for row in gather_object(rows)}.values())  # padding repeats a row
    return sorted(rows, key=lambda row: row["index"])


def _batches(chat: ChatFormat, samples: SampleSet, indices: list[int], batch_size: int,
             max_visual_tokens: int | None, fixed: bool) -> list[list[int]]:
    if fixed:  # every rank the same number of batches, whatever its images
        return [indices[start:start + batch_size] for start in range(0, len(indices), batch_size)]
    records = samples.records
    batches = generation_batches([records[i] for i in indices], chat.processor, chat.spec, batch_size,
                                 max_visual_tokens)
    return [[indices[j] for j in batch] for batch in batches]


def score_parts(rows_by_part: dict[str, list[dict]], parts: list[EvalPart], cfg: Config,
                prefix: str = "eval") -> dict[str, float]:
    """``<prefix>_<dataset>_<metric>`` for every part, and ``<prefix>_<metric>`` averaged over the
    task parts that have the metric (the selection metric is one of these)."""
    scores: dict[str, float] = {}
    per_metric: dict[str, list[float]] = {}
    for part in parts:
        rows = rows_by_part.get(part.name) or []
        if not rows:
            continue
        metrics = TASK_METRICS[part.task]
        score = score_rows(rows, metrics, cfg.evaluate)
        for metric in metrics:
            value = score.value(metric)
            if value is None:
                continue
            scores[f"{prefix}_{part.name}_{metric}"] = value
            if part.role == "task":
                per_metric.setdefault(metric, []).append(value)
    for metric, values in per_metric.items():
        scores[f"{prefix}_{metric}"] = sum(values) / len(values)
    return scores
