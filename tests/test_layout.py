"""PAGE-XML (2013, 2019) and ALTO (v2, v4): exact crop boxes, exact transcriptions, lazy crops, splits."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from docvlm.config import DataConfig, DatasetConfig
from docvlm.data.schema import LineCrop
from docvlm.data.sources import load_split, source_format
from docvlm.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures" / "layout"


def page_image(path: Path, size=(400, 300), seed=0) -> Image.Image:
    """Random pixels, so that a crop taken from the wrong place cannot match by accident."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    image.save(path)
    return image


@pytest.fixture
def layout_dir(tmp_path):
    for xml in FIXTURES.glob("*.xml"):
        shutil.copy(xml, tmp_path / xml.name)
        page_image(tmp_path / f"{xml.stem}.png", seed=len(xml.stem))
    return tmp_path


def read(path, role="train", **settings):
    split = {"train": "train_split", "test": "test_split"}[role]
    fields = {"train_split": None, "eval_split": None, "test_split": None, split: role}
    dataset = DatasetConfig(name="d", source=str(path), **{**fields, **settings})
    data = DataConfig(datasets=[dataset], on_bad_sample=settings.pop("on_bad", "error"))
    return load_split(dataset, role, data)


EXPECTED = {
    "page2013.xml": [  # reading order puts region r2 (Arabic heading) first
        ("page2013:l4", (120, 220, 381, 261), "مرحبا بالعالم", "Arabic", "heading"),
        ("page2013:l1", (10, 10, 201, 41), "Hello world", None, "paragraph"),
        ("page2013:l2", (15, 60, 221, 121), "a rotated line", None, "paragraph"),
        ("page2013:l3", (10, 130, 301, 161), "Cafe\u0301 n\u0303o\u0308", None, "paragraph"),
    ],
    "page2019.xml": [  # TextEquiv index 1 wins over the alternative listed first
        ("page2019:tl_1", (30, 20, 371, 56), "\u200f\u0643\u062a\u0628 \u0627\u0644\u0637\u0627\u0644\u0628 "
                                             "\u0627\u0644\u062f\u0631\u0633\u200f", "Arabic", "paragraph"),
        ("page2019:tl_2", (40, 70, 246, 131), "tilted upwards", None, "paragraph"),
        ("page2019:tl_3", (10, 150, 391, 186), "\xc5ngstr\xf6m \u1e69 q\u0323\u0307 \u01f9", None, "paragraph"),
    ],
    "alto2.xml": [
        ("alto2:line1", (10, 10, 160, 40), "Printed text", None, "TextBlock"),
        ("alto2:line2", (12, 50, 312, 90), "re\u0301sume\u0301 exam\xac", None, "TextBlock"),
        ("alto2:line3", (60, 130, 100, 280), "\u0633\u0644\u0627\u0645 \u0639\u0644\u064a\u0643\u0645", "ar",
         "TextBlock"),
    ],
    "alto4.xml": [
        ("alto4:tl1", (20, 30, 231, 91), "slanted line", None, "TextBlock"),
        ("alto4:tl2", (50, 120, 350, 160), "\u0627\u0644\u062d\u0628\u0631 \u0623\u0633\u0648\u062f", "ar",
         "TextBlock"),
        ("alto4:tl3", (10, 200, 210, 230), "Z\u030ciz\u030ckov\u030a", None, "TextBlock"),
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_lines_boxes_and_exact_text(layout_dir, name):
    role = "test" if name == "alto4.xml" else "train"  # alto4 carries its own split tag: test
    samples = read(layout_dir / name, role)
    records = samples.records
    got = [(r.id, r.image_ref.box, r.target, r.language, r.image_ref.region_type) for r in records]
    assert got == EXPECTED[name]
    for record in records:  # byte-exact, not merely equal after normalisation
        expected = next(e[2] for e in EXPECTED[name] if e[0] == record.id)
        assert record.target.encode("utf-8") == expected.encode("utf-8")
    page = Image.open(layout_dir / name.replace(".xml", ".png")).convert("RGB")
    for index, record in enumerate(records):
        assert isinstance(record.image_ref, LineCrop) and record.group == name[:-4]
        assert samples[index].image.tobytes() == page.crop(record.image_ref.box).tobytes()


def test_format_detection(layout_dir):
    assert source_format(DatasetConfig(source=str(layout_dir / "page2019.xml"))) == "page"
    assert source_format(DatasetConfig(source=str(layout_dir / "alto2.xml"))) == "alto"
    alto_only = layout_dir / "alto_only"
    alto_only.mkdir()
    shutil.copy(layout_dir / "alto2.xml", alto_only)
    assert source_format(DatasetConfig(source=str(alto_only))) == "alto"


def test_baselines_and_polygons_are_kept(layout_dir):
    l2 = read(layout_dir / "page2013.xml").records[2].image_ref
    assert l2.polygon == ((20, 60), (220, 90), (215, 120), (15, 90)) and l2.baseline == ((18, 85), (218, 115))
    line1 = read(layout_dir / "alto2.xml").records[0].image_ref
    assert line1.baseline == ((10, 34), (159, 34))  # ALTO 2: a single y across the line
    tl1 = read(layout_dir / "alto4.xml", "test").records[0].image_ref
    assert tl1.baseline == ((20, 80), (230, 50))


def test_padding_and_polygon_mask(layout_dir):
    samples = read(layout_dir / "page2013.xml", line_padding=5, mask_polygon=True)
    rotated = samples.records[2]
    assert rotated.image_ref.box == (10, 55, 226, 126)
    image = np.asarray(samples[2].image)
    page = np.asarray(Image.open(layout_dir / "page2013.png").convert("RGB"))
    assert (image[0, 0] == 255).all()  # top-left corner lies outside the tilted polygon: masked white
    assert (image[35, 108] == page[55 + 35, 10 + 108]).all()  # the middle of the line is untouched


def test_split_by_page_never_by_line(layout_dir, tmp_path):
    folder = tmp_path / "pages"
    folder.mkdir()
    for i in range(10):
        shutil.copy(FIXTURES / "page2013.xml", folder / f"p{i}.xml")
    page_image(folder / "page2013.png")
    dataset = DatasetConfig(name="d", source=str(folder), split_ratios=[0.6, 0.2, 0.2], split_seed=3)
    data = DataConfig(datasets=[dataset])
    pages = {role: {r.group for r in load_split(dataset, role, data).records} for role in ("train", "eval", "test")}
    assert [len(pages[role]) for role in ("train", "eval", "test")] == [6, 2, 2]
    assert set.union(*pages.values()) == {f"p{i}" for i in range(10)}
    assert not (pages["train"] & pages["test"]) and not (pages["train"] & pages["eval"])
    again = {r.group for r in load_split(dataset, "train", data).records}
    assert again == pages["train"]  # seeded


def test_split_subfolders(layout_dir, tmp_path):
    for split in ("train", "test"):
        (tmp_path / "set" / split).mkdir(parents=True)
        shutil.copy(FIXTURES / "page2013.xml", tmp_path / "set" / split / f"{split}.xml")
        shutil.copy(layout_dir / "page2013.png", tmp_path / "set" / split / "page2013.png")
    dataset = DatasetConfig(name="d", source=str(tmp_path / "set"), eval_split=None)
    data = DataConfig(datasets=[dataset])
    assert {r.group for r in load_split(dataset, "train", data).records} == {"train/train"}
    assert {r.group for r in load_split(dataset, "test", data).records} == {"test/test"}


def test_select_after_indexing_keeps_counts_consistent(layout_dir):
    samples = read(layout_dir / "page2013.xml", train_select="1:3")
    assert [r.id for r in samples.records] == ["page2013:l1", "page2013:l2"]
    assert (samples.report.total, samples.report.kept) == (2, 2)


def test_split_tag_and_missing_split(layout_dir):
    with pytest.raises(DataError, match="no split 'train' \\(found splits: test\\)"):
        read(layout_dir / "alto4.xml", "train")
    # A source without split settings is the training split; its other splits are empty (issue 9.14).
    assert len(read(layout_dir / "page2013.xml", "test")) == 0
    assert len(read(layout_dir / "page2013.xml", "train")) == 4
