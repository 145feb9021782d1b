"""``docvlm data check`` time on 10 000 synthetic lines (8 000 / 1 000 / 1 000), with and without
a tokenizer (a tiny Qwen2-VL built locally: token and visual-token counts at the pixel budget).

    PYTHONPATH=src python benchmarks/data_check_speed.py [--lines 10000]

Pin to two cores to reproduce the issue's setting: ``taskset -c 0,1 python ...``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from docvlm.config import load_config
    from docvlm.data.synthetic import LineStyle, write_synthetic_lines
    from docvlm.datacheck import check_data, load_tokenizing
    from docvlm.models.tiny import TinySize, build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        tenth = args.lines // 10
        data = write_synthetic_lines(root / "lines", {"train": args.lines - 2 * tenth, "validation": tenth,
                                                      "test": tenth}, LineStyle(), seed=0)
        render = time.perf_counter() - started
        model = build_tiny_model("qwen2_vl", root / "model", TinySize(), seed=0)
        cores = len(os.sched_getaffinity(0))
        print(f"rendered {args.lines} lines in {render:.0f} s; {cores} cores available to this process")
        print(f"{'mode':<12} {'lines':>7} {'seconds':>8} {'lines/s':>8}  leakage (exact/perceptual)")
        for mode in ("characters", "tokens"):
            cfg = load_config(None, ["--model.name_or_path", str(model) if mode == "tokens" else str(root / "none"),
                                     "--data.datasets.0.source", str(data), "--data.datasets.0.max_pixels", "50176"])
            started = time.perf_counter()
            tokenizing = load_tokenizing(cfg) if mode == "tokens" else None
            report = check_data(cfg, tokenizing)
            seconds = time.perf_counter() - started
            total = sum(split["samples"] for split in report["splits"].values())
            leak = report["leakage"]
            print(f"{mode:<12} {total:>7} {seconds:>8.1f} {total / seconds:>8.0f}  "
                  f"{leak['exact']['count']}/{leak['perceptual']['count']}")


if __name__ == "__main__":
    main()
