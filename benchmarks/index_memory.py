"""Memory to index 100 000 lines without decoding images: RSS above the interpreter baseline.

Two sources of 100 000 lines each, indexed in a fresh process: a JSONL manifest (each row names
a line image; 1 000 distinct PNG files are referenced in turn, since indexing reads one image
header per row whatever the file) and 1 000 PAGE-XML pages of 100 lines each (line crops).

    PYTHONPATH=src python benchmarks/index_memory.py [--lines 100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

PAGE_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n<PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/'
             'pagecontent/2019-07-15"><Page imageFilename="page.png" imageWidth="2000" imageHeight="3000">'
             '<TextRegion id="r1" type="paragraph"><Coords points="0,0 1999,0 1999,2999 0,2999"/>\n')


def write_sources(root: Path, lines: int) -> None:
    images = root / "jsonl" / "images"
    images.mkdir(parents=True)
    for i in range(1000):
        Image.new("L", (400, 40), 255).save(images / f"{i}.png")
    with open(root / "jsonl" / "train.jsonl", "w", encoding="utf-8") as manifest:
        for i in range(lines):
            manifest.write(json.dumps({"image": f"images/{i % 1000}.png", "text": f"line {i} of the benchmark"}) + "\n")
    pages = root / "page"
    pages.mkdir()
    Image.new("L", (2000, 3000), 255).save(pages / "page.png")
    per_page = 100
    for page in range(lines // per_page):
        body = "".join(
            f'<TextLine id="l{j}"><Coords points="10,{20 * j} 1900,{20 * j} 1900,{20 * j + 18} 10,{20 * j + 18}"/>'
            f'<TextEquiv><Unicode>page {page} line {j} of the benchmark</Unicode></TextEquiv></TextLine>\n'
            for j in range(per_page))
        (pages / f"p{page:05d}.xml").write_text(PAGE_HEAD + body + "</TextRegion></Page></PcGts>\n", encoding="utf-8")


CHILD = r"""
import json, resource, sys, time
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
from docvlm.config import DataConfig, DatasetConfig
from docvlm.data.sources import load_split
import docvlm.data.layout, lxml.etree  # imported before the baseline: code is not data
baseline = rss()
source, fmt = sys.argv[1], sys.argv[2]
dataset = DatasetConfig(name="b", source=source, format=fmt, eval_split=None, test_split=None)
started = time.perf_counter()
samples = load_split(dataset, "train", DataConfig(datasets=[dataset]))
seconds = time.perf_counter() - started
print(json.dumps({"lines": len(samples), "baseline_mb": baseline, "rss_mb": rss(),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "seconds": seconds}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_sources(root, args.lines)
        print(f"{'source':<10} {'lines':>8} {'baseline MB':>12} {'RSS MB':>8} {'above MB':>9} {'peak above':>11} {'index s':>8}")
        for name, fmt in (("jsonl", "jsonl"), ("page", "page")):
            out = subprocess.run([sys.executable, "-c", CHILD, str(root / name), fmt], check=True,
                                 capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"{name:<10} {r['lines']:>8} {r['baseline_mb']:>12.0f} {r['rss_mb']:>8.0f} "
                  f"{r['rss_mb'] - r['baseline_mb']:>9.0f} {r['peak_mb'] - r['baseline_mb']:>11.0f} {r['seconds']:>8.1f}")


if __name__ == "__main__":
    started = time.time()
    main()
    print(f"(total {time.time() - started:.0f} s)")
