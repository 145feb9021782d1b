"""``docvlm train``: a transformers ``Trainer`` set up from the config, writing a run folder.

The Trainer owns the loop, schedules, accumulation, clipping, checkpointing, resuming and
logging; this module only adds what a document model needs on top: generation-based CER at every
evaluation (the number users care about, and the one the best checkpoint is chosen by), the
run-folder contract, and a processor saved beside every set of weights so the pixel budget
travels with them.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

from docvlm.config import Config, save_config
from docvlm.data.schema import SkipReport
from docvlm.data.sources import SampleSet, load_role
from docvlm.errors import ConfigError, DataError
from docvlm.evaluate.metrics import cer, wer
from docvlm.models.loading import (ADAPTER_DIR, MODEL_DIR, count_parameters, load_base, prepare_for_training)
from docvlm.models.prompting import ChatFormat, TrainingCollator, apply_pixel_budget, generate_answers
from docvlm.runs import environment, write_json
from docvlm.train.batching import BatchingMixin
from docvlm.models.lengths import sample_lengths
from docvlm.data.skips import WorkerSafeSamples

log = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
BEST_METRIC = "eval_cer"


class DocVLMTrainer(BatchingMixin, Trainer):
    """A Trainer whose evaluation also generates answers and scores them (CER/WER)."""

    def __init__(self, *args, chat: ChatFormat, cer_set: SampleSet | None, max_new_tokens: int,
                 generation_batch_size: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.chat = chat
        self.cer_set = cer_set
        self.max_new_tokens = max_new_tokens
        self.generation_batch_size = generation_batch_size

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
        log.info("loading best checkpoint %s (eval CER %s)", self.state.best_model_checkpoint, self.state.best_metric)
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
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        if self.cer_set is not None and len(self.cer_set):
            references, predictions = [], []
            samples = [s for s in (self.cer_set[i] for i in range(len(self.cer_set))) if s is not None]
            for start in range(0, len(samples), self.generation_batch_size):
                batch = samples[start:start + self.generation_batch_size]
                predictions += generate_answers(self.model, self.chat, batch, self.max_new_tokens)
                references += [s.target for s in batch]
            scores = {f"{metric_key_prefix}_cer": cer(references, predictions).rate,
                      f"{metric_key_prefix}_wer": wer(references, predictions).rate}
            self.log(scores)
            metrics.update(scores)
        return metrics


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


def training_arguments(cfg: Config, run_dir: Path, evaluating: bool) -> TrainingArguments:
    t = cfg.train
    if evaluating and t.eval_steps > 0 and t.save_steps % t.eval_steps != 0:
        raise ConfigError(f"train.save_steps ({t.save_steps}) must be a multiple of train.eval_steps "
                          f"({t.eval_steps}) so that every checkpoint has a CER to rank it by")
    evaluating = evaluating and t.eval_steps > 0
    on_gpu = torch.cuda.is_available()
    dtype = cfg.model.dtype
    bf16 = on_gpu and (dtype == "bf16" or (dtype == "auto" and torch.cuda.is_bf16_supported()))
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
        load_best_model_at_end=evaluating,
        metric_for_best_model=BEST_METRIC if evaluating else None,
        greater_is_better=False,
        # TensorBoard is attached below with the run's own log folder.
        report_to=[r for r in t.report_to if r not in ("tensorboard", "none")] or "none",
        remove_unused_columns=False,
        label_names=["labels"],
        seed=t.seed,
        data_seed=t.seed,
        dataloader_num_workers=t.dataloader_workers,
        dataloader_prefetch_factor=t.dataloader_prefetch if t.dataloader_workers > 0 else None,
        dataloader_persistent_workers=t.dataloader_workers > 0,
        torch_compile=t.torch_compile,
        bf16=bf16,
        fp16=on_gpu and dtype == "fp16",
        use_cpu=not on_gpu,
        save_only_model=False,
    )


def _callbacks(cfg: Config, run_dir: Path) -> list:
    callbacks: list = [JsonlLogCallback(run_dir / "logs" / "train_log.jsonl"), NonFiniteLossCallback()]
    if "tensorboard" in cfg.train.report_to:
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        callbacks.append(TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(run_dir / "logs" / "tensorboard"))))
    return callbacks


def _prepare_run_dir(cfg: Config, resume: bool) -> Path:
    run_dir = cfg.run_dir
    if resume:
        if not any((run_dir / CHECKPOINTS_DIR).glob("checkpoint-*")):
            raise ConfigError(f"--resume: no checkpoint in {run_dir / CHECKPOINTS_DIR} to resume from")
    elif any((run_dir / CHECKPOINTS_DIR).glob("checkpoint-*")) or (run_dir / ADAPTER_DIR).exists() \
            or (run_dir / MODEL_DIR).exists():
        raise ConfigError(f"{run_dir} already holds a training run; pass --resume to continue it, "
                          "or choose another --run_name")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    write_json(run_dir / "env.json", environment())
    return run_dir


def run_training(cfg: Config, resume: bool = False, extra_callbacks: list | None = None) -> dict:
    """Train as configured; returns the summary also written to ``train_summary.json``."""
    run_dir = _prepare_run_dir(cfg, resume)
    train_set, train_reports = load_role(cfg.data, "train")
    if train_set is None or len(train_set) == 0:
        raise DataError("no training samples: set data.datasets[*].train_split to a split with samples")
    eval_set, eval_reports = load_role(cfg.data, "eval")
    if eval_set is not None and len(eval_set) == 0:
        eval_set = None
    reports = {**{f"train:{k}": v for k, v in train_reports.items()},
               **{f"eval:{k}": v for k, v in eval_reports.items()}}

    # Seed before the model is built: LoRA initialises its A matrices at wrapping time, before the
    # Trainer seeds anything, and two runs of one config must start from the same weights.
    set_seed(cfg.train.seed)
    loaded = load_base(cfg.model, cfg.tuning)
    # The first training dataset's budget becomes the processor default saved with the weights, so
    # predict uses it unless told otherwise; each dataset's own budget is applied per batch.
    first_part = getattr(train_set, "parts", [train_set])[0]
    apply_pixel_budget(loaded.processor, loaded.spec, first_part.records[0].budget)
    model = prepare_for_training(loaded, cfg.tuning, cfg.train.gradient_checkpointing)
    trainable, total = count_parameters(model)
    log.info("trainable parameters: %d of %d (%.2f%%)", trainable, total, 100 * trainable / total)

    chat = ChatFormat(loaded.processor, loaded.spec)
    # Over-long samples are only found when a batch is tokenized; in skip mode they are counted here.
    too_long_report = SkipReport() if cfg.data.on_bad_sample == "skip" else None
    if too_long_report is not None:
        reports["train:too_long_at_collation"] = too_long_report
    collator = TrainingCollator(chat, cfg.data.max_length, cfg.data.warn_visual_tokens, too_long_report)
    capped_eval = eval_set.head(cfg.train.eval_max_samples) if eval_set is not None else None
    trainer = DocVLMTrainer(
        model=model,
        args=training_arguments(cfg, run_dir, evaluating=capped_eval is not None),
        train_dataset=WorkerSafeSamples(train_set, [f"train:{name}" for name in train_reports]),
        eval_dataset=capped_eval,
        data_collator=collator,
        processing_class=loaded.processor,
        callbacks=_callbacks(cfg, run_dir) + list(extra_callbacks or []),
        chat=chat,
        cer_set=capped_eval,
        max_new_tokens=cfg.generation.max_new_tokens,
        generation_batch_size=cfg.generation.batch_size,
    )
    lengths = sample_lengths(train_set.records, loaded.processor, loaded.spec) if cfg.train.group_by_length else None
    trainer.configure_batching(lengths, reports)
    started = time.time()
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    elapsed = time.time() - started

    final_dir = run_dir / (MODEL_DIR if cfg.tuning.method == "full" else ADAPTER_DIR)
    trainer.save_model(str(final_dir))
    loaded.processor.save_pretrained(str(final_dir))
    summary = {
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "train_seconds": round(elapsed, 1),
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "best_eval_cer": trainer.state.best_metric,
        "batches": trainer.batch_stats.as_dict(),
        "trainable_parameters": trainable,
        "total_parameters": total,
        "saved_to": str(final_dir),
    }
    write_json(run_dir / "train_summary.json", summary)
    write_json(run_dir / "data_report.json", {k: v.as_dict() for k, v in reports.items()})
    return summary
