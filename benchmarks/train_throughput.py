"""Training throughput: docvlm against the seed tutorial's loop, TRL's SFTTrainer and the compute ceiling.

Every row trains the same tiny model (the demo's Qwen2-VL: 4 layers, hidden 128) on the same
lines (the demo's synthetic digit lines), each row in its own fresh Python process (one training
process, so peak RSS is that row's own):

- ``seed-style``: the seed tutorial's hand-written loop (benchmarks/seed_style.py): batch 1,
  lines upscaled to >= 256 px, min_pixels 256*28*28;
- ``trl``: TRL's SFTTrainer on a prompt/completion dataset of images (its vision-language
  collator, completion-only loss), batch 16, the demo's pixel budget, fp32 without gradient
  checkpointing like the docvlm row (TRL's defaults are bf16 autocast and checkpointing);
- ``docvlm``: ``docvlm train`` (``run_training``, the real code path), batch 16;
- ``compute-only``: the same kind of batches built beforehand by docvlm's collator, then only
  forward + backward (docvlm's answer-only loss) + clipping + the Trainer's optimizer (fused
  AdamW): the ceiling for any data pipeline and training loop around that computation.

A second shape (``--shape vocab``) gives the same model Qwen2-VL's real vocabulary size (151 936
rows in the tied embedding / LM head), where the head and its logits dominate memory and time; its
table adds the peak memory per sample (peak RSS above the RSS at the start of training, divided by
the batch size). Rates are measured after ``--warmup`` steps.

    pip install -e ".[bench]"      # TRL
    python benchmarks/train_throughput.py [--steps 40] [--warmup 5] [--shape tiny|vocab|both] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

REAL_VOCAB = 151_936
DEMO_LR = 1e-3
ROWS = ("seed-style", "trl", "docvlm", "compute-only")
VOCAB_ROWS = ("trl", "docvlm", "compute-only")


def rss_mib() -> float:
    """Resident set size now (Linux /proc), in MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- set-up (parent process) ----

def prepare(work: Path, lines: int, shapes: list[str]) -> dict:
    from docvlm.data.synthetic import is_rendered, write_synthetic_lines
    from docvlm.demo import DEMO_STYLE
    from docvlm.models.tiny import TinySize, build_tiny_model

    data = work / "data"
    splits = {"train": lines}
    if not is_rendered(data, splits, DEMO_STYLE, seed=0):
        write_synthetic_lines(data, splits, DEMO_STYLE, seed=0)
    models = {"tiny": work / "tiny"}
    if not (models["tiny"] / "config.json").exists():
        build_tiny_model("qwen2_vl", models["tiny"], TinySize())
    if "vocab" in shapes:
        models["vocab"] = work / "tiny-real-vocab"
        if not (models["vocab"] / "config.json").exists():
            widen_vocabulary(models["tiny"], models["vocab"], REAL_VOCAB)
    return {"data": str(data), "models": {k: str(v) for k, v in models.items()}}


