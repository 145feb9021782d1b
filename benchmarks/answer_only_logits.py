"""Answer-only logits against the model's full-logits loss: peak memory and step time of one
forward + backward pass, with Qwen2-VL's real vocabulary (151 936) on a tiny Qwen2-VL body.

    PYTHONPATH=src python benchmarks/answer_only_logits.py [--samples 18]

Each mode runs in its own process (peak RSS is per process). The loss of both modes is printed:
it must agree to float32 precision.
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

VOCAB = 151_936


def one_mode(model_dir: str, mode: str, samples: int) -> dict:
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from transformers import Qwen2VLForConditionalGeneration

    from docvlm.config import ModelConfig
    from docvlm.data.schema import PixelBudget, Record, Sample
    from docvlm.models.loading import load_base
    from docvlm.models.prompting import ChatFormat, TrainingCollator
    from docvlm.train.losses import answer_logits

    torch.manual_seed(0)
    loaded = load_base(ModelConfig(name_or_path=model_dir, dtype="fp32"))
    config = loaded.model.config
    config.text_config.vocab_size = VOCAB  # rows beyond the tiny tokenizer are never looked up
    model = Qwen2VLForConditionalGeneration(config)
    budget = PixelBudget(784, 28 * 28 * 8)
    batch_samples = [Sample(Record(id=str(i), target=f"line {i} " * (1 + i % 3), image_ref="-",
                                   prompt="Transcribe the text in this image.", dataset="d", task="transcription",
                                   budget=budget), Image.new("RGB", (56 * (1 + i % 4), 28), "white"))
                     for i in range(samples)]
    batch = TrainingCollator(ChatFormat(loaded.processor, loaded.spec))(batch_samples)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(3):
        started = time.perf_counter()
        if mode == "full":
            loss = model(**batch).loss
        else:
            inputs = dict(batch)
            labels = inputs.pop("labels")
            found = answer_logits(model, inputs, labels)
            loss = F.cross_entropy(found["logits"], found["targets"])
        loss.backward()
        model.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"mode": mode, "batch": list(batch["input_ids"].shape),
            "answer_tokens": int((batch["labels"] != -100).sum()), "loss": loss.item(),
            "peak_rss_mb": round((peak - before) / 1024), "step_seconds": round(min(times), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=18)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.mode:
        print(json.dumps(one_mode(args.model, args.mode, args.samples)))
        return
    from docvlm.models.tiny import TinySize, build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(build_tiny_model("qwen2_vl", Path(tmp) / "qwen2_vl", TinySize(), seed=0))
        rows = []
        for mode in ("full", "answer_only"):
            done = subprocess.run([sys.executable, __file__, "--mode", mode, "--model", model_dir,
                                   "--samples", str(args.samples)], capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"batch {rows[0]['batch']} tokens, {rows[0]['answer_tokens']} answer tokens, vocabulary {VOCAB}")
    print(f"{'mode':<12} {'loss':>10} {'peak RSS MB':>12} {'step s':>8}")
    for row in rows:
        print(f"{row['mode']:<12} {row['loss']:>10.6f} {row['peak_rss_mb']:>12} {row['step_seconds']:>8}")
    full, fast = rows
    print(f"answer-only: {full['peak_rss_mb'] / max(fast['peak_rss_mb'], 1):.1f}x less memory, "
          f"{full['step_seconds'] / fast['step_seconds']:.1f}x faster; relative loss difference "
          f"{abs(full['loss'] - fast['loss']) / abs(full['loss']):.1e} (float32 summation order)")


if __name__ == "__main__":
    main()
