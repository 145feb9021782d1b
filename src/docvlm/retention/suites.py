"""General-ability suites: reading them, and scoring one model on one suite.

A suite's samples are read by the same sources as training data (``load_split`` on its
``test_split``), with the problems every suite kind must refuse: no samples, an empty answer
list, a multiple-choice answer that is none of the options. Scores are kept as per-sample
statistics (:class:`~docvlm.evaluate.bootstrap.CorpusStats`) so the base and the tuned model can be
compared by a paired bootstrap on the same samples.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from docvlm.config import DataConfig, EvalConfig, RetentionConfig, RetentionSuiteConfig
from docvlm.data.schema import Sample
from docvlm.data.sources import load_split
from docvlm.errors import DataError
from docvlm.evaluate import retention_metrics as rm
from docvlm.evaluate.bootstrap import CorpusStats, ratio
from docvlm.evaluate.scoring import metric_options, score_rows
from docvlm.models.loading import Loaded
from docvlm.models.prompting import ChatFormat
from docvlm.retention.likelihood import mean_log_likelihood, with_target

SUITE_METRICS = {
    "vqa": ("vqa_accuracy",),
    "docvqa": ("anls",),
    "multiple_choice": ("accuracy",),
    "caption": ("bleu4", "cider_d", "meteor"),
    "retrieval": tuple(f"{d}_r@{k}" for d in ("i2t", "t2i") for k in rm.RECALL_KS),
    "probes": ("kl_base_tuned", "tuned_ce", "base_ce"),
}
"""The metrics of each suite kind; every one is higher-is-better except the probes' drift figures."""
DRIFT_METRICS = {"kl_base_tuned", "tuned_ce", "base_ce"}
LETTERS = string.ascii_uppercase


@dataclass
class SuiteData:
    suite: RetentionSuiteConfig
    samples: list[Sample]
    where: str
    answer_index: list[int] = field(default_factory=list)
    """multiple_choice: index of the correct option per sample."""

    @property
    def name(self) -> str:
        return self.suite.dataset.name


def load_suite(suite: RetentionSuiteConfig, data: DataConfig, retention: RetentionConfig) -> SuiteData:
    """Read and check a suite's samples (images decoded once: every model reads them again)."""
    dataset = suite.dataset
    label = f"retention suite '{dataset.name}' ({dataset.source}, split '{dataset.test_split}')"
    data = DataConfig(**{**data.__dict__, "on_bad_sample": "error", "datasets": [dataset]})
    try:
        samples = load_split(dataset, "test", data)
    except DataError as error:
        raise DataError(f"{label}: {error}") from None
    limit = suite.max_samples or retention.max_samples
    if suite.kind == "retrieval":  # every candidate image is scored against every caption
        limit = min(limit or suite.max_candidates, suite.max_candidates)
    samples = samples.head(limit)
    if len(samples) == 0:
        raise DataError(f"{label}: no samples to score")
    try:
        decoded = [samples[i] for i in range(len(samples))]
    except DataError as error:
        raise DataError(f"{label}: {error}") from None
    result = SuiteData(suite, decoded, label)
    if suite.kind == "multiple_choice":
        result.answer_index = [_answer_index(s, label) for s in decoded]
    return result


def _answer_index(sample: Sample, label: str) -> int:
    """The correct option: given by its text, its letter or its 0-based index."""
    record = sample.record
    answer = record.target.strip()
    lowered = [o.strip().lower() for o in record.options]
    if answer.lower() in lowered:
        return lowered.index(answer.lower())
    if len(answer) == 1 and answer.upper() in LETTERS[:len(record.options)]:
        return LETTERS.index(answer.upper())
    if answer.isdigit() and int(answer) < len(record.options):
        return int(answer)
    raise DataError(f"{label}: {record.where}: answer {answer!r} is none of the options {list(record.options)!r} "
                    "(nor their letter or 0-based index)")


# --------------------------------------------------------------------------------------------
# Scoring one model on one suite


def _mean_stats(values: list[float] | np.ndarray) -> CorpusStats:
    values = np.asarray(values, dtype=float)
    return CorpusStats(np.column_stack([values, np.ones(len(values))]), ratio)


