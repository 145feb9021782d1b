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
