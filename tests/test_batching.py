"""Length estimates for grouped batches, padding accounting, and skips from data-loader workers."""

from __future__ import annotations

import json
import shutil

import pytest

from docvlm.data.sources import load_role
from docvlm.data.synthetic import LineStyle, write_synthetic_lines
from docvlm.models.loading import load_base
from docvlm.models.prompting import ChatFormat, TrainingCollator, apply_pixel_budget
from docvlm.models.tiny import build_tiny_model
from docvlm.models.lengths import sample_lengths
from docvlm.train.batching import BatchStats
from docvlm.train.trainer import run_training
from conftest import SMALL, make_config


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    return build_tiny_model("qwen2_vl", tmp_path_factory.mktemp("qwen") / "m", SMALL, seed=0)


@pytest.fixture(scope="module")
def mixed_widths(tmp_path_factory):
    """Lines of two widths (4 and 8 visual tokens at the test budget), one manifest per split."""
    root = tmp_path_factory.mktemp("widths")
    narrow = write_synthetic_lines(root / "narrow", {"train": 4}, LineStyle(width=112), seed=2)
    wide = write_synthetic_lines(root / "wide", {"train": 4}, LineStyle(width=224), seed=3)
    out = root / "data"
    (out / "images").mkdir(parents=True)
    rows = []
    for part in (narrow, wide):
        for line in (part / "train.jsonl").read_text().splitlines():
            row = json.loads(line)
            target = out / "images" / f"{part.name}-{row['id']}.png"
            shutil.copy(part / row["image"], target)
            rows.append({**row, "id": f"{part.name}-{row['id']}", "image": str(target.relative_to(out))})
    (out / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def test_estimated_lengths_follow_the_collated_lengths(qwen_dir, mixed_widths, tmp_path):
    cfg = make_config(tmp_path, qwen_dir, mixed_widths, "--data.datasets.0.max_pixels", "6272",
                      "--data.datasets.0.eval_split", "null", "--data.datasets.0.test_split", "null")
    train, _ = load_role(cfg.data, "train")
    loaded = load_base(cfg.model, cfg.tuning)
    apply_pixel_budget(loaded.processor, loaded.spec, train.records[0].budget)
    estimated = sample_lengths(train.records, loaded.processor, loaded.spec)
    collator = TrainingCollator(ChatFormat(loaded.processor, loaded.spec))
    real = [int(collator([train[i]])["attention_mask"].sum()) for i in range(len(train))]
    # The prompt's text tokens and the end-of-turn are the same for every line, so the estimate is
    # the real length minus one constant; narrow lines are 4 visual tokens shorter than wide ones.
    assert len({r - e for r, e in zip(real, estimated)}) == 1
    assert {e - len(loaded.processor.tokenizer(r.target, add_special_tokens=False)["input_ids"])
            for e, r in zip(estimated, train.records)} == {4, 8}


def test_padding_fraction_counts_pad_positions():
    import torch

    stats = BatchStats()
    stats.add({"input_ids": torch.zeros(2, 5), "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])})
    assert stats.as_dict()["padding_fraction"] == 0.3
    assert (stats.samples, stats.tokens, stats.positions) == (2, 7, 10)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 1])
def test_skips_in_loader_workers_reach_the_data_report(qwen_dir, mixed_widths, tmp_path, workers):
    data = tmp_path / "data"
    shutil.copytree(mixed_widths, data)
    # A PNG whose header reads but whose pixels do not: found only when the sample is decoded,
    # which with workers happens in another process.
    bad = data / "images" / json.loads((data / "train.jsonl").read_text().splitlines()[0])["image"].split("/")[-1]
    bad.write_bytes(bad.read_bytes()[:120])
    cfg = make_config(tmp_path, qwen_dir, data, "--data.datasets.0.eval_split", "null",
                      "--data.datasets.0.test_split", "null", "--data.on_bad_sample", "skip",
                      "--train.max_steps", "2", "--train.eval_steps", "0", "--train.report_to", "[none]",
                      "--train.dataloader_workers", str(workers), "--train.group_by_length", "true")
    summary = run_training(cfg)
    report = json.loads((cfg.run_dir / "data_report.json").read_text())
    assert report["train:lines/train"]["skipped"] == {"unreadable_image": 1}
    # 8 lines, one skipped, two batches of 4: the skipped sample is replaced by the next readable
    # one, in the training process and in a worker alike (whose skip travels on as a marker).
    assert summary["batches"]["samples"] == 8
    assert 0 <= summary["batches"]["padding_fraction"] < 0.5


def test_length_ordered_batches_predict_what_single_samples_do(qwen_dir, mixed_widths):
    from docvlm.config import ModelConfig
    from docvlm.data.schema import PixelBudget
    from docvlm.models.lengths import generation_batches, visual_token_counts
    from docvlm.predict.run import predict_samples, samples_from_inputs

    loaded = load_base(ModelConfig(name_or_path=str(qwen_dir), dtype="fp32"))
    samples = samples_from_inputs([str(mixed_widths / "train.jsonl")], "Transcribe the text in this image.",
                                  PixelBudget(784, 6272), "error")
    # Manifest order is four narrow lines, then four wide ones: the wide ones are generated first.
    assert generation_batches(samples.records, loaded.processor, loaded.spec, 8, None) == [[4, 5, 6, 7, 0, 1, 2, 3]]
    batched = predict_samples(loaded, samples, batch_size=3, max_new_tokens=6, progress=False)
    single = predict_samples(loaded, samples, batch_size=1, max_new_tokens=6, progress=False)
    assert [r["id"] for r in batched] == [r["id"] for r in single] == [r.id for r in samples.records]
    assert [r["prediction"] for r in batched] == [r["prediction"] for r in single]
    assert any(r["prediction"] for r in single)
    # A visual-token cap cuts the same order into smaller batches; the outputs stay the same.
    visual = visual_token_counts(samples.records, loaded.processor, loaded.spec)
    assert len(set(visual)) == 2
    capped = predict_samples(loaded, samples, batch_size=8, max_new_tokens=6, progress=False,
                             max_batch_visual_tokens=2 * max(visual))
    assert [r["prediction"] for r in capped] == [r["prediction"] for r in single]


def test_evaluation_during_training_batches_as_predict_does(qwen_dir, mixed_widths, monkeypatch):
    # The Trainer's evaluation generation cuts batches by image size under the visual-token cap,
    # and its rows (in sample order) equal one-at-a-time generation.
    from docvlm.config import ModelConfig
    from docvlm.data.schema import PixelBudget
    from docvlm.models.lengths import visual_token_counts
    from docvlm.models.prompting import ChatFormat
    from docvlm.predict.run import samples_from_inputs
    from docvlm.train import evaluation

    loaded = load_base(ModelConfig(name_or_path=str(qwen_dir), dtype="fp32"))
    chat = ChatFormat(loaded.processor, loaded.spec)
    samples = samples_from_inputs([str(mixed_widths / "train.jsonl")], "Transcribe the text in this image.",
                                  PixelBudget(784, 6272), "error")
    visual = visual_token_counts(samples.records, loaded.processor, loaded.spec)
    seen = []
    generate = evaluation.generate_answers

    def recording(model, chat_, batch, *args, **kwargs):
        seen.append([samples.records.index(s.record) for s in batch])
        return generate(model, chat_, batch, *args, **kwargs)

    monkeypatch.setattr(evaluation, "generate_answers", recording)
    capped = evaluation.generate_rows(loaded.model, chat, samples, 8, 6, max_visual_tokens=2 * max(visual))
    assert seen == [[4, 5], [6, 7], [0, 1, 2, 3]]  # wide lines first, two per batch; narrow ones fit four
    assert all(sum(visual[i] for i in batch) <= 2 * max(visual) for batch in seen)
    single = evaluation.generate_rows(loaded.model, chat, samples, 1, 6)
    assert [r["index"] for r in capped] == list(range(8))
    assert [r["prediction"] for r in capped] == [r["prediction"] for r in single]


def test_retention_generation_batches_decoded_images_under_the_cap(qwen_dir, mixed_widths, monkeypatch):
    from docvlm.config import ModelConfig
    from docvlm.data.schema import PixelBudget
    from docvlm.models import prompting
    from docvlm.models.lengths import visual_token_counts
    from docvlm.predict.run import samples_from_inputs
    from docvlm.retention.suites import generate

    loaded = load_base(ModelConfig(name_or_path=str(qwen_dir), dtype="fp32"))
    sample_set = samples_from_inputs([str(mixed_widths / "train.jsonl")], "Transcribe the text in this image.",
                                     PixelBudget(784, 6272), "error")
    samples = [sample_set[i] for i in range(len(sample_set))]
    visual = visual_token_counts(sample_set.records, loaded.processor, loaded.spec)
    sizes = []
    original = prompting.generate_answers

    def recording(model, chat, batch, *args, **kwargs):
        sizes.append(sum(visual[samples.index(s)] for s in batch))
        return original(model, chat, batch, *args, **kwargs)

    monkeypatch.setattr(prompting, "generate_answers", recording)
    capped = generate(loaded, samples, 8, 6, max_visual_tokens=2 * max(visual))
    assert len(sizes) == 3 and max(sizes) <= 2 * max(visual)
    assert capped == generate(loaded, samples, 1, 6) and any(capped)


def test_generation_batches_close_at_the_visual_token_cap():
    from docvlm.models.lengths import budget_batches

    visual = [10, 40, 40, None, 25, 5]
    order = [1, 2, 4, 0, 5, 3]
    assert budget_batches(order, visual, 8, None) == [order]
    assert budget_batches(order, visual, 2, None) == [[1, 2], [4, 0], [5, 3]]
    # 40 + 40 = 80 fits 80; 25 + 10 + 5 + unknown (0) = 40
    assert budget_batches(order, visual, 8, 80) == [[1, 2], [4, 0, 5, 3]]
    # a single image above the cap runs alone rather than being dropped
    assert budget_batches(order, visual, 8, 30) == [[1], [2], [4], [0, 5, 3]]
    assert budget_batches(order, visual, 2, 30) == [[1], [2], [4], [0, 5], [3]]


def test_prefetch_keeps_order_and_raises_a_batch_error_when_that_batch_is_due():
    from docvlm.errors import DataError
    from docvlm.predict.run import PreparedBatch, prefetched

    def prepare(batch):
        if batch == [3]:
            raise DataError("lines.jsonl:4: image unreadable")
        return PreparedBatch(len(batch), [(i, f"sample {i}") for i in batch], None)

    seen = []
    with pytest.raises(DataError, match="lines.jsonl:4"):
        for prepared in prefetched([[0, 1], [2], [3], [4]], prepare):
            seen.append([i for i, _ in prepared.samples])
    assert seen == [[0, 1], [2]]
    assert [p.size for p in prefetched([[0, 1], [2]], prepare)] == [2, 1]


def test_auto_loader_workers_follow_the_machine():
    from docvlm.train.workers import loader_workers

    # CPU: the compute threads use every core (a worker measured slower on 2 cores)
    assert loader_workers("auto", on_gpu=False, cpu_count=2) == 0
    assert loader_workers("auto", on_gpu=False, cpu_count=16) == 0
    # GPU: half the process's cores, at most 4
    assert loader_workers("auto", on_gpu=True, cpu_count=16) == 4
    assert loader_workers("auto", on_gpu=True, cpu_count=6) == 3
    assert loader_workers("auto", on_gpu=True, cpu_count=16, processes=8) == 1
    assert loader_workers("auto", on_gpu=True, cpu_count=1) == 0
    # a number is taken as given
    assert loader_workers(2, on_gpu=False, cpu_count=2) == 2
