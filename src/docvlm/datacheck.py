"""``docvlm data check``: what a config's datasets hold, before any GPU time is spent on them.

Every split of every dataset is indexed in skip mode (so every problem is counted, not just the
first) and every image is decoded once: counts per split and group, unreadable images, empty
(skipped) and over-long targets, the character set with frequencies, image sizes, visual tokens
at each dataset's pixel budget and the total training tokens, and leakage: the same image (exact
pixel hash), a near-identical image (perceptual difference hash) or the same page image in two
roles. Lengths are counted in the model's tokenizer when the model's processor loads, else in
characters; the report says which.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from docvlm.config import Config
from docvlm.data.schema import BadSample, LineCrop
from docvlm.data.sources import SPLIT_ROLES, load_split, split_name
from docvlm.errors import DocVLMError
from docvlm.runs import write_json

log = logging.getLogger(__name__)

SIZE_EDGES = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
TOKEN_EDGES = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
HASH_WIDTH, HASH_HEIGHT = 16, 8
"""Difference hash grid: 16 x 8 = 128 bits; wide, because text lines are."""
NEAR_DUPLICATE_BITS = 6
"""Perceptual hashes at most this many bits apart count as the same image (about 5 %)."""
EXAMPLES = 20


def difference_hash(image: Image.Image) -> int:
    """A 128-bit dHash: the sign of horizontal brightness steps on a 17 x 8 thumbnail."""
    small = image.convert("L").resize((HASH_WIDTH + 1, HASH_HEIGHT), Image.Resampling.BILINEAR)
    pixels = small.tobytes()
    bits = 0
    for row in range(HASH_HEIGHT):
        offset = row * (HASH_WIDTH + 1)
        for column in range(HASH_WIDTH):
            bits = (bits << 1) | (pixels[offset + column] < pixels[offset + column + 1])
    return bits


def pixel_hash(image: Image.Image) -> str:
    return hashlib.blake2b(f"{image.size}".encode() + image.tobytes(), digest_size=16).hexdigest()


def histogram(values: list[int], edges: list[int]) -> dict[str, int]:
    """Counts per bucket ``< edge``; the last bucket is ``>= last edge``; empty buckets omitted."""
    labels = [f"<{edge}" for edge in edges] + [f">={edges[-1]}"]
    counts = Counter(bisect_right(edges, value) for value in values)
    return {labels[i]: counts[i] for i in range(len(labels)) if counts[i]}


@dataclass
class Tokenizing:
    """What the model's processor gives the check: token counts and visual tokens."""

    processor: Any
    chat: Any

    def text_lengths(self, texts: list[str]) -> list[int]:
        if not texts:  # the tokenizer fails on an empty batch (IndexError), and a split may be empty
            return []
        return [len(ids) for ids in self.processor.tokenizer(texts, add_special_tokens=False)["input_ids"]]


@dataclass
class Seen:
    role: str
    label: str
    exact: str
    perceptual: int
    page: str | None


def check_data(cfg: Config, tokenizing: Tokenizing | None) -> dict:
    """The whole report as a dict (also what ``data_check.json`` holds)."""
    data = dataclasses.replace(cfg.data, on_bad_sample="skip")
    unit = (f"tokens ({type(tokenizing.processor.tokenizer).__name__} of {cfg.model.name_or_path})"
            if tokenizing else "characters (the model's tokenizer could not be loaded)")
    report: dict = {"length_unit": unit, "splits": {}, "charset": {}, "total_training_tokens": 0}
    seen: list[Seen] = []
    characters: dict[str, Counter] = defaultdict(Counter)
    for dataset in cfg.data.datasets:
        for role in SPLIT_ROLES:
            if split_name(dataset, role) is None:
                continue
            label = f"{dataset.name}/{split_name(dataset, role)}"
            samples = load_split(dataset, role, data)
            summary = _check_split(samples, role, label, cfg, tokenizing, seen, characters[role])
            report["splits"][label] = summary
            if role == "train" and summary.get("training_tokens") is not None:
                report["total_training_tokens"] += summary["training_tokens"]
    if tokenizing is None:
        report["total_training_tokens"] = None
    report["charset"] = _charset(characters)
    report["leakage"] = find_leakage(seen)
    return report


