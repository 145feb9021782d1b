"""Padding fraction of training batches with and without ``train.group_by_length``.

Lines of mixed widths (112 to 448 px, i.e. 4 to 16 visual tokens at the demo budget's height, and
3 to 30 characters) are batched by docvlm's collator in the order of a random sampler and of the
length-grouped sampler ``train.group_by_length`` uses; the table gives pad positions / all
positions over one epoch. No model is run.

    python benchmarks/padding.py [--lines 640] [--batch 16]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path


def mixed_lines(root: Path, count: int) -> Path:
    from docvlm.data.synthetic import LineStyle, write_synthetic_lines

    out = root / "mixed"
    if (out / "train.jsonl").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    (out / "images").mkdir(parents=True)
    rows, rng = [], random.Random(0)
    for width in (112, 224, 336, 448):
        chars = width // 15
        part = write_synthetic_lines(root / f"w{width}", {"train": count // 4},
                                     LineStyle(width=width, min_length=max(3, chars // 3), max_length=chars), seed=width)
        for line in (part / "train.jsonl").read_text().splitlines():
            row = json.loads(line)
            name = f"w{width}-{row['id']}.png"
            shutil.copy(part / row["image"], out / "images" / name)
            rows.append({**row, "id": f"w{width}-{row['id']}", "image": f"images/{name}"})
    rng.shuffle(rows)
    (out / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=640)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--work", default="runs/bench-padding")
    args = parser.parse_args()

    import torch
    from torch.utils.data import RandomSampler
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from docvlm.config import load_config
    from docvlm.data.sources import load_role
    from docvlm.demo import DEMO_CONFIG
    from docvlm.models.lengths import sample_lengths
    from docvlm.models.loading import load_base
    from docvlm.models.prompting import ChatFormat, TrainingCollator, apply_pixel_budget
    from docvlm.models.tiny import TinySize, build_tiny_model
    from docvlm.train.batching import BatchStats

    work = Path(args.work)
    model = work / "tiny"
    if not (model / "config.json").exists():
        build_tiny_model("qwen2_vl", model, TinySize())
    data = mixed_lines(work, args.lines)
    cfg = load_config(DEMO_CONFIG, ["--model.name_or_path", str(model), "--data.datasets.0.source", str(data),
                                    "--data.datasets.0.eval_split", "null", "--data.datasets.0.test_split", "null",
                                    "--data.datasets.0.max_pixels", "12544"])
    train, _ = load_role(cfg.data, "train")
    loaded = load_base(cfg.model, cfg.tuning)
    apply_pixel_budget(loaded.processor, loaded.spec, train.records[0].budget)
    collator = TrainingCollator(ChatFormat(loaded.processor, loaded.spec))
    lengths = sample_lengths(train.records, loaded.processor, loaded.spec)
    torch.manual_seed(0)
    orders = {"random (default)": list(RandomSampler(train)),
              "group_by_length": list(LengthGroupedSampler(args.batch, lengths=lengths))}
    print(f"{len(train)} lines of 4 widths, batch {args.batch}\n\n| sampler | padding fraction |\n|---|---|")
    for name, order in orders.items():
        stats = BatchStats()
        for start in range(0, len(order), args.batch):
            stats.add(collator([train[i] for i in order[start:start + args.batch]]))
        print(f"| {name} | {stats.padding_fraction:.1%} |")


if __name__ == "__main__":
    main()
