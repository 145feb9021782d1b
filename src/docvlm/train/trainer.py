"""``docvlm train``: a transformers ``Trainer`` set up from the config, writing a run folder.

The Trainer owns the loop, schedules, accumulation, clipping, checkpointing, resuming, logging and
(with ``torchrun`` / ``accelerate launch``) the processes; this module only adds what a document
model needs on top: a loss made of named terms computed at the answer positions only
(``train/losses.py``), generation-based scoring of every evaluation dataset with its own task
metric at every evaluation, the one that chooses the best checkpoint (``train/evaluation.py``),
the run-folder contract written by the main process, and a processor saved beside every set of
weights so the pixel budget travels with them.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

from docvlm.config import Config
from docvlm.data.schema import SkipReport
from docvlm.data.sources import SubstitutingSampleSet, load_role
from docvlm.errors import ConfigError, DataError, Interrupted
from docvlm.models.loading import (ADAPTER_DIR, MODEL_DIR, count_parameters, load_base, prepare_for_training)
from docvlm.models.prompting import ChatFormat, TrainingCollator, apply_pixel_budget
from docvlm.resources import device_name, peak_memory_bytes, reset_peak_memory
from docvlm.runs import ensure_writable, environment, replace_dir, write_json
from docvlm.train.batching import BatchingMixin
from docvlm.models.lengths import sample_lengths
from docvlm.data.skips import WorkerSafeSamples
from docvlm.train.distributed import is_main_process, snapshot, sum_over_processes
from docvlm.train.evaluation import EvalPart, generate_rows, load_eval_parts, loss_set, score_parts, selection_metric
from docvlm.train.losses import LossContext, LossTerm, answer_logits, build_loss_terms, build_reference
from docvlm.train.workers import workers_for_this_machine
from docvlm.train.resume import (check_resume_config, checkpoint_step, incomplete_reason, resume_checkpoint,
                                 save_run_config, trim_log)

log = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"


class DocVLMTrainer(BatchingMixin, Trainer):
    """A Trainer whose loss is a sum of named terms (see ``docvlm.train.losses``) and whose
    evaluation also generates answers and scores them (CER/WER); batching: ``train/batching.py``."""

    def __init__(self, *args, chat: ChatFormat, eval_parts: list[EvalPart], max_new_tokens: int,
                 generation_batch_size: int, loss_terms: list[tuple[LossTerm, float]] | None = None,
                 reference=None, answer_only_logits: bool = True, run_config: Config | None = None,
                 max_batch_visual_tokens: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.chat = chat
        self.eval_parts = eval_parts
        self.run_config = run_config
        self.max_new_tokens = max_new_tokens
        self.generation_batch_size = generation_batch_size
        self.max_batch_visual_tokens = max_batch_visual_tokens
        self.loss_terms = loss_terms if loss_terms is not None else build_loss_terms(None, self.model)
        self.reference = reference
        self.answer_only_logits = answer_only_logits
        # Per-term sums since the last log, in the units of the Trainer's own logged ``loss``.
        self._term_sums: dict[str, torch.Tensor] = {}
        self._term_window_start = 0

    def floating_point_ops(self, inputs) -> int:
        """The Trainer's estimate (6 x input positions x parameters without embeddings) with the
        parameter count taken once: the Trainer counts them again on every step, which walks every
        parameter (measured: ~1% of a tiny model's step)."""
        main = getattr(self.model, "main_input_name", "input_ids")
        if main not in inputs or not hasattr(self.model, "num_parameters"):
            return 0
        if getattr(self, "_flop_parameters", None) is None:
            self._flop_parameters = self.model.num_parameters(exclude_embeddings=True)
        return 6 * inputs[main].numel() * self._flop_parameters

    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        """``sum(weight * term(ctx))`` over the configured terms, each logged as ``loss_<name>``.

        With the task term alone and ``answer_only_logits: false`` this is the Trainer's own loss
        (full logits), kept as the reference path."""
        if isinstance(model, torch.nn.DataParallel):
            # Several GPUs in one process: each replica sees a slice of the batch, so positions
            # cannot be picked for the whole batch. torchrun / accelerate launch avoid this mode.
            if len(self.loss_terms) > 1:
                raise ConfigError("extra loss terms need one process per GPU: launch with torchrun or "
                                  "accelerate launch (see README, 'Train on several GPUs')")
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if not self.answer_only_logits and len(self.loss_terms) == 1:
            found = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss = found[0] if return_outputs else found
            if model.training:
                world = self._world_loss_scale(num_items_in_batch)
                self._accumulate_terms({self.loss_terms[0][0].name: loss / world}, world,
                                       self._normalises_by_items(num_items_in_batch))
            return found
        ctx = self._loss_context(model, inputs, num_items_in_batch)
        values = {term.name: term(ctx) for term, _ in self.loss_terms}
        loss = sum(weight * values[term.name] for term, weight in self.loss_terms)
        # The Trainer scales its default loss by the number of processes when it normalised by the
        # token count gathered over all of them (average_tokens_across_devices); do the same.
        world = self._world_loss_scale(num_items_in_batch)
        if model.training:
            self._accumulate_terms(values, world, ctx.normalise_by_items)
        loss = loss * world
        return (loss, {"loss": loss}) if return_outputs else loss

    def _normalises_by_items(self, num_items_in_batch) -> bool:
        return bool(self.model_accepts_loss_kwargs and num_items_in_batch is not None)

    def _world_loss_scale(self, num_items_in_batch) -> int:
        if self.args.average_tokens_across_devices and self._normalises_by_items(num_items_in_batch):
            return self.accelerator.num_processes // self.get_tp_size()
        return 1

    def _loss_context(self, model, inputs, num_items_in_batch) -> LossContext:
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        by_items = self._normalises_by_items(num_items_in_batch)
        loss_kwargs = {"num_items_in_batch": num_items_in_batch} if by_items else {}
        found = answer_logits(model, inputs, labels, full=not self.answer_only_logits, loss_kwargs=loss_kwargs)
        accumulation = getattr(self, "current_gradient_accumulation_steps", self.args.gradient_accumulation_steps)
        world = self._world_loss_scale(num_items_in_batch)
        return LossContext(model=model, inputs=inputs, labels=labels, mask=found["mask"], hidden=found["hidden"],
                           logits=found["logits"], targets=found["targets"], num_items_in_batch=num_items_in_batch,
                           normalise_by_items=by_items,
                           step_fraction=1.0 / (accumulation * world) if by_items else 1.0,
                           seq2seq=self.chat.seq2seq, model_loss=found["model_loss"], reference=self.reference)

    def _accumulate_terms(self, values: dict[str, torch.Tensor], world: int, by_items: bool) -> None:
        # Mirror training_step: a loss not normalised by the token count is divided by the
        # accumulation steps there, so the summed micro-batches give the step's mean.
        scale = world
        if not (self.loss_is_scaled_for_ga if self.loss_is_scaled_for_ga is not None else by_items):
            scale = scale / getattr(self, "current_gradient_accumulation_steps", 1)
        if not self._term_sums:
            self._term_window_start = self.state.global_step
        for name, value in values.items():
            total = self._term_sums.get(name)
            value = value.detach().float() * scale
            self._term_sums[name] = value if total is None else total + value

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # The Trainer's training log carries "loss"; add each term averaged over the same window
        # (mean over processes, divided by the optimizer steps since the last log).
        if "loss" in logs and self._term_sums:
            steps = max(self.state.global_step - self._term_window_start, 1)
            for name, total in sorted(self._term_sums.items()):
                logs[f"loss_{name}"] = self.accelerator.reduce(total, reduction="mean").item() / steps
            self._term_sums = {}
        super().log(logs, start_time)

    # transformers 5 saves Qwen-VL checkpoints in the hub's original key layout, but the Trainer
    # reloads full-model checkpoints (resume, best model) with a raw ``load_state_dict`` that skips
    # the key conversion, so weights silently stay unloaded. Reload through ``from_pretrained``,
    # which converts; adapters (PEFT) and sharded engines keep the Trainer's own path.
    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        if self._trainer_loads_itself():
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        self._load_full_weights(resume_from_checkpoint)

    def _load_best_model(self) -> None:
        if self._trainer_loads_itself():
            return super()._load_best_model()
        log.info("loading best checkpoint %s (%s %s)", self.state.best_model_checkpoint,
                 self.args.metric_for_best_model, self.state.best_metric)
        self._load_full_weights(self.state.best_model_checkpoint)

    def _trainer_loads_itself(self) -> bool:
        from peft import PeftModel

        return isinstance(self.model, PeftModel) or self.is_fsdp_enabled or self.is_deepspeed_enabled

    def _load_full_weights(self, checkpoint_dir: str) -> None:
        model = self.accelerator.unwrap_model(self.model)
        reloaded = type(model).from_pretrained(checkpoint_dir, dtype=model.dtype)
        model.load_state_dict(reloaded.state_dict(), strict=True)
        del reloaded

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """The Trainer's loss evaluation, then every evaluation dataset answered by generation
        (split over the processes) and scored with its own task metric."""
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix) if self.eval_dataset is not None else {}
        if self.eval_parts:
            rows = {part.name: generate_rows(self.model, self.chat, part.samples, self.generation_batch_size,
                                             self.max_new_tokens, self.accelerator, synced=self._sharded(),
                                             max_visual_tokens=self.max_batch_visual_tokens)
                    for part in self.eval_parts}
            scores = score_parts(rows, self.eval_parts, self.run_config or Config(), metric_key_prefix)
            self.log(scores)
            metrics.update(scores)
        return metrics

    def _sharded(self) -> bool:
        """Parameters split over the ranks: every rank must take part in every forward pass."""
        if self.is_fsdp_enabled:
            return True
        plugin = getattr(self.accelerator.state, "deepspeed_plugin", None)
        return bool(self.is_deepspeed_enabled and plugin is not None and plugin.zero_stage == 3)