def _check_split(samples, role: str, label: str, cfg: Config, tokenizing: Tokenizing | None,
                 seen: list[Seen], characters: Counter) -> dict:
    widths, heights, sizes, unreadable, page_hashes, records = [], [], [], [], {}, []
    from docvlm.progress import bar

    for index, record in enumerate(bar(samples.records, desc=f"check {label}", unit="image", leave=False)):
        try:
            image = samples.load_image(record)
        except BadSample as bad:
            # Counted as a skip like training would (kept + skipped = total), and listed.
            unreadable.append(str(bad))
            samples.report.skip_kept(record.key, bad.reason, str(bad))
            continue
        records.append(record)
        widths.append(image.width)
        heights.append(image.height)
        sizes.append(image.size)
        page = record.image_ref.page if isinstance(record.image_ref, LineCrop) else None
        if page is not None and page not in page_hashes:
            page_hashes[page] = hashlib.blake2b(Path(page).read_bytes(), digest_size=16).hexdigest()
        seen.append(Seen(role, f"{label}:{record.id}", pixel_hash(image), difference_hash(image),
                         page_hashes.get(page)))
    targets = [r.target for r in records]
    for target in targets:
        characters.update(target)
    lengths = tokenizing.text_lengths(targets) if tokenizing else [len(t) for t in targets]
    too_long = [f"{r.where}: {n} > {cfg.data.max_target_length}" for r, n in zip(records, lengths)
                if n > cfg.data.max_target_length]
    summary = {
        "samples": len(records),
        "total": samples.report.total,
        "skipped": samples.report.as_dict()["skipped"],
        "adjusted": dict(samples.report.adjusted),
        "unread_files": dict(samples.report.unread_files),
        "skip_examples": samples.report.examples[:EXAMPLES],
        "groups": dict(Counter(r.group for r in records if r.group is not None).most_common()),
        "unreadable_images": len(unreadable),
        "unreadable_examples": unreadable[:EXAMPLES],
        "target_length": {"min": min(lengths, default=0), "max": max(lengths, default=0),
                          "mean": round(sum(lengths) / len(lengths), 2) if lengths else 0,
                          "over_limit": len(too_long), "over_limit_examples": too_long[:EXAMPLES]},
        "image_width": histogram(widths, SIZE_EDGES),
        "image_height": histogram(heights, SIZE_EDGES),
    }
    if tokenizing is not None:
        summary.update(_token_summary(records, sizes, lengths, tokenizing, cfg))
    return summary


def _token_summary(records, sizes, lengths, tokenizing: Tokenizing, cfg: Config) -> dict:
    from docvlm.models.budget import resolved, visual_tokens
    from docvlm.models.prompting import pixel_budget_of

    image_processor = tokenizing.processor.image_processor
    default = pixel_budget_of(tokenizing.processor, tokenizing.chat.spec)
    visual, prompt_tokens, answer_tokens, total = [], {}, {}, 0
    for record, size, target_length in zip(records, sizes, lengths):
        if size is None:
            continue
        tokens = visual_tokens(image_processor, size, resolved(record.budget, default))
        if tokens is None:
            return {"visual_tokens": None, "training_tokens": None}
        visual.append(tokens)
        if record.prompt not in prompt_tokens:
            # The rendered generation prompt holds one image placeholder that the processor expands.
            prompt_tokens[record.prompt] = tokenizing.text_lengths([tokenizing.chat.prompt_text(record.prompt)])[0] - 1
            # What the template adds around an answer (end-of-turn), counted once per prompt.
            answer_tokens[record.prompt] = tokenizing.text_lengths([tokenizing.chat.answer_text(record.prompt, "")])[0]
        total += prompt_tokens[record.prompt] + tokens + target_length + answer_tokens[record.prompt]
    return {"visual_tokens": {"histogram": histogram(visual, TOKEN_EDGES), "max": max(visual, default=0),
                              "mean": round(sum(visual) / len(visual), 2) if visual else 0,
                              "over_warn": sum(v > cfg.data.warn_visual_tokens for v in visual)},
            "training_tokens": total}


def _charset(characters: dict[str, Counter]) -> dict:
    train = characters.get("train", Counter())
    everything = sum(characters.values(), Counter())
    return {"frequencies": dict(everything.most_common()),
            "size": len(everything),
            "not_in_train": {role: dict(counts) for role, counts in
                             ((r, Counter({c: n for c, n in chars.items() if c not in train}))
                              for r, chars in characters.items() if r != "train") if counts}}


def find_leakage(seen: list[Seen]) -> dict:
    """Images shared between roles: exact pixel copies, perceptual near-copies, same page image."""
    exact = _pairs_by_key(seen, lambda s: s.exact)
    pages = _pairs_by_key([s for s in seen if s.page], lambda s: s.page)
    exact_labels = {frozenset(pair) for pair in exact["pairs"]}
    perceptual = _near_pairs(seen, exact_labels)
    return {"exact": _summarise(exact), "perceptual": _summarise(perceptual), "pages": _summarise(pages),
            "near_duplicate_bits": NEAR_DUPLICATE_BITS, "hash_bits": HASH_WIDTH * HASH_HEIGHT}


def _rank(item: Seen) -> int:
    """Pairs are written train first, then eval, then test."""
    return SPLIT_ROLES.index(item.role)


def _pairs_by_key(seen: list[Seen], key) -> dict:
    groups: dict[Any, list[Seen]] = defaultdict(list)
    for item in seen:
        groups[key(item)].append(item)
    pairs, count = [], 0
    for items in groups.values():
        roles = {item.role for item in items}
        if len(roles) < 2:
            continue
        for a in items:
            for b in items:
                if _rank(a) < _rank(b):
                    count += 1
                    if len(pairs) < 1000:
                        pairs.append((a.label, b.label))
    return {"count": count, "pairs": pairs}


