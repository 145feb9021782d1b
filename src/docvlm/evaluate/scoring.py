"""Scoring prediction rows: the metrics of a task, error analysis, bootstrap intervals, tables.

``docvlm evaluate RUN`` predicts with the base and the tuned model, then everything here works on
prediction rows alone (``id``, ``prediction``, ``references`` and any grouping fields), so a
predictions file written by any tool is scored by the same code. Pure Python + numpy: no torch
import (the run evaluation, which needs models, lives in :mod:`docvlm.evaluate.run`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from docvlm.config import EvalConfig
from docvlm.errors import ConfigError, DataError
from docvlm.evaluate import caption, retention_metrics, vqa
from docvlm.evaluate.bootstrap import CorpusStats, bootstrap_ci, paired_bootstrap, ratio
from docvlm.evaluate.failures import answer_failures, transcription_failures
from docvlm.evaluate.graphemes import UNICODE_VERSION
from docvlm.evaluate.metrics import ErrorAnalysis, aligned, line_errors
from docvlm.evaluate.predictions import pair_rows, read_predictions


@dataclass(frozen=True)
class Metric:
    """One metric, registered once: how it is computed, reported and compared."""

    name: str
    kind: str
    """``rate``: corpus edits / corpus reference length (CER, WER); ``mean``: mean of a per-sample
    score (``sample``); ``corpus``: scored over all rows at once by ``corpus`` (BLEU-4 sums n-gram
    statistics; CIDEr-D's IDF needs the whole corpus); ``external``: computed from model outputs
    by the retention code (:mod:`docvlm.evaluate.retention_metrics`), not from prediction rows."""
    lower_is_better: bool = False
    sample: Callable[[str, list[str], EvalConfig], float] | None = None
    """Per-sample score of one prediction against its references (``mean`` metrics)."""
    corpus: Callable[[list[dict], EvalConfig], tuple[CorpusStats, list]] | None = None
    """All rows -> (per-sample statistics with their corpus function, per-sample values)
    (``corpus`` metrics)."""
    number: bool = False
    """Shown as a plain number (CIDEr-D) rather than a percentage."""
    options: Callable[[EvalConfig], dict] | None = None
    """What a metrics file states about how it was computed (key: ``option_key``)."""
    option_key: str = ""
    answer_task: str = ""
    """When a system's first metric: its wrong answers get the answer failure analysis under this
    task name (transcription metrics get the transcription one; others none)."""


WER_UNITS = {"whitespace": "whitespace-separated word",
             "dinglehopper": "dinglehopper's word: UAX #29 word boundaries (uniseg), pieces of only "
                             "punctuation, symbols, separators or marks dropped"}


def _cer_wer_options(cfg: EvalConfig) -> dict:
    return {"average": "micro (corpus edits / corpus reference length)", "unit_cer": cfg.text.unit,
            "unit_wer": WER_UNITS[cfg.text.words], **dataclasses.asdict(cfg.text),
            "grapheme_segmentation": f"UAX #29, Unicode {UNICODE_VERSION} properties (ICU/dinglehopper/uniseg "
                                     "rules; GB9c needs a consonant before the virama)",
            "multi_reference": cfg.multi_reference,
            "multi_reference_rule": MULTI_REFERENCE_RULES[cfg.multi_reference]}


MULTI_REFERENCE_RULES = {
    "first": "a row with 'reference' is scored against it; a row with only 'references' against the first one",
    "best": "a row with 'reference' is scored against it; a row with only 'references' against, per sample "
            "and per metric, the reference with the fewest edits (ties: the first)",
}


def _bleu4(rows: list[dict], cfg: EvalConfig) -> tuple[CorpusStats, list]:
    table = np.array([caption.bleu_stats(r["prediction"], r["references"], cfg.caption_tokenizer) for r in rows])
    return CorpusStats(table, caption.bleu_from_stats), [float(caption.bleu_from_stats(row)) for row in table]


def _mean_stats(values: list[float]) -> tuple[CorpusStats, list]:
    table = np.column_stack([np.asarray(values, dtype=float), np.ones(len(values))])
    return CorpusStats(table, ratio), list(values)


def _cider_d(rows: list[dict], cfg: EvalConfig) -> tuple[CorpusStats, list]:
    return _mean_stats(caption.cider_d_scores([r["prediction"] for r in rows], [r["references"] for r in rows],
                                              cfg.caption_tokenizer))


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("cer", "rate", lower_is_better=True, options=_cer_wer_options, option_key="cer_wer"),
    Metric("wer", "rate", lower_is_better=True, options=_cer_wer_options, option_key="cer_wer"),
    Metric("anls", "mean", sample=lambda p, refs, cfg: vqa.anls(p, refs, cfg.anls_threshold, cfg.anls_denominator),
           options=lambda cfg: {"threshold": cfg.anls_threshold, "denominator": cfg.anls_denominator,
                                "convention": "DocVQA RRC script, lmms-eval (raw lengths)"
                                if cfg.anls_denominator == "raw"
                                else "VLMEvalKit (normalized lengths)"}, option_key="anls", answer_task="vqa"),
    Metric("relaxed_accuracy", "mean",
           sample=lambda p, refs, cfg: vqa.relaxed_accuracy(p, refs, cfg.relaxed_tolerance, cfg.relaxed_strip),
           options=lambda cfg: {"tolerance": cfg.relaxed_tolerance, "strip": cfg.relaxed_strip,
                                "reference": RELAXED_REFERENCES[cfg.relaxed_strip]},
           option_key="relaxed_accuracy", answer_task="chart"),
    Metric("vqa_accuracy", "mean",
           sample=lambda p, refs, cfg: vqa.vqa_accuracy(p, refs, cfg.vqa_normalization, cfg.vqa_single_reference),
           options=lambda cfg: {"normalization": cfg.vqa_normalization,
                                "reference": VQA_REFERENCES[cfg.vqa_normalization],
                                "single_reference": cfg.vqa_single_reference + (
                                    ": normalized or cleaned exact match (the references give 0)"
                                    if cfg.vqa_single_reference == "exact" else ": 0, as the references")},
           option_key="vqa_accuracy", answer_task="vqav2"),
    Metric("exact_match", "mean", sample=lambda p, refs, cfg: vqa.exact_match(p, refs), answer_task="exact"),
    Metric("contains", "mean", sample=lambda p, refs, cfg: vqa.contains(p, refs), answer_task="contains"),
    Metric("bleu4", "corpus", corpus=_bleu4, options=lambda cfg: _caption_options(cfg), option_key="caption"),
    Metric("cider_d", "corpus", corpus=_cider_d, number=True, options=lambda cfg: _caption_options(cfg),
           option_key="caption"),
    Metric("meteor", "mean", sample=lambda p, refs, cfg: retention_metrics.meteor(p, refs, cfg.caption_tokenizer),
           options=lambda cfg: _meteor_options(cfg), option_key="meteor"),
    # Scored from model outputs by the retention code (score matrices, log-probabilities), not from
    # prediction rows; registered for their direction, format and stated options.
    *(Metric(f"{direction}_recall_at_{k}", "external", options=lambda cfg: _retrieval_options(),
             option_key="retrieval") for direction in ("i2t", "t2i") for k in retention_metrics.RECALL_KS),
    Metric("kl_base_tuned", "external", lower_is_better=True, number=True, options=lambda cfg: _drift_options(),
           option_key="drift"),
    Metric("tuned_cross_entropy", "external", lower_is_better=True, number=True,
           options=lambda cfg: _drift_options(), option_key="drift"),
)}


VQA_REFERENCES = {
    "official": "GT-Vision-Lab vqaEval.py (normalized only when the human answers disagree)",
    "always": "VLMEvalKit (both sides always normalized; deviates from vqaEval.py)",
    "lmms-eval": "lmms-eval vqav2 (prediction always normalized, answers only when they disagree)",
}
RELAXED_REFERENCES = {
    False: "pix2struct relaxed_correctness, lmms-eval (nothing stripped)",
    "prediction": "VLMEvalKit ChartQA (prediction stripped, target not)",
    True: "pix2struct relaxed_correctness with both sides stripped (deviation)",
}


def _meteor_options(cfg: EvalConfig) -> dict:
    return {"reference": "NLTK nltk.translate.meteor_score (not the Java METEOR 1.5 of coco-caption)",
            "wordnet": retention_metrics.has_wordnet(), "tokenizer": CAPTION_TOKENIZERS[cfg.caption_tokenizer],
            "corpus": "mean of per-caption scores"}


def _retrieval_options() -> dict:
    return {"image_to_text": "hit when one of the image's captions is among the K best texts",
            "text_to_image": "hit when the caption's image is among the K best images",
            "ties": "count against the model"}


def _drift_options() -> dict:
    return {"kl": "KL(base || tuned) per answer token, mean over all tokens", "cross_entropy":
            "tuned model's per-token cross-entropy (nats) on the base model's greedy answers"}


CAPTION_TOKENIZERS = {
    "ptb": "ptb: coco-caption's PTBTokenizer (lower-cased, clitics split, punctuation dropped), pure Python",
    "whitespace": "whitespace: text already tokenized, split on whitespace (as coco-caption's scorers)",
    "simple": "simple: lower-case, punctuation removed, whitespace split (deviates from coco-caption)",
}


def _caption_options(cfg: EvalConfig) -> dict:
    return {"reference": "coco-caption (pycocoevalcap Bleu, Cider)",
            "tokenizer": CAPTION_TOKENIZERS[cfg.caption_tokenizer], "cider_sigma": caption.SIGMA}


TASK_METRICS = {
    "transcription": ("cer", "wer"),
    "vqa": ("anls",),
    "chart": ("relaxed_accuracy",),
    "vqav2": ("vqa_accuracy",),
    "caption": ("bleu4", "cider_d", "meteor"),
    "exact": ("exact_match",),
}


# Views of the one registry, under the names other modules import. ALL_METRICS: those a
# predictions file can be scored with (--metric).
ALL_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS.values() if m.kind != "external")
LOWER_IS_BETTER = {m.name for m in METRICS.values() if m.lower_is_better}
MEAN_SCORES = {m.name: m.sample for m in METRICS.values() if m.kind == "mean"}
ERROR_RATES = tuple(m.name for m in METRICS.values() if m.kind == "rate")


def check_options(cfg: EvalConfig, metrics: tuple[str, ...] = ()) -> None:
    unknown = [m for m in metrics if m not in ALL_METRICS]
    if unknown:
        raise ConfigError(f"unknown metric '{unknown[0]}' (choose from {', '.join(ALL_METRICS)})")
    if cfg.bootstrap_resamples < 0:
        raise ConfigError("config key 'evaluate.bootstrap_resamples' must be >= 0")
    if not 0 < cfg.confidence < 1:
        raise ConfigError("config key 'evaluate.confidence' must be between 0 and 1")
    if not 0 <= cfg.relaxed_tolerance:
        raise ConfigError("config key 'evaluate.relaxed_tolerance' must be >= 0")
    if not 0 <= cfg.anls_threshold <= 1:
        raise ConfigError("config key 'evaluate.anls_threshold' must be between 0 and 1")
    for key in ("worst", "top_confusions"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"config key 'evaluate.{key}' must be >= 0")


def metric_options(cfg: EvalConfig, metrics: tuple[str, ...]) -> dict:
    """What every metrics file states: the options each of its metrics was computed with."""
    options: dict = {}
    for name in metrics:
        metric = METRICS[name]
        if metric.options is not None:
            options[metric.option_key or name] = metric.options(cfg)
    if cfg.bootstrap_resamples:
        options["bootstrap"] = {"resamples": cfg.bootstrap_resamples, "confidence": cfg.confidence,
                                "seed": cfg.seed, "method": "percentile; samples resampled, corpus metric "
                                "recomputed; paired p = share of resamples where tuned is not better"}
    return options


# --------------------------------------------------------------------------------------------
# One system (one model's predictions) on one dataset


@dataclass
class SystemScore:
    metrics: tuple[str, ...]
    stats: dict[str, CorpusStats]
    per_sample: dict[str, list[float | None]]
    rows: list[dict]
    analysis: ErrorAnalysis | None = None
    alignments: list[tuple] = field(default_factory=list)
    empty_references: list[str] = field(default_factory=list)

    def value(self, metric: str) -> float | None:
        return _finite(self.stats[metric].value())


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def score_rows(rows: list[dict], metrics: tuple[str, ...], cfg: EvalConfig) -> SystemScore:
    """Every requested metric on prediction rows (each with ``prediction`` and ``references``)."""
    score = SystemScore(metrics, {}, {}, rows)
    if {"cer", "wer"} & set(metrics):
        _score_transcription(score, cfg)
    for metric in metrics:
        kind = METRICS[metric].kind
        if kind == "mean":
            sample = METRICS[metric].sample
            _add_mean(score, metric, [sample(r["prediction"], r["references"], cfg) for r in rows])
        elif kind == "corpus":
            score.stats[metric], score.per_sample[metric] = METRICS[metric].corpus(rows, cfg)
    if not {"cer", "wer"} & set(metrics):
        score.empty_references = [r["id"] for r in rows if not any(ref.strip() for ref in r["references"])]
    return score


def _add_mean(score: SystemScore, metric: str, values: list[float]) -> None:
    score.stats[metric], score.per_sample[metric] = _mean_stats(values)


def _score_transcription(score: SystemScore, cfg: EvalConfig) -> None:
    analysis = ErrorAnalysis()
    table = np.zeros((len(score.rows), 4))
    for i, row in enumerate(score.rows):
        char_ref, word_ref = transcription_references(row, cfg)
        errors = line_errors(char_ref, row["prediction"], cfg.text, analysis)
        table[i] = (errors.char_edits, errors.char_length, errors.word_edits, errors.word_length)
        if word_ref != char_ref:
            word_errors = line_errors(word_ref, row["prediction"], cfg.text)
            table[i, 2:] = (word_errors.word_edits, word_errors.word_length)
        score.alignments.append((errors.reference, errors.prediction))
        if errors.char_length == 0:
            score.empty_references.append(row["id"])
    score.analysis = analysis
    for metric, columns in (("cer", slice(0, 2)), ("wer", slice(2, 4))):
        score.stats[metric] = CorpusStats(table[:, columns], ratio)
        score.per_sample[metric] = [e / n if n else None for e, n in table[:, columns]]


def transcription_references(row: dict, cfg: EvalConfig) -> tuple[str, str]:
    """The references CER and WER score a row against (see :data:`MULTI_REFERENCE_RULES`)."""
    if isinstance(row.get("reference"), str):
        return row["reference"], row["reference"]  # the trained target, when the row names it
    references = row["references"]
    if cfg.multi_reference == "first" or len(references) == 1:
        return references[0], references[0]
    errors = [line_errors(r, row["prediction"], cfg.text) for r in references]
    # min() keeps the first of equal counts: ties go to the earlier reference.
    best_cer = min(range(len(references)), key=lambda i: errors[i].char_edits)
    best_wer = min(range(len(references)), key=lambda i: errors[i].word_edits)
    return references[best_cer], references[best_wer]


def _metric_entry(score: SystemScore, metric: str) -> dict:
    entry: dict = {"value": score.value(metric)}
    if METRICS[metric].kind == "rate":
        sums = score.stats[metric].stats.sum(axis=0)
        entry.update(edits=int(sums[0]), reference_length=int(sums[1]))
    return entry


def _sample_badness(score: SystemScore, metric: str, i: int) -> float:
    value = score.per_sample[metric][i]
    if metric in LOWER_IS_BETTER:
        if value is None:  # empty reference: any predicted unit is an unbounded error
            return math.inf if score.stats[metric].stats[i, 0] else 0.0
        return value
    return -value


def _worst(score: SystemScore, cfg: EvalConfig) -> list[dict]:
    primary = score.metrics[0]
    order = sorted(range(len(score.rows)), key=lambda i: _sample_badness(score, primary, i), reverse=True)
    worst = []
    for i in order[:cfg.worst]:
        row = score.rows[i]
        entry = {"id": row["id"], primary: score.per_sample[primary][i]}
        if score.alignments:
            entry["reference_aligned"], entry["prediction_aligned"] = aligned(*score.alignments[i])
        else:
            entry["references"], entry["prediction"] = row["references"], row["prediction"]
        worst.append(entry)
    return worst


def _groups(score: SystemScore, cfg: EvalConfig) -> dict:
    groups: dict = {}
    for name in cfg.group_by:
        members: dict = defaultdict(list)
        for i, row in enumerate(score.rows):
            if row.get(name) is not None:
                members[str(row[name])].append(i)
        if not members:
            continue
        groups[name] = {value: {"n": len(idx), **{m: _finite(score.stats[m].value(np.array(idx)))
                                                  for m in score.metrics}}
                        for value, idx in sorted(members.items())}
    return groups


def system_report(score: SystemScore, cfg: EvalConfig) -> dict:
    report = _entries(score)
    if cfg.bootstrap_resamples:
        for m in score.metrics:
            report[m]["ci"] = bootstrap_ci(score.stats[m], cfg.bootstrap_resamples, cfg.seed, cfg.confidence)
    return report


def analysis_report(score: SystemScore, cfg: EvalConfig) -> dict:
    analysis = score.analysis.as_dict(cfg.top_confusions) if score.analysis else {}
    report = {**analysis, "groups": _groups(score, cfg), "worst": _worst(score, cfg)}
    failures = failure_analysis(score)
    if failures is not None:
        report["failures"] = failures
    return report


def failure_analysis(score: SystemScore) -> dict | None:
    """Error types of the wrong samples (:mod:`docvlm.evaluate.failures`); None for captions."""
    if score.analysis is not None:
        return transcription_failures([r["id"] for r in score.rows], score.alignments, score.analysis.confusions)
    primary = METRICS[score.metrics[0]]
    if primary.answer_task:
        return answer_failures(primary.answer_task, score.rows, score.per_sample[primary.name])
    return None


def dataset_result(name: str, split: str, task: str, metrics: tuple[str, ...], cfg: EvalConfig,
                   tuned: SystemScore, base: SystemScore | None = None, skipped: int = 0) -> dict:
    """The per-dataset section of a metrics file: scores, CIs, paired test, error analysis."""
    result: dict = {"dataset": name, "split": split, "task": task, "n": len(tuned.rows), "skipped": skipped,
                    "metrics": list(metrics),
                    "empty_references": {"count": len(tuned.empty_references), "ids": tuned.empty_references[:20]}}
    if base is None:
        result["scores"] = system_report(tuned, cfg)
        result["analysis"] = analysis_report(tuned, cfg)
        return result
    result["base"], result["tuned"] = _entries(base), _entries(tuned)
    result["delta"] = {m: _delta(base.value(m), tuned.value(m)) for m in metrics}
    if cfg.bootstrap_resamples:
        result["delta_ci"], result["p_value"] = {}, {}
        for m in metrics:
            paired = paired_bootstrap(base.stats[m], tuned.stats[m], cfg.bootstrap_resamples, cfg.seed,
                                      cfg.confidence, higher_is_better=m not in LOWER_IS_BETTER)
            result["base"][m]["ci"], result["tuned"][m]["ci"] = paired.base_ci, paired.tuned_ci
            result["delta_ci"][m], result["p_value"][m] = paired.delta_ci, paired.p_value
    result["analysis"] = {"base": analysis_report(base, cfg), "tuned": analysis_report(tuned, cfg)}
    return result


def _entries(score: SystemScore) -> dict:
    return {m: _metric_entry(score, m) for m in score.metrics}


def _delta(base: float | None, tuned: float | None) -> float | None:
    return None if base is None or tuned is None else tuned - base


# --------------------------------------------------------------------------------------------
# Tables


def _is_number(metric: str) -> bool:
    return metric in METRICS and METRICS[metric].number


def _show(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if _is_number(metric) else f"{value:.2%}"


def _show_ci(metric: str, ci: list | None) -> str:
    if not ci or ci[0] is None:
        return ""
    low, high = (f"{x:.3f}" if _is_number(metric) else f"{x * 100:.2f}" for x in ci)
    return f"[{low}, {high}]"


def _cell(metric: str, entry: dict) -> str:
    return f"{_show(metric, entry['value'])} {_show_ci(metric, entry.get('ci'))}".strip()


def format_table(results: list[dict]) -> str:
    """base, tuned, delta (with its CI) and the paired p-value per dataset and metric."""
    header = (f"{'dataset/split':<24} {'n':>6} {'metric':<17} {'base [95% CI]':<24} {'tuned [95% CI]':<24} "
              f"{'delta [95% CI]':<26} {'p':>6}")
    lines = [header, "-" * len(header)]
    for result in results:
        name = f"{result['dataset']}/{result['split']}"
        for metric in result["metrics"]:
            delta = result["delta"][metric]
            delta_text = "n/a" if delta is None else (
                f"{delta:+.3f}" if _is_number(metric) else f"{delta:+.2%}")
            delta_text = f"{delta_text} {_show_ci(metric, result.get('delta_ci', {}).get(metric))}".strip()
            p = result.get("p_value", {}).get(metric)
            lines.append(f"{name:<24} {result['n']:>6} {metric.upper():<17} {_cell(metric, result['base'][metric]):<24} "
                         f"{_cell(metric, result['tuned'][metric]):<24} {delta_text:<26} "
                         f"{'' if p is None else f'{p:.3f}':>6}")
            name = ""
    return "\n".join(lines)


def format_scores(result: dict) -> str:
    """One system's scores (``docvlm evaluate --predictions``)."""
    lines = [f"{'metric':<17} {'n':>7} {'value [95% CI]':<28}"]
    for metric in result["metrics"]:
        lines.append(f"{metric.upper():<17} {result['n']:>7} {_cell(metric, result['scores'][metric]):<28}")
    return "\n".join(lines)


def format_summary(result: dict, system: str = "tuned") -> str:
    """A few lines of error analysis: S/I/D, the top confusions, empty references."""
    analysis = result["analysis"].get(system, result["analysis"])
    parts = []
    if "substitutions" in analysis:
        parts.append(f"{result['dataset']}: {analysis['substitutions']} substitutions, "
                     f"{analysis['insertions']} insertions, {analysis['deletions']} deletions")
        top = ", ".join(f"{c['expected'] or '∅'!r}->{c['got'] or '∅'!r} x{c['count']}"
                        for c in analysis["top_confusions"][:5])
        if top:
            parts.append(f"  top confusions: {top}")
    failures = analysis.get("failures")
    if failures and failures["wrong"]:
        kinds = ", ".join(f"{kind} {entry['count']}" for kind, entry in failures["types"].items())
        parts.append(f"  failures: {failures['wrong']} of {failures['total']} wrong: {kinds}")
    empty = result["empty_references"]["count"]
    if empty:
        parts.append(f"  {empty} sample(s) with an empty reference (no unit to divide by; counted, "
                     f"not scored as a rate): {', '.join(result['empty_references']['ids'][:5])}")
    return "\n".join(parts)


def format_compare(runs: list[tuple[str, dict]]) -> str:
    """One table across runs: the first run's base, then every run's tuned score with its CI."""
    names = [name for name, _ in runs]
    keys: list[tuple[str, str]] = []
    for _, metrics_file in runs:
        for dataset, result in metrics_file["datasets"].items():
            keys += [(dataset, m) for m in result["metrics"] if (dataset, m) not in keys]
    width = max(24, *(len(n) + 2 for n in names))
    header = f"{'dataset':<20} {'metric':<17} {'base (' + names[0] + ')':<{width}}" + "".join(
        f" {n:<{width}}" for n in names)
    lines = [header, "-" * len(header)]
    for dataset, metric in keys:
        first = runs[0][1]["datasets"].get(dataset)
        base = _cell(metric, first["base"][metric]) if first and metric in first.get("base", {}) else "-"
        cells = []
        for _, metrics_file in runs:
            result = metrics_file["datasets"].get(dataset)
            cells.append(_cell(metric, result["tuned"][metric]) if result and metric in result.get("tuned", {})
                         else "-")
        lines.append(f"{dataset:<20} {metric.upper():<17} {base:<{width}}" + "".join(f" {c:<{width}}" for c in cells))
    return "\n".join(lines)



# --------------------------------------------------------------------------------------------
# Commands that need no model: a predictions file, and several runs side by side


def infer_task(rows: list[dict], path: str) -> tuple[str, str]:
    """The task of a predictions file given without ``--metric``/``--task``, and why.

    A ``task`` field that every row shares names it; otherwise a file whose every row has one
    acceptable answer is a transcription file; rows with several answers (VQA, VQAv2,
    ChartQA, captions) are ambiguous, so the user is asked to choose rather than scored as
    transcription against the first answer.
    """
    tasks = {row.get("task") for row in rows}
    if len(tasks) == 1 and None not in tasks:
        task = tasks.pop()
        if task not in TASK_METRICS:
            raise DataError(f"{path}:{rows[0]['_line']}: field 'task' is {task!r}, not one of "
                            f"{', '.join(sorted(TASK_METRICS))}; give --task or --metric")
        return task, f"the rows' 'task' field says {task}"
    several = next((row for row in rows if len(row["references"]) > 1), None)
    if several is not None:
        raise DataError(f"{path}:{several['_line']} (id {several['id']}): the row has "
                        f"{len(several['references'])} references, so the task is not clear; give --task (vqa: "
                        f"ANLS, vqav2: VQAv2 accuracy, chart: relaxed accuracy, caption: BLEU-4, CIDEr-D and "
                        f"METEOR, transcription: CER/WER) or --metric")
    return "transcription", "every row has one reference"


def evaluate_predictions(path: str, metrics: tuple[str, ...] | None, cfg: EvalConfig, baseline: str | None = None,
                         task: str | None = None, per_sample: str | None = None) -> dict:
    """Score a predictions file (optionally against a baseline file on the same samples).

    ``metrics`` None: those of ``task``, or of the task read from the file (:func:`infer_task`),
    stated under ``task_source`` in the report. ``per_sample``: also write every sample's value of
    every metric to that JSONL file (:func:`per_sample_rows`).
    """
    rows = read_predictions(path)
    source = "--metric" if metrics else "--task" if task else None
    if not metrics:
        if task is None:
            task, source = infer_task(rows, str(path))
        metrics = TASK_METRICS[task]
    check_options(cfg, metrics)
    name = Path(path).stem
    label = task or "predictions"
    tuned = score_rows(rows, metrics, cfg)
    base = None
    if baseline is not None:
        base_rows = read_predictions(baseline)
        tuned = score_rows(pair_rows(base_rows, rows, str(baseline), str(path)), metrics, cfg)
        base = score_rows(base_rows, metrics, cfg)
    result = dataset_result(name, "-", label, metrics, cfg, tuned, base=base)
    if per_sample:
        write_per_sample(per_sample, per_sample_rows(tuned, base))
    return {"predictions": str(path), "baseline": baseline, "task": label, "task_source": source,
            "options": metric_options(cfg, metrics), "datasets": {name: result}}


def per_sample_rows(tuned: SystemScore, base: SystemScore | None = None) -> list[dict]:
    """One row per sample: its id and each metric's value for it; a rate metric (CER, WER) also
    gives its edits and reference length (what the corpus rate sums). With a base system the
    values are nested under ``base`` and ``tuned``."""
    def values(score: SystemScore, i: int) -> dict:
        out: dict = {}
        for metric in score.metrics:
            out[metric] = _finite(score.per_sample[metric][i])
            if METRICS[metric].kind == "rate":
                edits, length = score.stats[metric].stats[i]
                out[f"{metric}_edits"], out[f"{metric}_reference_length"] = int(edits), int(length)
        return out

    rows = []
    for i, row in enumerate(tuned.rows):
        if base is None:
            rows.append({"id": row["id"], **values(tuned, i)})
        else:
            rows.append({"id": row["id"], "base": values(base, i), "tuned": values(tuned, i)})
    return rows


def write_per_sample(path: str | Path, rows: list[dict]) -> None:
    from docvlm.files import write_text_atomic

    path = Path(path)
    try:
        write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    except OSError as error:
        raise DataError(f"cannot write per-sample scores to {path}: {error.strerror or error}") from None


def metrics_file(run_dir, split: str) -> Path:
    return Path(run_dir) / "metrics" / f"{split}.json"


def per_sample_file(run_dir, split: str) -> Path:
    """Every sample's scores of ``docvlm evaluate RUN`` (:func:`per_sample_rows`, plus ``dataset``)."""
    return Path(run_dir) / "metrics" / f"{split}.per_sample.jsonl"


def load_run_metrics(run_dir, split: str) -> dict:
    path = metrics_file(run_dir, split)
    if not path.is_file():
        raise ConfigError(f"{run_dir}: no {path.relative_to(run_dir)}; run 'docvlm evaluate {run_dir}' first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None