class JsonlLogCallback(TrainerCallback):
    """Appends every Trainer log entry to ``logs/train_log.jsonl`` (machine-readable history)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:
            entry = {"step": state.global_step, "epoch": state.epoch, "time": time.time(), **logs}
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(json.dumps(entry) + "\n")


class NonFiniteLossCallback(TrainerCallback):
    """Stops training when the logged loss is NaN/inf instead of training on garbage."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            log.error("loss is %s at step %d: stopping; the last checkpoint is kept", loss, state.global_step)
            control.should_training_stop = True
            control.should_save = False


def training_arguments(cfg: Config, run_dir: Path, evaluating: bool, selecting: bool | None = None) -> TrainingArguments:
    """``evaluating``: some dataset has an evaluation split; ``selecting`` (default: the same): a
    task dataset has one, so the best checkpoint is chosen by the selection metric."""
    t = cfg.train
    metric, greater_is_better = selection_metric(cfg)
    if evaluating and t.eval_steps > 0 and t.save_steps % t.eval_steps != 0:
        raise ConfigError(f"train.save_steps ({t.save_steps}) must be a multiple of train.eval_steps "
                          f"({t.eval_steps}) so that every checkpoint has a {metric} to rank it by")
    evaluating = evaluating and t.eval_steps > 0
    selecting = evaluating and (evaluating if selecting is None else selecting)
    on_gpu = torch.cuda.is_available()
    dtype = cfg.model.dtype
    bf16 = on_gpu and (dtype == "bf16" or (dtype == "auto" and torch.cuda.is_bf16_supported()))
    workers = workers_for_this_machine(t.dataloader_workers)
    return TrainingArguments(
        output_dir=str(run_dir / CHECKPOINTS_DIR),
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        num_train_epochs=t.num_epochs,
        max_steps=t.max_steps,
        warmup_steps=t.warmup,
        lr_scheduler_type=t.lr_scheduler,
        max_grad_norm=t.max_grad_norm,
        gradient_checkpointing=t.gradient_checkpointing,
        logging_steps=t.logging_steps,
        eval_strategy="steps" if evaluating else "no",
        eval_steps=t.eval_steps if evaluating else None,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        load_best_model_at_end=selecting,
        metric_for_best_model=f"eval_{metric}" if selecting else None,
        greater_is_better=greater_is_better if selecting else None,
        # TensorBoard is attached below with the run's own log folder.
        report_to=[r for r in t.report_to if r not in ("tensorboard", "none")] or "none",
        remove_unused_columns=False,
        label_names=["labels"],
        seed=t.seed,
        data_seed=t.seed,
        dataloader_num_workers=workers,
        dataloader_prefetch_factor=t.dataloader_prefetch if workers > 0 else None,
        dataloader_persistent_workers=workers > 0,
        torch_compile=t.torch_compile,
        bf16=bf16,
        fp16=on_gpu and dtype == "fp16",
        use_cpu=not on_gpu,
        save_only_model=False,
        # No metric needs the evaluation logits (CER comes from generation), so the evaluation
        # loop keeps only the loss instead of gathering [batch, length, vocabulary] tensors.
        prediction_loss_only=True,
        **t.trainer_args,
    )


