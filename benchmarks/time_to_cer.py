"""Time to accuracy: wall time and steps until the demo model reads held-out free-running text
at <= 5% CER, for ``docvlm train`` and for the seed tutorial's loop.

The text is free-running (``LineStyle(cell_width=None)``: digits set as one run with 10-16 px
letter spacing, no per-digit cells), so the model has to learn where each character sits. Both
loops train the demo's tiny Qwen2-VL from the same random weights on the same lines, with the
demo's learning rate, and are scored on the same 64 validation lines every ``--eval-every`` steps
(greedy, at most 10 new tokens); time spent scoring is left out of both wall times.

Both runs are capped (``--docvlm-minutes``, ``--seed-minutes``). A loop that hits its cap first
is reported with the CER it reached, and, for the seed-style loop, with an *extrapolated* time:
the training samples docvlm needed divided by the seed loop's measured samples/s, i.e. assuming
the seed loop needs no more samples than docvlm does (its batch of 1 is if anything more sample-
efficient per sample, its 9x larger images are not). The output says which figures are measured
and which extrapolated.

    python benchmarks/time_to_cer.py [--docvlm-minutes 60] [--seed-minutes 10]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGET = 0.05
FREE_TEXT = dict(letter_spacing=(10, 16))


def free_text_lines(work: Path, train_lines: int) -> Path:
    from docvlm.data.synthetic import LineStyle, is_rendered, write_synthetic_lines

    data, style = work / "free-text", LineStyle(**FREE_TEXT)
    assert style.cell_width is None
    splits = {"train": train_lines, "validation": 64}
    if not is_rendered(data, splits, style, seed=0):
        write_synthetic_lines(data, splits, style, seed=0)
    return data


class TrainingClock:
    """Training wall time with evaluation left out."""

    def __init__(self):
        self.started = time.perf_counter()
        self.excluded = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.started - self.excluded


def docvlm_run(model: str, data: Path, work: Path, args) -> dict:
    from transformers import TrainerCallback

    from docvlm.config import load_config
    from docvlm.demo import DEMO_CONFIG
    from docvlm.train.trainer import run_training

    clock = TrainingClock()
    found: dict = {"cer": []}

    class StopAtTarget(TrainerCallback):
        def on_step_end(self, args_, state, control, **kwargs):
            self.last = time.perf_counter()
            if clock.elapsed() > args.docvlm_minutes * 60:
                control.should_training_stop = True

        def on_log(self, args_, state, control, logs=None, **kwargs):
            # The generation CER is logged at the end of each evaluation (DocVLMTrainer.evaluate).
            cer = (logs or {}).get("eval_cer")
            if cer is None:
                return
            clock.excluded += time.perf_counter() - self.last  # the evaluation just run
            self.last = time.perf_counter()
            found["cer"].append((state.global_step, cer, round(clock.elapsed(), 1)))
            print(f"  docvlm step {state.global_step}: CER {cer:.2%} at {clock.elapsed():.0f} s", file=sys.stderr, flush=True)
            if cer is not None and cer <= TARGET and "step" not in found:
                found.update(step=state.global_step, seconds=clock.elapsed())
                control.should_training_stop = True

    cfg = load_config(DEMO_CONFIG, [
        "--output_root", str(work), "--run_name", "time-to-cer", "--model.name_or_path", model,
        "--data.datasets.0.source", str(data), "--data.datasets.0.test_split", "null",
        "--train.max_steps", str(args.max_steps), "--train.eval_steps", str(args.eval_every),
        "--train.save_steps", str(args.eval_every), "--train.save_total_limit", "1",
        "--train.eval_max_samples", "64", "--train.report_to", "[none]", *args.extra])
    import shutil

    shutil.rmtree(cfg.run_dir, ignore_errors=True)
    clock.started = time.perf_counter()
    summary = run_training(cfg, extra_callbacks=[StopAtTarget()])
    steps = found.get("step", summary["global_step"])
    return {"loop": "docvlm train", "batch": cfg.train.batch_size, "reached": "step" in found,
            "steps": steps, "samples": steps * cfg.train.batch_size,
            "seconds": found.get("seconds", clock.elapsed()), "history": found["cer"]}


def seed_run(model: str, data: Path, args) -> dict:
    from PIL import Image

    from docvlm.config import ModelConfig
    from docvlm.evaluate.metrics import cer as corpus_cer
    from docvlm.models.loading import load_base
    from seed_style import seed_generate, train_seed_style

    loaded = load_base(ModelConfig(name_or_path=model, dtype="fp32"))
    prompt = "Transcribe the text in this image."

    def read(split: str) -> list:
        rows = [json.loads(line) for line in (data / f"{split}.jsonl").read_text().splitlines()]
        return [(Image.open(data / r["image"]).convert("RGB"), r["text"]) for r in rows]

    items, held = read("train"), read("validation")
    clock, found = TrainingClock(), {"cer": []}

    def on_step(step, loss, inputs):
        capped = clock.elapsed() > args.seed_minutes * 60
        if step % args.eval_every == 0 or capped:
            paused = time.perf_counter()
            answers = []
            for start in range(0, len(held), 32):
                answers += seed_generate(loaded.model, loaded.processor, [i for i, _ in held[start:start + 32]],
                                         prompt, 10)
            rate = corpus_cer([t for _, t in held], answers).rate
            clock.excluded += time.perf_counter() - paused
            found["cer"].append((step, rate, round(clock.elapsed(), 1)))
            print(f"  seed-style pass {step}: CER {rate:.2%} at {clock.elapsed():.0f} s", file=sys.stderr, flush=True)
            if rate <= TARGET:
                found.update(step=step, seconds=clock.elapsed())
                return True
        return capped

    clock.started = time.perf_counter()
    passes = train_seed_style(loaded.model, loaded.processor, items, prompt, 10**9, args.seed_lr, on_step=on_step)
    steps = found.get("step", passes)
    return {"loop": "seed-style loop", "batch": 1, "reached": "step" in found, "steps": steps, "samples": steps,
            "seconds": found.get("seconds", clock.elapsed()), "history": found["cer"]}


def report(docvlm: dict, seed: dict) -> None:
    print("\n| loop | batch | reached <= 5% CER | steps (forward passes) | samples | training wall time |")
    print("|---|---|---|---|---|---|")
    for r in (docvlm, seed):
        last = r["history"][-1][1] if r["history"] else None
        reached = "yes" if r["reached"] else f"no, capped (CER {last:.1%} at the cap)" if last is not None else "no, capped"
        print(f"| {r['loop']} | {r['batch']} | {reached} | {r['steps']} | {r['samples']} | {r['seconds']:.0f} s |")
    if not docvlm["reached"]:
        print("\ndocvlm did not reach the target within its cap: no ratio (raise --docvlm-minutes)")
        return
    if seed["reached"]:
        ratio, how = seed["seconds"] / docvlm["seconds"], "measured"
    else:
        seed_rate = seed["samples"] / seed["seconds"]
        estimate = docvlm["samples"] / seed_rate
        ratio, how = estimate / docvlm["seconds"], "extrapolated"
        print(f"\nseed-style loop extrapolated: {docvlm['samples']} samples (what docvlm needed) at its measured "
              f"{seed_rate:.2f} samples/s = {estimate:.0f} s (assumes it needs no more samples than docvlm)")
    verdict = "met" if ratio >= 10 else "not met"
    print(f"docvlm reaches {TARGET:.0%} CER in 1/{ratio:.1f} of the seed-style loop's time ({how}); "
          f"target <= 1/10: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docvlm-minutes", type=float, default=60)
    parser.add_argument("--seed-minutes", type=float, default=10)
    parser.add_argument("--max-steps", type=int, default=4000, help="docvlm's schedule length (cosine)")
    parser.add_argument("--eval-every", type=int, default=200, help="docvlm: optimizer steps between scorings")
    parser.add_argument("--seed-eval-every", type=int, default=400, help="seed-style: forward passes between scorings")
    parser.add_argument("--train-lines", type=int, default=8000)
    parser.add_argument("--seed-lr", type=float, default=1e-3, help="the demo's learning rate")
    parser.add_argument("--work", default="runs/bench-cer")
    parser.add_argument("--only", choices=("docvlm", "seed"), help="run one loop (prints its row)")
    parser.add_argument("--extra", action="append", default=[], help="a docvlm config override (repeat)")
    args = parser.parse_args()

    from docvlm.models.tiny import TinySize, build_tiny_model

    work = Path(args.work)
    data = free_text_lines(work, args.train_lines)
    model = work / "tiny"
    if not (model / "config.json").exists():
        build_tiny_model("qwen2_vl", model, TinySize())
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    empty = {"loop": "-", "batch": 0, "reached": False, "steps": 0, "samples": 0, "seconds": 0.0, "history": []}
    docvlm = docvlm_run(str(model), data, work, args) if args.only != "seed" else empty
    seed_args = argparse.Namespace(**{**vars(args), "eval_every": args.seed_eval_every})
    seed = seed_run(str(model), data, seed_args) if args.only != "docvlm" else empty
    print(json.dumps({"docvlm": docvlm, "seed": seed}), file=sys.stderr)
    report(docvlm, seed)
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
