"""Reading several datasets into one role, lazily, each sample keeping its dataset's settings."""

from docvlm.config import load_config
from docvlm.data.sources import ConcatSampleSet, load_role, parse_select

import pytest

from docvlm.errors import DataError


def two_datasets(lines_dir):
    return load_config(None, [
        "--data.datasets", f"[{{name: a, source: {lines_dir}, prompt: Read A.}}, "
                           f"{{name: b, source: {lines_dir}, prompt: Read B., test_select: '1:3'}}]"]).data


def test_several_datasets_keep_their_prompts(lines_dir):
    samples, reports = load_role(two_datasets(lines_dir), "test")
    assert isinstance(samples, ConcatSampleSet) and len(samples) == 6 + 2
    assert set(reports) == {"a/test", "b/test"}
    assert [samples[i].prompt for i in (0, 5, 6, 7)] == ["Read A.", "Read A.", "Read B.", "Read B."]
    assert samples[6].id == "test-000001"  # select "1:3" starts at the second row
    assert samples[7].record.dataset == "b"


def test_head_spans_parts(lines_dir):
    samples, _ = load_role(two_datasets(lines_dir), "test")
    head = samples.head(7)
    assert len(head) == 7 and head[6].record.dataset == "b"
    assert samples.head(3).records == samples.records[:3]
    assert samples.head(None) is samples


def test_records_hold_no_pixels(lines_dir):
    samples, _ = load_role(two_datasets(lines_dir), "test")
    assert all(isinstance(r.image_ref, str) for r in samples.records)
    assert samples[0].image.mode == "RGB"


@pytest.mark.parametrize("text, expected", [(None, range(10)), ("2:5", range(2, 5)), (":3", range(3)),
                                            ("8:", range(8, 10)), ("4", range(4)), ("5:50", range(5, 10))])
def test_select_ranges(text, expected):
    assert parse_select(text, 10, "k") == expected


def test_bad_select_names_the_key():
    with pytest.raises(DataError, match="config key 'test_select': 'a:b' is not a row range"):
        parse_select("a:b", 10, "test_select")


def test_training_refuses_mixed_pixel_budgets(lines_dir, tmp_path):
    from docvlm.errors import ConfigError
    from docvlm.train.trainer import run_training

    cfg = load_config(None, ["--output_root", str(tmp_path), "--data.datasets",
                             f"[{{name: a, source: {lines_dir}, max_pixels: 3136}}, {{name: b, source: {lines_dir}}}]"])
    with pytest.raises(ConfigError, match="datasets used for train have different min_pixels/max_pixels"):
        run_training(cfg)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_two_training_datasets_in_skip_mode(tiny_models, lines_dir, tmp_path):
    import json

    from docvlm.train.trainer import run_training

    cfg = load_config(None, [
        "--output_root", str(tmp_path), "--model.name_or_path", str(tiny_models["qwen2_vl"]),
        "--data.on_bad_sample", "skip", "--data.max_length", "200",
        "--data.datasets", f"[{{name: a, source: {lines_dir}, max_pixels: 3136}}, "
                           f"{{name: b, source: {lines_dir}, max_pixels: 3136}}]",
        "--train.max_steps", "1", "--train.batch_size", "2", "--train.gradient_accumulation_steps", "1",
        "--train.eval_steps", "0", "--train.save_steps", "1", "--train.report_to", "[none]"])
    run_training(cfg)
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report["train:a/train"]["kept"] == report["train:b/train"]["kept"] == 24
    assert report["train:too_long_at_collation"]["skipped_total"] == 0