def generate(loaded: Loaded, samples: list[Sample], batch_size: int, max_new_tokens: int,
             max_visual_tokens: int | None = None) -> list[str]:
    """Greedy answers in sample order, generated in batches cut as ``docvlm predict`` cuts them
    (similar image sizes together, at most ``max_visual_tokens`` visual tokens per batch)."""
    from docvlm.models.lengths import generation_batches
    from docvlm.models.prompting import generate_answers

    chat = ChatFormat(loaded.processor, loaded.spec)
    answers: list[str] = [""] * len(samples)
    for batch in generation_batches([s.record for s in samples], loaded.processor, loaded.spec, batch_size,
                                    max_visual_tokens, sizes=[s.image.size for s in samples]):
        for index, answer in zip(batch, generate_answers(loaded.model, chat, [samples[i] for i in batch],
                                                         max_new_tokens)):
            answers[index] = answer
    return answers


def score_suite(data: SuiteData, loaded: Loaded, evaluate: EvalConfig, batch_size: int, max_new_tokens: int,
                max_visual_tokens: int | None = None) -> tuple[dict[str, CorpusStats], list[str] | None]:
    """Per-metric statistics of one model on one suite, and its generated answers (if any)."""
    kind = data.suite.kind
    if kind == "multiple_choice":
        return _score_choice(data, loaded, batch_size, max_new_tokens, max_visual_tokens)
    if kind == "retrieval":
        return _score_retrieval(data, loaded, batch_size), None
    answers = generate(loaded, data.samples, batch_size, max_new_tokens, max_visual_tokens)
    # Scored as 'docvlm evaluate' scores these metrics (same registry, same evaluate options).
    rows = [{"id": s.record.id, "prediction": a, "references": list(s.record.all_references)}
            for s, a in zip(data.samples, answers)]
    if kind in ("vqa", "docvqa", "caption"):
        return score_rows(rows, SUITE_METRICS[kind], evaluate).stats, answers
    raise ValueError(f"suite kind {kind} is scored in pairs (probes)")


def suite_options(suite: RetentionSuiteConfig, evaluate: EvalConfig) -> dict:
    """The options a suite's scores depend on besides the models, for ``retention.json``: how a
    multiple-choice answer is read, or the metric conventions (as ``docvlm evaluate`` states them)."""
    if suite.kind == "multiple_choice":
        options = {"choice_mode": suite.choice_mode}
        if suite.choice_mode == "generate":
            options["choice_parser"] = suite.choice_parser
        return options
    if suite.kind in ("vqa", "docvqa", "caption"):
        options = metric_options(evaluate, SUITE_METRICS[suite.kind])
        options.pop("bootstrap", None)  # stated once for the whole report
        return options
    return {}


def choice_prompt(sample: Sample) -> str:
    """The question followed by lettered options, and how to answer (generate mode): the
    instruction LLaVA's and lmms-eval's MMBench prompts end with."""
    lines = [sample.prompt] + [f"{LETTERS[i]}. {option}" for i, option in enumerate(sample.record.options)]
    return "\n".join(lines + ["Answer with the option's letter from the given choices directly."])


def _score_choice(data: SuiteData, loaded: Loaded, batch_size: int, max_new_tokens: int,
                  max_visual_tokens: int | None = None):
    chat = ChatFormat(loaded.processor, loaded.spec)
    if data.suite.choice_mode == "generate":
        import dataclasses

        prompted = [Sample(dataclasses.replace(s.record, prompt=choice_prompt(s)), s.image) for s in data.samples]
        answers = generate(loaded, prompted, batch_size, max_new_tokens, max_visual_tokens)
        read = infer_choice if data.suite.choice_parser == "vlmevalkit" else _letter_of
        chosen = [read(a, list(s.record.options)) for a, s in zip(answers, data.samples)]
    else:
        pairs = [(i, with_target(s, o)) for i, s in enumerate(data.samples) for o in s.record.options]
        scores = mean_log_likelihood(loaded.model, chat, [p for _, p in pairs], batch_size)
        chosen, answers, position = [], [], 0
        for sample in data.samples:
            count = len(sample.record.options)
            best = int(np.argmax(scores[position:position + count]))
            chosen.append(best)
            answers.append(sample.record.options[best])
            position += count
    correct = [float(c == truth) for c, truth in zip(chosen, data.answer_index)]
    return {"accuracy": _mean_stats(correct)}, answers


def _letter_of(answer: str, options: list[str]) -> int | None:
    """The option letter a generated answer starts with (``B``, ``B.``, ``(B)``), else ``None``."""
    text = answer.strip().lstrip("(").upper()
    if text and text[0] in LETTERS[:len(options)] and (len(text) == 1 or not text[1].isalpha()):
        return LETTERS.index(text[0])
    return None