def widen_vocabulary(source: Path, target: Path, size: int) -> None:
    """The tiny model with ``size`` embedding/LM-head rows (the tokenizer uses the first few)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(source)
    model.resize_token_embeddings(size, mean_resizing=False)
    model.save_pretrained(target)
    AutoProcessor.from_pretrained(source).save_pretrained(target)


# ---- rows (child processes) ----

def demo_config(model: str, data: str, out: Path, steps: int, batch: int, extra: list[str]):
    from docvlm.config import load_config
    from docvlm.demo import DEMO_CONFIG

    return load_config(DEMO_CONFIG, [
        "--output_root", str(out), "--run_name", "bench", "--model.name_or_path", model,
        "--data.datasets.0.source", data, "--data.datasets.0.eval_split", "null",
        "--data.datasets.0.test_split", "null", "--train.max_steps", str(steps),
        "--train.batch_size", str(batch), "--train.eval_steps", "0", "--train.save_steps", str(10**6),
        "--train.logging_steps", str(10**6), "--train.report_to", "[none]", *extra])


def trainer_clock():
    from seed_style import StepClock
    from transformers import TrainerCallback

    class Clock(TrainerCallback, StepClock):
        def __init__(self):
            StepClock.__init__(self)
            self.start_rss = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.start_rss = rss_mib()

        def on_step_end(self, args, state, control, **kwargs):
            self.tick()

    return Clock()


def row_docvlm(model: str, data: str, out: Path, steps: int, batch: int, extra: list[str]) -> dict:
    from docvlm.train.trainer import run_training

    clock = trainer_clock()
    summary = run_training(demo_config(model, data, out, steps, batch, extra), extra_callbacks=[clock])
    stats = summary["batches"]
    return {"clock": clock, "tokens_per_sample": stats["tokens"] / stats["samples"],
            "padding": stats["padding_fraction"], "start_rss": clock.start_rss}


class CountingCollator:
    """Wraps a collator to count real and padded tokens of every batch it builds."""

    def __init__(self, inner):
        self.inner = inner
        self.samples = self.tokens = self.positions = 0

    def __call__(self, examples):
        batch = self.inner(examples)
        self.samples += int(batch["input_ids"].shape[0])
        self.tokens += int(batch["attention_mask"].sum())
        self.positions += int(batch["input_ids"].numel())
        return batch


def trl_dataset(data: str, prompt: str):
    """The lines as TRL's conversational prompt/completion rows with one image each (decoded lazily)."""
    from datasets import Dataset, Image as ImageFeature, Sequence

    rows = []
    for line in (Path(data) / "train.jsonl").read_text().splitlines():
        row = json.loads(line)
        rows.append({
            "images": [str(Path(data) / row["image"])],
            "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}],
            "completion": [{"role": "assistant", "content": [{"type": "text", "text": row["text"]}]}]})
    return Dataset.from_list(rows).cast_column("images", Sequence(ImageFeature()))


def row_trl(model: str, data: str, out: Path, steps: int, batch: int, extra: list[str]) -> dict:
    from trl import SFTConfig, SFTTrainer

    from docvlm.models.loading import load_base
    from docvlm.models.prompting import apply_pixel_budget

    cfg = demo_config(model, data, out, steps, batch, extra)
    loaded = load_base(cfg.model, cfg.tuning)
    dataset_cfg = cfg.data.datasets[0]
    from docvlm.data.schema import PixelBudget

    apply_pixel_budget(loaded.processor, loaded.spec, PixelBudget(dataset_cfg.min_pixels, dataset_cfg.max_pixels))
    t = cfg.train
    args = SFTConfig(output_dir=str(out / "trl"), per_device_train_batch_size=batch, max_steps=steps,
                     learning_rate=t.learning_rate, warmup_steps=t.warmup, lr_scheduler_type=t.lr_scheduler,
                     max_grad_norm=t.max_grad_norm, gradient_accumulation_steps=1, logging_steps=10**6,
                     save_strategy="no", report_to="none", use_cpu=True, seed=t.seed, max_length=None,
                     # TRL defaults to bf16 autocast and gradient checkpointing; docvlm's demo runs
                     # fp32 without checkpointing, so TRL is given the same (both its defaults are
                     # 10x slower on this CPU).
                     bf16=False, gradient_checkpointing=False)
    clock = trainer_clock()
    trainer = SFTTrainer(model=loaded.model, args=args, train_dataset=trl_dataset(data, dataset_cfg.prompt),
                         processing_class=loaded.processor, callbacks=[clock])
    counting = CountingCollator(trainer.data_collator)
    trainer.data_collator = counting
    trainer.train()
    return {"clock": clock, "tokens_per_sample": counting.tokens / counting.samples,
            "padding": 1 - counting.tokens / counting.positions, "start_rss": clock.start_rss}