def _near_pairs(seen: list[Seen], exclude: set) -> dict:
    # Pigeonhole: hashes within NEAR_DUPLICATE_BITS bits agree exactly on at least one of
    # NEAR_DUPLICATE_BITS + 1 chunks, so only items sharing a chunk need comparing.
    chunks = NEAR_DUPLICATE_BITS + 1
    bits = HASH_WIDTH * HASH_HEIGHT
    bounds = [round(i * bits / chunks) for i in range(chunks + 1)]
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, item in enumerate(seen):
        for chunk in range(chunks):
            value = (item.perceptual >> bounds[chunk]) & ((1 << (bounds[chunk + 1] - bounds[chunk])) - 1)
            buckets[(chunk, value)].append(index)
    found: set[tuple[int, int]] = set()
    for members in buckets.values():
        if len({seen[i].role for i in members}) < 2:
            continue
        for position, i in enumerate(members[:2000]):  # a huge bucket is one blank image repeated
            for j in members[position + 1:2000]:
                a, b = seen[i], seen[j]
                if a.role != b.role and (a.perceptual ^ b.perceptual).bit_count() <= NEAR_DUPLICATE_BITS:
                    found.add((i, j) if _rank(a) < _rank(b) else (j, i))
    pairs = [(seen[i].label, seen[j].label) for i, j in sorted(found)
             if frozenset((seen[i].label, seen[j].label)) not in exclude]
    return {"count": len(pairs), "pairs": pairs}


def _summarise(found: dict) -> dict:
    return {"count": found["count"], "examples": [list(pair) for pair in found["pairs"][:EXAMPLES]]}


def format_summary(report: dict) -> str:
    lines = [f"target lengths in {report['length_unit']}"]
    for label, split in report["splits"].items():
        skipped = sum(split["skipped"].values())
        reasons = f" {split['skipped']}" if skipped else ""
        line = (f"{label}: {split['samples']} samples (of {split.get('total', split['samples'])}), "
                f"{skipped} skipped{reasons}, "
                f"{split['unreadable_images']} unreadable images, {len(split['groups'])} groups; "
                f"target length {split['target_length']['min']}-{split['target_length']['max']} "
                f"(mean {split['target_length']['mean']}, {split['target_length']['over_limit']} over the limit)")
        lines.append(line)
        if split["adjusted"]:
            lines.append(f"  repaired: {split['adjusted']}")
        if split.get("unread_files"):
            unread = list(split["unread_files"].items())
            lines.append(f"  {len(unread)} files in the source folder not read: "
                         + "; ".join(f"{name} ({why})" for name, why in unread[:EXAMPLES])
                         + (" ..." if len(unread) > EXAMPLES else ""))
        lines.append(f"  image width {split['image_width']}  height {split['image_height']}")
        if split.get("visual_tokens"):
            tokens = split["visual_tokens"]
            lines.append(f"  visual tokens {tokens['histogram']} (mean {tokens['mean']}, max {tokens['max']}, "
                         f"{tokens['over_warn']} over data.warn_visual_tokens)")
    if report["total_training_tokens"] is not None:
        lines.append(f"total training tokens per epoch: {report['total_training_tokens']}")
    charset = report["charset"]
    lines.append(f"character set: {charset['size']} characters; most frequent: "
                 + " ".join(f"{c!r}:{n}" for c, n in list(charset["frequencies"].items())[:15]))
    for role, missing in charset["not_in_train"].items():
        lines.append(f"  characters in {role} never seen in train: " + " ".join(f"{c!r}:{n}" for c, n in missing.items()))
    leakage = report["leakage"]
    for kind, words in (("exact", "identical images"), ("perceptual", "near-identical images"),
                        ("pages", "lines cut from the same page image")):
        found = leakage[kind]
        if found["count"]:
            lines.append(f"LEAKAGE: {found['count']} {words} in two roles, e.g. {found['examples'][0]}")
    if not any(leakage[kind]["count"] for kind in ("exact", "perceptual", "pages")):
        lines.append("no leakage between train, eval and test images")
    return "\n".join(lines)


def run_data_check(cfg: Config, output: Path, tokenizing: Tokenizing | None) -> dict:
    report = check_data(cfg, tokenizing)
    write_json(output, report)
    return report


def load_tokenizing(cfg: Config) -> Tokenizing | None:
    """The model's processor for token counts, or None (offline, no model): lengths in characters."""
    from docvlm.models.families import family_for_model_type
    from docvlm.models.loading import load_processor, read_model_type
    from docvlm.models.prompting import ChatFormat

    try:
        processor = load_processor(cfg.model.name_or_path, cfg.model)
        spec = family_for_model_type(read_model_type(cfg.model.name_or_path, cfg.model), cfg.model.family)
    except DocVLMError as error:
        log.warning("lengths counted in characters: %s", error)
        return None
    return Tokenizing(processor, ChatFormat(processor, spec))