def _callbacks(cfg: Config, run_dir: Path) -> list:
    callbacks: list = [JsonlLogCallback(run_dir / "logs" / "train_log.jsonl"), NonFiniteLossCallback()]
    # The writer opens its event file when built: only in the process that writes the run folder.
    if "tensorboard" in cfg.train.report_to and is_main_process():
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        callbacks.append(TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(run_dir / "logs" / "tensorboard"))))
    return callbacks


def _prepare_run_dir(cfg: Config, resume: bool, force: bool = False) -> Path:
    run_dir = cfg.run_dir
    if resume:
        if not any((run_dir / CHECKPOINTS_DIR).glob("checkpoint-*")):
            finished = (run_dir / ADAPTER_DIR).exists() or (run_dir / MODEL_DIR).exists()
            hint = ("its training finished and kept no checkpoint; train a new run with another --run_name"
                    if finished else "the run stopped before its first checkpoint; start it again without --resume")
            raise ConfigError(f"--resume: no checkpoint in {run_dir / CHECKPOINTS_DIR} to resume from; {hint}")
    elif any((run_dir / CHECKPOINTS_DIR).glob("checkpoint-*")) or (run_dir / ADAPTER_DIR).exists() \
            or (run_dir / MODEL_DIR).exists():
        raise ConfigError(f"{run_dir} already holds a training run; pass --resume to continue it, "
                          "or choose another --run_name")
    ensure_writable(run_dir)
    if resume:  # every process checks (they read the same file), so all stop together
        check_resume_config(cfg, run_dir, force)
    if is_main_process():  # one writer under torchrun / accelerate launch
        if not resume:
            save_run_config(cfg, run_dir)
        write_json(run_dir / "env.json", environment())
    return run_dir


