"""Image decoding and geometry: what reaches the model is the image the user meant, or a named
error / counted skip (issue 9, items 15, 16 and 21)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from badimages import (write_16bit_grey, write_bomb_png, write_text_line, write_transparent_line,
                       write_truncated_jpeg)

from docvlm.config import DataConfig, DatasetConfig
from docvlm.data.schema import BadSample, ImageChecks, fit_geometry, open_image
from docvlm.data.sources import load_split
from docvlm.errors import DataError


@pytest.fixture(scope="session")
def bomb(tmp_path_factory):
    return write_bomb_png(tmp_path_factory.mktemp("bomb") / "bomb.png")


def test_transparent_background_becomes_white(tmp_path):
    image = np.asarray(open_image(write_transparent_line(tmp_path / "line.png"), "line"))
    assert image[0, 0].tolist() == [255, 255, 255]          # transparent paper: white, not black
    assert image[14, 50].tolist() == [0, 0, 0]              # opaque ink stays black


def test_transparent_palette_image_becomes_white(tmp_path):
    path = write_transparent_line(tmp_path / "line.png")
    from PIL import Image

    Image.open(path).convert("RGBA").quantize(2).save(tmp_path / "p.png", transparency=0)
    image = np.asarray(open_image(tmp_path / "p.png", "line"))
    assert {tuple(image[0, 0]), tuple(image[14, 50])} == {(255, 255, 255), (0, 0, 0)}


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_grey_is_scaled_not_binarised(tmp_path, suffix):
    image = np.asarray(open_image(write_16bit_grey(tmp_path / f"g{suffix}"), "g"))[0, :, 0]
    assert image[0] == 0 and image[-1] == 255
    assert abs(int(image[len(image) // 2]) - 128) <= 2     # the middle of the ramp is mid-grey
    assert len(set(image.tolist())) > 100                  # a gradient, not two levels


def _manifest(tmp_path, images: dict[str, str]):
    """A test.jsonl whose rows point at ``images`` (name -> file), one good row first."""
    write_text_line(tmp_path / "good.png")
    rows = [{"id": "good", "image": "good.png", "text": "ok"}]
    rows += [{"id": name, "image": file, "text": "x"} for name, file in images.items()]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return DatasetConfig(name="d", source=str(tmp_path), train_split=None, eval_split=None, test_split="test")


def _load(dataset, **data):
    return load_split(dataset, "test", DataConfig(datasets=[dataset], **data))


def test_decompression_bomb_is_named_or_counted(tmp_path, bomb):
    shutil.copy(bomb, tmp_path / "bomb.png")
    dataset = _manifest(tmp_path, {"big": "bomb.png"})
    with pytest.raises(DataError, match=r"test.jsonl:2 \(sample 'big'\).*too large to decode safely"):
        _load(dataset)
    samples = _load(dataset, on_bad_sample="skip")
    assert len(samples) == 1 and samples.report.as_dict()["skipped"] == {"decompression_bomb": 1}


def test_bomb_is_an_error_when_decoded_directly(bomb):
    with pytest.raises(BadSample, match="too large to decode safely"):
        open_image(bomb, "page")


def test_over_wide_line_is_named_or_counted(tmp_path):
    write_text_line(tmp_path / "wide.png", size=(2020, 10))
    dataset = _manifest(tmp_path, {"wide": "wide.png"})
    with pytest.raises(DataError, match=r"sample 'wide'.*2020x10.*data.max_aspect_ratio \(200\)"):
        _load(dataset)
    skipped = _load(dataset, on_bad_sample="skip")
    assert skipped.report.as_dict()["skipped"] == {"extreme_aspect_ratio": 1} and len(skipped) == 1
    padded = _load(dataset, wide_images="pad")
    assert len(padded) == 2
    image = padded[1].image
    assert image.size == (2020, 11) and max(image.size) / min(image.size) <= 200
    assert np.asarray(image)[0, 0].tolist() == [255, 255, 255]    # the margin is white


def test_pad_keeps_a_tall_image_and_a_normal_one_untouched():
    from PIL import Image

    tall = fit_geometry(Image.new("RGB", (10, 2500)), ImageChecks(wide_images="pad"), "x")
    assert tall.size == (13, 2500)
    normal = Image.new("RGB", (100, 20))
    assert fit_geometry(normal, ImageChecks(wide_images="pad"), "x") is normal


def test_tiny_image_is_named_or_counted(tmp_path):
    write_text_line(tmp_path / "dot.png", size=(1, 1))
    dataset = _manifest(tmp_path, {"dot": "dot.png"})
    with pytest.raises(DataError, match=r"sample 'dot'.*1x1 pixels is below data.min_image_side \(8\)"):
        _load(dataset)
    assert _load(dataset, on_bad_sample="skip").report.as_dict()["skipped"] == {"too_small": 1}
    assert len(_load(dataset, min_image_side=1)) == 2


def test_truncated_jpeg_skipped_at_decode_is_not_counted_as_kept(tmp_path):
    write_truncated_jpeg(tmp_path / "cut.jpg")
    samples = _load(_manifest(tmp_path, {"cut": "cut.jpg"}), on_bad_sample="skip")
    assert samples.report.kept == 2                    # the header is fine: kept at indexing
    assert samples[1] is None and samples[1] is None   # asked for twice (two epochs)
    report = samples.report.as_dict()
    assert report["kept"] == 1 and report["skipped"] == {"unreadable_image": 1}
    assert report["kept"] + report["skipped_total"] == report["total"] == 2


def test_index_time_skips_print_one_line(tmp_path, caplog):
    write_text_line(tmp_path / "dot.png", size=(1, 1))
    with caplog.at_level("WARNING", logger="docvlm"):
        _load(_manifest(tmp_path, {"dot": "dot.png", "gone": "missing.png"}), on_bad_sample="skip")
    lines = [r.getMessage() for r in caplog.records if "kept" in r.getMessage()]
    assert lines == ["dataset 'd' split 'test': kept 1 of 3; skipped 2 (missing_image: 1, too_small: 1)"]


def test_padded_wide_line_passes_the_qwen_processor_that_refuses_it_raw(tiny_models):
    from PIL import Image
    from transformers import AutoProcessor

    image_processor = AutoProcessor.from_pretrained(str(tiny_models["qwen2_vl"])).image_processor
    wide = Image.new("RGB", (2020, 10), "white")
    with pytest.raises(ValueError, match="aspect ratio must be smaller than 200"):
        image_processor(images=[wide])
    padded = fit_geometry(wide, ImageChecks(wide_images="pad"), "x")
    assert image_processor(images=[padded])["pixel_values"].shape[0] > 0


def test_bomb_as_a_page_image_is_named_or_counted(tmp_path, bomb):
    from pathlib import Path

    fixture = Path(__file__).parent / "fixtures" / "layout" / "page2013.xml"
    shutil.copy(fixture, tmp_path / "p.xml")
    shutil.copy(bomb, tmp_path / "page2013.png")
    dataset = DatasetConfig(name="d", source=str(tmp_path), format="page", train_split="train",
                            eval_split=None, test_split=None)
    with pytest.raises(DataError, match=r"p.xml.*page2013.png too large to decode safely"):
        load_split(dataset, "train", DataConfig(datasets=[dataset]))
    skipped = load_split(dataset, "train", DataConfig(datasets=[dataset], on_bad_sample="skip"))
    assert len(skipped) == 0 and skipped.report.skipped["decompression_bomb"] >= 1