def row_compute_only(model: str, data: str, out: Path, steps: int, batch: int, extra: list[str]) -> dict:
    import torch

    from docvlm.data.sources import load_role
    from docvlm.models.loading import load_base, prepare_for_training
    from docvlm.models.prompting import ChatFormat, TrainingCollator, apply_pixel_budget
    from seed_style import StepClock

    cfg = demo_config(model, data, out, steps, batch, extra)
    train, _ = load_role(cfg.data, "train")
    loaded = load_base(cfg.model, cfg.tuning)
    apply_pixel_budget(loaded.processor, loaded.spec, train.records[0].budget)
    model_ = prepare_for_training(loaded, cfg.tuning, False)
    collator = TrainingCollator(ChatFormat(loaded.processor, loaded.spec))
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0)).tolist()
    batches = [collator([train[i] for i in order[(s * batch) % len(train):][:batch]]) for s in range(steps)]
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    positions = sum(int(b["input_ids"].numel()) for b in batches)
    loss_of = compute_loss_function(model_)
    # The optimizer docvlm's Trainer builds (TrainingArguments' default on torch >= 2.8:
    # adamw_torch_fused; weight decay 0 as in the config), so that only the data pipeline and the
    # Trainer's own work separate the docvlm row from this one.
    optimizer = torch.optim.AdamW(model_.parameters(), lr=cfg.train.learning_rate,
                                  weight_decay=cfg.train.weight_decay, fused=True)
    model_.train()
    clock, start_rss = StepClock(), rss_mib()
    for inputs in batches:
        loss = loss_of(inputs)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model_.parameters(), cfg.train.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        clock.tick()
    return {"clock": clock, "tokens_per_sample": tokens / (steps * batch), "padding": 1 - tokens / positions,
            "start_rss": start_rss}


def compute_loss_function(model):
    """The loss docvlm's Trainer computes: cross-entropy with the output head run at the answer
    positions only (``train.answer_only_logits``, docvlm.train.losses)."""
    import torch.nn.functional as F

    from docvlm.train.losses import answer_logits

    def loss(inputs):
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        found = answer_logits(model, inputs, labels)
        return F.cross_entropy(found["logits"], found["targets"])

    return loss


def row_seed_style(model: str, data: str, out: Path, steps: int, batch: int, extra: list[str]) -> dict:
    from PIL import Image

    from docvlm.config import load_config
    from docvlm.demo import DEMO_CONFIG
    from docvlm.models.loading import load_base
    from seed_style import StepClock, train_seed_style

    cfg = load_config(DEMO_CONFIG, ["--model.name_or_path", model])
    loaded = load_base(cfg.model, cfg.tuning)
    items = []
    for line in (Path(data) / "train.jsonl").read_text().splitlines():
        row = json.loads(line)
        with Image.open(Path(data) / row["image"]) as image:
            items.append((image.convert("RGB"), row["text"]))
    counts = {"tokens": 0, "positions": 0}
    clock, start_rss = StepClock(), rss_mib()

    def on_step(step, loss, inputs):
        clock.tick()
        counts["tokens"] += int(inputs["attention_mask"].sum())
        counts["positions"] += int(inputs["input_ids"].numel())
        return False

    # The seed's Dataset keeps the images its source decoded (a Hugging Face dataset decodes on
    # access; here they are decoded once beforehand, which only flatters the seed loop).
    train_seed_style(loaded.model, loaded.processor, items, cfg.data.datasets[0].prompt, steps, DEMO_LR,
                     on_step=on_step)
    return {"clock": clock, "tokens_per_sample": counts["tokens"] / steps,
            "padding": 1 - counts["tokens"] / counts["positions"], "start_rss": start_rss}


ROW_FUNCTIONS = {"seed-style": row_seed_style, "trl": row_trl, "docvlm": row_docvlm, "compute-only": row_compute_only}


def run_row(args) -> None:
    import torch

    torch.manual_seed(0)
    batch = 1 if args.row == "seed-style" else args.batch
    steps = args.seed_steps if args.row == "seed-style" else args.steps
    with tempfile.TemporaryDirectory() as out:
        result = ROW_FUNCTIONS[args.row](args.model, args.data, Path(out), steps, batch, args.extra)
    clock = result.pop("clock")
    samples_per_s = clock.rate(args.warmup, batch)
    peak = peak_rss_mib()
    print("RESULT " + json.dumps({
        "row": args.row, "batch": batch, "steps": steps, "samples_per_s": samples_per_s,
        "tokens_per_s": samples_per_s * result["tokens_per_sample"], "padding": result["padding"],
        "peak_rss_mib": peak, "mib_per_sample": (peak - result["start_rss"]) / batch,
        "threads": torch.get_num_threads()}), flush=True)