def _no_training_samples(reports: dict) -> DataError:
    """The error for an empty training set, with what was skipped and why (the real cause)."""
    skipped = {label: report for label, report in reports.items() if report.skipped}
    if not skipped:
        return DataError("no training samples: set data.datasets[*].train_split to a split with samples")
    details = "; ".join(report.one_line(label) for label, report in skipped.items())
    example = next(iter(skipped.values())).examples[:1]
    return DataError(f"no training samples: every one was skipped ({details})"
                     + (f"; e.g. {example[0]}" if example else ""))


def _write_reports(run_dir: Path, reports: dict) -> None:
    write_json(run_dir / "data_report.json", {k: v.as_dict() for k, v in reports.items()})


def _interrupted(run_dir: Path, trainer: Trainer, reports: dict, started: float) -> Interrupted:
    """Write what an interrupted run knows (summary marked interrupted, data report); say how to go on."""
    checkpoints = sorted((p for p in (run_dir / CHECKPOINTS_DIR).glob("checkpoint-*") if incomplete_reason(p) is None),
                         key=checkpoint_step)
    last = str(checkpoints[-1]) if checkpoints else None
    if is_main_process():  # one writer under torchrun / accelerate launch
        write_json(run_dir / "train_summary.json", {
            "interrupted": True, "global_step": trainer.state.global_step,
            "train_seconds": round(time.time() - started, 1), "last_checkpoint": last})
        _write_reports(run_dir, reports)
    hint = (f"resume with: docvlm train {run_dir / 'config.yaml'} --resume" if last else
            "no checkpoint was written yet, so a new run starts from the beginning")
    return Interrupted(f"training interrupted at step {trainer.state.global_step}; last complete checkpoint: "
                       f"{last or 'none'}; {hint}")


def _training_view(train_set, report_names: list[str], skipping: bool):
    """The set the Trainer reads: worker-safe skip markers outside, and in skip mode a sample that
    fails to decode in the training process replaced by the next readable one."""
    view = WorkerSafeSamples(train_set, report_names)
    return SubstitutingSampleSet(view) if skipping else view