REFUSALS = ("Sorry, I can't help with images of people yet.", "I can't process this file.",
            "I'm sorry, but without the image provided", "Cannot determine the answer")
"""Answers VLMEvalKit scores as a refusal (its option ``Z``: wrong)."""


ANSWER_IS = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")
"""VLMEvalKit's ``_VERBOSE_ANSWER_RE`` ("The correct answer is **B**"); case-insensitive, so
"the answer is a ..." reads as option A there, as here."""


def infer_choice(answer: str, options: list[str]) -> int | None:
    """The option a generated answer names, by VLMEvalKit's rules (open-compass/VLMEvalKit
    ``vlmeval/utils/matching_util.py`` @ e8e78f05, 2026-08: ``can_infer`` = ``can_infer_option``,
    then ``can_infer_text``), without the LLM judge it falls back to; ``None`` (wrong) for a
    refusal, a standalone ``Z``, or when no rule names exactly one option.

    ``can_infer_option``: the one option letter standing alone (letters are case-sensitive) once
    ``.()[],:;!*#{}`` are spaces, if it is among the last five words; else "answer is X" (A-D,
    any case). ``can_infer_text``: the one option whose text the answer contains, case-folded,
    unless the answer is longer than twice the options' text together."""
    letters = LETTERS[:len(options)]
    if any(refusal in answer for refusal in REFUSALS):
        return None
    spaced = answer
    for char in ".()[],:;!*#{}":
        spaced = spaced.replace(char, " ")
    words = spaced.split()
    named = [letter for letter in letters if letter in words]
    if len(named) == 1 and words.index(named[0]) > len(words) - 5:
        return letters.index(named[0])
    if not named and "Z" in words:  # VLMEvalKit's "none of the options" answer
        return None
    stated = ANSWER_IS.search(answer)
    if stated and stated.group(1).upper() in letters:
        return letters.index(stated.group(1).upper())
    folded = answer.lower()
    if len(folded) > 2 * sum(len(str(option)) for option in options):
        return None
    containing = [i for i, option in enumerate(options) if str(option).lower() in folded]
    return containing[0] if len(containing) == 1 else None


def retrieval_scores(data: SuiteData, loaded: Loaded, batch_size: int) -> tuple[np.ndarray, list[int]]:
    """``scores[i, t]``: mean log-likelihood of caption ``t`` given image ``i``; caption owners."""
    chat = ChatFormat(loaded.processor, loaded.spec)
    captions, owner = [], []
    for index, sample in enumerate(data.samples):
        for text in sample.record.all_references:
            captions.append(text)
            owner.append(index)
    pairs = [with_target(sample, text) for sample in data.samples for text in captions]
    scores = mean_log_likelihood(loaded.model, chat, pairs, batch_size).reshape(len(data.samples), len(captions))
    return scores, owner


def _score_retrieval(data: SuiteData, loaded: Loaded, batch_size: int) -> dict[str, CorpusStats]:
    scores, owner = retrieval_scores(data, loaded, batch_size)
    return {name: _mean_stats(hits) for name, hits in rm.recall_hits(scores, owner).items()}


def score_probes(data: SuiteData, base: Loaded, tuned: Loaded, base_context: Callable[[], Any], batch_size: int,
                 max_new_tokens: int, max_visual_tokens: int | None = None) -> tuple[dict[str, CorpusStats], list[str]]:
    """The base model's greedy answers, scored under both models: per-token KL(base || tuned),
    tuned and base cross-entropy (nats per token, micro-averaged over the answer tokens)."""
    from docvlm.retention.likelihood import drift_stats, labelled_log_probs

    with base_context():
        answers = generate(base, data.samples, batch_size, max_new_tokens, max_visual_tokens)
    forced = [with_target(s, a) for s, a in zip(data.samples, answers)]
    chat = ChatFormat(tuned.processor, tuned.spec)

    def base_log_probs(batch: dict):
        with base_context():
            return labelled_log_probs(base.model, batch)

    table = drift_stats(tuned.model, base_log_probs, chat, forced, batch_size)
    stats = {name: CorpusStats(table[:, [column, 3]], ratio)
             for column, name in enumerate(("kl_base_tuned", "tuned_ce", "base_ce"))}
    return stats, answers