# ---- table (parent process) ----

def measure(row: str, model: str, data: str, args) -> dict:
    command = [sys.executable, __file__, "--row", row, "--model", model, "--data", data, "--steps", str(args.steps),
               "--seed-steps", str(args.seed_steps), "--warmup", str(args.warmup), "--batch", str(args.batch)]
    command += [f"--extra={item}" for item in args.extra]
    started = time.time()
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-5000:])
        raise SystemExit(f"row {row} failed (exit {done.returncode})")
    result = json.loads(lines[-1][len("RESULT "):])
    print(f"  {row}: {result['samples_per_s']:.1f} samples/s ({time.time() - started:.0f} s)", file=sys.stderr, flush=True)
    return result


def best_of(rows: list[str], model: str, data: str, args) -> list[dict]:
    """Each row measured ``--repeats`` times, the rows taking turns (so a noisy stretch of a shared
    machine falls on all of them); a row's fastest run counts, as ``timeit`` advises (slower runs
    measure the machine's other load, not the code)."""
    best: dict[str, dict] = {}
    for _ in range(args.repeats):
        for row in rows:
            result = measure(row, model, data, args)
            if row not in best or result["samples_per_s"] > best[row]["samples_per_s"]:
                best[row] = result
    return [best[row] for row in rows]


def table(results: list[dict], memory: bool) -> str:
    by_row = {r["row"]: r for r in results}
    trl, ceiling = by_row.get("trl"), by_row.get("compute-only")
    header = "| loop | batch | samples/s | tokens/s | padding | peak RSS MiB |"
    header += " MiB/sample |" if memory else ""
    header += " vs TRL | vs compute-only |"
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in results:
        line = (f"| {r['row']} | {r['batch']} | {r['samples_per_s']:.1f} | {r['tokens_per_s']:.0f} | "
                f"{r['padding']:.1%} | {r['peak_rss_mib']:.0f} |")
        line += f" {r['mib_per_sample']:.1f} |" if memory else ""
        line += f" {_ratio(r, trl)} | {_ratio(r, ceiling)} |"
        lines.append(line)
    return "\n".join(lines)


def _ratio(result: dict, base: dict | None) -> str:
    return f"{result['samples_per_s'] / base['samples_per_s']:.2f}x" if base else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per batch-16 row")
    parser.add_argument("--seed-steps", type=int, default=60, help="forward passes of the batch-1 seed-style row")
    parser.add_argument("--warmup", type=int, default=5, help="steps left out of the rate")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--shape", choices=("tiny", "vocab", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=1, help="runs per row, taking turns; the fastest counts")
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated subset of " + ", ".join(ROWS))
    parser.add_argument("--work", default="runs/bench-train", help="model and data cache folder")
    parser.add_argument("--extra", action="append", default=[],
                        help="a config override for the docvlm and compute-only rows (repeat; e.g. "
                             "--extra=--train.dataloader_workers --extra=1)")
    parser.add_argument("--row", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        return run_row(args)
    shapes = ["tiny", "vocab"] if args.shape == "both" else [args.shape]
    lines = max(args.steps * args.batch, args.seed_steps, 256)
    work = prepare(Path(args.work), lines, shapes)
    rows = [r for r in args.rows.split(",") if r]
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; {args.steps} steps "
          f"(seed-style {args.seed_steps}), rates after {args.warmup} warm-up steps; best of {args.repeats} "
          f"run(s) per row", flush=True)
    for shape in shapes:
        wanted = [r for r in rows if shape == "tiny" or r in VOCAB_ROWS]
        results = best_of(wanted, work["models"][shape], work["data"], args)
        vocab = json.loads((Path(work["models"][shape]) / "config.json").read_text())["text_config"]["vocab_size"]
        title = f"tiny Qwen2-VL (hidden 128, vocab {vocab})" + (", Qwen2-VL's real vocabulary size" if shape == "vocab" else "")
        print(f"\n{title}\n" + table(results, memory=shape == "vocab"), flush=True)
    print(f"\n# load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