def run_training(cfg: Config, resume: bool = False, extra_callbacks: list | None = None, force: bool = False) -> dict:
    """Train as configured; returns the summary also written to ``train_summary.json``.

    ``resume`` continues from the newest *complete* checkpoint; ``force`` lets it go on with
    schedule-changing settings that differ from the run's saved config.
    """
    run_dir = _prepare_run_dir(cfg, resume, force)
    checkpoint = resume_checkpoint(run_dir, run_dir / CHECKPOINTS_DIR) if resume else None
    if checkpoint is not None and is_main_process():  # the steps after it are trained (and logged) again
        trim_log(run_dir / "logs" / "train_log.jsonl", checkpoint_step(checkpoint))
    train_set, train_reports = load_role(cfg.data, "train")
    if train_set is None or len(train_set) == 0:
        raise _no_training_samples(train_reports)
    eval_parts, eval_reports = load_eval_parts(cfg)
    reports = {**{f"train:{k}": v for k, v in train_reports.items()}, **eval_reports}

    # Seed before the model is built: LoRA initialises its A matrices at wrapping time, before the
    # Trainer seeds anything, and two runs of one config must start from the same weights.
    set_seed(cfg.train.seed)
    loaded = load_base(cfg.model, cfg.tuning)
    # The first training dataset's budget becomes the processor default saved with the weights, so
    # predict uses it unless told otherwise; each dataset's own budget is applied per batch.
    first_part = next(part for part in getattr(train_set, "parts", [train_set]) if part.records)
    apply_pixel_budget(loaded.processor, loaded.spec, first_part.records[0].budget)
    model = prepare_for_training(loaded, cfg.tuning, cfg.train.gradient_checkpointing)
    trainable, total = count_parameters(model)
    log.info("trainable parameters: %d of %d (%.2f%%)", trainable, total, 100 * trainable / total)

    chat = ChatFormat(loaded.processor, loaded.spec)
    # Over-long samples are only found when a batch is tokenized; in skip mode they are counted in
    # their dataset's report (this one only takes samples that come without one).
    too_long_report = SkipReport() if cfg.data.on_bad_sample == "skip" else None
    collator = TrainingCollator(chat, cfg.data.max_length, cfg.data.warn_visual_tokens, too_long_report)
    task_eval = loss_set(eval_parts)
    indexed = snapshot(reports)  # what follows is counted per process and summed at the end
    trainer = DocVLMTrainer(
        model=model,
        args=training_arguments(cfg, run_dir, evaluating=bool(eval_parts), selecting=task_eval is not None),
        # In skip mode a sample that fails to decode is replaced, so no batch is ever empty; in a
        # data-loader worker its skip comes back as a marker and is counted by the main process.
        train_dataset=_training_view(train_set, [f"train:{name}" for name in train_reports],
                                     cfg.data.on_bad_sample == "skip"),
        eval_dataset=task_eval,
        data_collator=collator,
        processing_class=loaded.processor,
        callbacks=_callbacks(cfg, run_dir) + list(extra_callbacks or []),
        chat=chat,
        eval_parts=eval_parts,
        run_config=cfg,
        max_new_tokens=cfg.generation.max_new_tokens,
        generation_batch_size=cfg.generation.batch_size,
        max_batch_visual_tokens=cfg.generation.max_batch_visual_tokens,
        loss_terms=build_loss_terms(cfg, model),
        reference=build_reference(cfg, model),
        answer_only_logits=cfg.train.answer_only_logits,
    )
    lengths = sample_lengths(train_set.records, loaded.processor, loaded.spec) if cfg.train.group_by_length else None
    trainer.configure_batching(lengths, reports)
    reset_peak_memory()
    started = time.time()
    try:
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except KeyboardInterrupt:
        raise _interrupted(run_dir, trainer, reports, started) from None
    elapsed = time.time() - started
    peak_memory, peak_memory_kind = peak_memory_bytes()

    final_dir = run_dir / (MODEL_DIR if cfg.tuning.method == "full" else ADAPTER_DIR)
    # The weights and processor go to a staging folder renamed to adapter/ or model/ once whole:
    # predict and evaluate take an existing adapter/ or model/ for finished weights, and a kill
    # while they were written would otherwise leave a folder that fails to load.
    staging = final_dir.with_name(final_dir.name + ".partial")
    if is_main_process():
        shutil.rmtree(staging, ignore_errors=True)
    trainer.save_model(str(staging))  # collective under FSDP/ZeRO-3; writes on the main process only
    sum_over_processes(reports, indexed, trainer.accelerator)
    summary = {
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "train_seconds": round(elapsed, 1),
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "selection_metric": trainer.args.metric_for_best_model,
        f"best_{trainer.args.metric_for_best_model or 'metric'}": trainer.state.best_metric,
        "batches": trainer.batch_stats.as_dict(),
        "model_family": loaded.spec.name,  # the detected one when model.family is null (auto)
        "trainable_parameters": trainable,
        "total_parameters": total,
        "peak_memory_mb": round(peak_memory / 2**20, 1),
        "peak_memory_kind": peak_memory_kind,
        "device": device_name(),
        "saved_to": str(final_dir),
    }
    summary["skipped"] = {label: report.one_line(label) for label, report in reports.items() if report.skipped}
    summary["counts"] = {label: report.one_line(label) for label, report in reports.items()}  # kept + skipped = total
    if trainer.is_world_process_zero():
        loaded.processor.save_pretrained(str(staging))
        replace_dir(staging, final_dir)
        write_json(run_dir / "train_summary.json", summary)
        _write_reports(run_dir, reports)
    return summary
