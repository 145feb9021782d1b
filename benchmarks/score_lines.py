"""Scoring speed: CER + WER + confusions (the full error analysis) on synthetic line pairs, one core.

    python benchmarks/score_lines.py [--lines 100000] [--resamples 1000] [--unit grapheme]

Prints a table: lines, seconds, lines/s for the scoring itself, and separately for the bootstrap
(CI per system and the paired test), which ``docvlm evaluate`` adds on top. Single-threaded by
construction (pure Python + rapidfuzz, numpy for the bootstrap); pin it with ``taskset -c 0``.
"""

from __future__ import annotations

import argparse
import os
import random
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from docvlm.config import EvalConfig, TextMetricConfig  # noqa: E402
from docvlm.evaluate.bootstrap import paired_bootstrap  # noqa: E402
from docvlm.evaluate.scoring import analysis_report, score_rows  # noqa: E402

ALPHABET = "abcdefghijklmnopqrstuvwxyzäöüßéèàç.,;'- " + "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def synthetic_rows(count: int, seed: int) -> list[dict]:
    """Line pairs of 20-80 characters, predictions with ~5% character noise (sub/ins/del)."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        reference = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(20, 80))).strip() or "x"
        chars = []
        for char in reference:
            roll = rng.random()
            if roll < 0.02:
                chars.append(rng.choice(ALPHABET))
            elif roll < 0.035:
                chars += [char, rng.choice(ALPHABET)]
            elif roll >= 0.05:
                chars.append(char)
        rows.append({"id": str(i), "prediction": "".join(chars), "references": [reference], "reference": reference,
                     "group": f"g{i % 7}"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--unit", choices=["codepoint", "grapheme"], default="codepoint", help="CER unit")
    args = parser.parse_args()
    base_rows = synthetic_rows(args.lines, seed=1)
    tuned_rows = [dict(r, prediction=r["reference"]) if i % 2 else r for i, r in enumerate(synthetic_rows(args.lines, 1))]
    cfg = EvalConfig(bootstrap_resamples=args.resamples, text=TextMetricConfig(unit=args.unit))

    started = time.perf_counter()
    score = score_rows(base_rows, ("cer", "wer"), cfg)
    report = analysis_report(score, cfg)
    scoring_seconds = time.perf_counter() - started

    tuned = score_rows(tuned_rows, ("cer", "wer"), cfg)
    started = time.perf_counter()
    for metric in ("cer", "wer"):
        paired_bootstrap(score.stats[metric], tuned.stats[metric], args.resamples, 0, 0.95, higher_is_better=False)
    bootstrap_seconds = time.perf_counter() - started

    print(f"CER {score.value('cer'):.4f}  WER {score.value('wer'):.4f}  "
          f"S/I/D {report['substitutions']}/{report['insertions']}/{report['deletions']}  "
          f"top confusion {report['top_confusions'][0]}")
    print(f"{'step':<40} {'lines':>8} {'seconds':>8} {'lines/s':>10}")
    print(f"{'CER+WER+confusions+scripts+groups+worst':<40} {args.lines:>8} {scoring_seconds:>8.2f} "
          f"{args.lines / scoring_seconds:>10.0f}")
    print(f"{f'paired bootstrap CER+WER x{args.resamples}':<40} {args.lines:>8} {bootstrap_seconds:>8.2f} "
          f"{args.lines / bootstrap_seconds:>10.0f}")


if __name__ == "__main__":
    main()
