"""PAGE-XML and ALTO variants found in public archives' files: PAGE 2010 ``Point`` coordinates
(PRImA's own samples) and ALTO in ``inch1200``/``mm10`` (ALTO 1, ABBYY-made newspaper ALTO).
Sources: fixtures/layout/SOURCES.md; page images are synthesised at the stated size."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from lxml import etree
from PIL import Image

from docvlm.config import DataConfig, DatasetConfig
from docvlm.data.layout import index_layout_for_inference
from docvlm.data.schema import SkipReport
from docvlm.data.sources import load_split
from docvlm.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures" / "layout"


def image(path: Path, size) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0]), 200, dtype=np.uint8)).save(path)
    return path


def inference(source: Path):
    report = SkipReport()

    def handle_bad(bad, report, on_bad):
        raise bad

    dataset = DatasetConfig(name="d", source=str(source))
    return index_layout_for_inference(source, dataset, report, "error", handle_bad)


def test_page_2010_point_coordinates_are_read(tmp_path):
    # PRImA's PAGE 2010-03-19 sample: Coords as <Point x= y=/> children, no points attribute.
    source = FIXTURES / "prima" / "RegionTypes_2010-03-19.xml"
    shutil.copy(source, tmp_path / "RegionTypes_2010-03-19.xml")
    image(tmp_path / "RegionTypes.tif", (700, 800))
    records = inference(tmp_path)
    lines = list(etree.parse(str(source)).getroot().iter("{*}TextLine"))
    assert len(records) == len(lines) == 4
    expected = []
    for line in lines:
        xs = [int(p.get("x")) for p in line.findall("{*}Coords/{*}Point")]
        ys = [int(p.get("y")) for p in line.findall("{*}Coords/{*}Point")]
        expected.append((f"RegionTypes_2010-03-19:{line.get('id')}", (min(xs), min(ys), max(xs) + 1, max(ys) + 1)))
    assert [(r.id, r.image_ref.box) for r in records] == expected
    assert records[0].image_ref.box == (32, 31, 274, 56)  # x 32..273, y 31..55
    assert len(records[0].image_ref.polygon) == 36


def alto_in(unit: str, width: str, height: str) -> str:
    # ALTO 1 (the CCS namespace) as the Library of Congress' newspaper OCR writes it.
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alto xmlns="http://schema.ccs-gmbh.com/ALTO"><Description><MeasurementUnit>{unit}</MeasurementUnit>
  <sourceImageInformation><fileName>
    \\\\libdpsrv1\\storage\\ocr\\0070.tif
  </fileName></sourceImageInformation></Description>
  <Layout><Page ID="P1" PHYSICAL_IMG_NR="1" WIDTH="{width}" HEIGHT="{height}"><PrintSpace>
    <TextBlock ID="TB1" HPOS="1200" VPOS="2400" WIDTH="2400" HEIGHT="600">
      <TextLine HPOS="1200" VPOS="2400" WIDTH="2400" HEIGHT="200" BASELINE="2580">
        <String CONTENT="The" HPOS="1200" VPOS="2400" WIDTH="300" HEIGHT="200"/><SP/>
        <String CONTENT="news" HPOS="1600" VPOS="2400" WIDTH="400" HEIGHT="200"/></TextLine>
    </TextBlock></PrintSpace></Page></Layout></alto>"""


@pytest.mark.parametrize("unit,width,height", [("inch1200", "4800", "6000"), ("mm10", "4064", "5080")])
def test_alto_in_non_pixel_units_is_scaled_to_the_page_image(tmp_path, unit, width, height):
    # A 4 x 5 inch page scanned at 300 dpi: 1200 x 1500 pixels; 4800 inch1200 = 4064 mm10.
    (tmp_path / "page.xml").write_text(alto_in(unit, width, height), encoding="utf-8")
    image(tmp_path / "0070.tif", (1200, 1500))  # the bare name of the Windows path it names
    (record,) = inference(tmp_path)
    assert record.target == "The news"
    scale = (1200 / float(width), 1500 / float(height))
    left, top = round(1200 * scale[0]), round(2400 * scale[1])
    right, bottom = round(3600 * scale[0]), round(2600 * scale[1])
    assert record.image_ref.box == (left, top, right, bottom)
    if unit == "inch1200":
        assert record.image_ref.box == (300, 600, 900, 650)  # 1/1200 inch -> 1/300 inch: a quarter
        assert record.image_ref.baseline == ((300, 645), (899, 645))


def test_alto_unit_without_page_size_or_unknown_unit_is_one_error(tmp_path):
    (tmp_path / "page.xml").write_text(alto_in("inch1200", "0", "6000"), encoding="utf-8")
    image(tmp_path / "0070.tif", (1200, 1500))
    dataset = DatasetConfig(name="d", source=str(tmp_path), train_split="train", eval_split=None, test_split=None)
    with pytest.raises(DataError, match="page.xml: MeasurementUnit 'inch1200' needs the Page's WIDTH and HEIGHT"):
        load_split(dataset, "train", DataConfig(datasets=[dataset]))
    (tmp_path / "page.xml").write_text(alto_in("mm", "4800", "6000"), encoding="utf-8")
    with pytest.raises(DataError, match="MeasurementUnit 'mm' is not an ALTO unit"):
        load_split(dataset, "train", DataConfig(datasets=[dataset]))


def point_box(element) -> tuple:
    xs = [int(p.get("x")) for p in element.findall("{*}Coords/{*}Point")]
    ys = [int(p.get("y")) for p in element.findall("{*}Coords/{*}Point")]
    return min(xs), min(ys), max(xs) + 1, max(ys) + 1


def test_transkribus_page_2010_with_text_is_read_whole(tmp_path):
    # Transkribus' own test document (PAGE 2010-03-19, Point coordinates, Word level too).
    source = FIXTURES / "transkribus" / "StAZ-Sign.2-1_003.xml"
    shutil.copy(source, tmp_path / source.name)
    image(tmp_path / "StAZ-Sign.2-1_003.tif", (3312, 5144))
    dataset = DatasetConfig(name="d", source=str(tmp_path), train_split="train", eval_split=None, test_split=None)
    records = load_split(dataset, "train", DataConfig(datasets=[dataset])).records
    lines = list(etree.parse(str(source)).getroot().iter("{*}TextLine"))
    expected = [(f"StAZ-Sign.2-1_003:{line.get('id')}", line.findtext("{*}TextEquiv/{*}Unicode"), point_box(line))
                for line in lines]
    assert len(records) == len(lines) == 15
    assert [(r.id, r.target, r.image_ref.box) for r in records] == expected
    assert records[0].target == "dasselbs und solang die Mess werdt,"
    assert records[0].image_ref.box == (1438, 497, 2923, 656)


@pytest.mark.parametrize("name,image_size,count", [
    ("test.alto2.xml", (1720, 2500), 30),  # ABBYY FineReader Engine, ALTO 2, UTF-8 BOM, no fileName
    ("lorem-ipsum-scan.ocr.tesseract.alto.xml", (2481, 3508), 7)])  # tesseract 4.1, ALTO 3, empty fileName
def test_abbyy_and_tesseract_alto_read_whole(tmp_path, name, image_size, count):
    source = FIXTURES / "dinglehopper" / name
    shutil.copy(source, tmp_path / name)
    image(tmp_path / (Path(name).stem + ".png"), image_size)  # no image named: the same stem
    records = inference(tmp_path)
    lines = list(etree.parse(str(source)).getroot().iter("{*}TextLine"))
    expected = []
    for line in lines:
        text = "".join(c.get("CONTENT") if etree.QName(c).localname != "SP" else " "
                       for c in line if etree.QName(c).localname in ("String", "SP", "HYP"))
        x, y, w, h = (int(float(line.get(k))) for k in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))
        expected.append((text, (x, y, x + w, y + h)))
    assert len(records) == len(lines) == count
    assert [(r.target, r.image_ref.box) for r in records] == expected


def test_an_index_that_is_not_an_integer_is_one_error_naming_file_and_line(tmp_path):
    source = (FIXTURES / "page2019.xml").read_text(encoding="utf-8")
    (tmp_path / "page2019.xml").write_text(source.replace('<TextEquiv index="2">', '<TextEquiv index="2.0">'),
                                           encoding="utf-8")
    image(tmp_path / "page2019.png", (400, 300))
    dataset = DatasetConfig(name="d", source=str(tmp_path), train_split="train", eval_split=None, test_split=None)
    with pytest.raises(DataError, match=r"page2019.xml:14: TextEquiv index '2.0' is not an integer"):
        load_split(dataset, "train", DataConfig(datasets=[dataset]))
    skipped = load_split(dataset, "train", DataConfig(datasets=[dataset], on_bad_sample="skip")).report
    assert skipped.skipped == {"bad_layout": 1} and "page2019.xml" in skipped.unread_files


def test_an_alto_baseline_that_is_not_a_number_is_one_error_naming_file_and_line(tmp_path):
    source = (FIXTURES / "alto2.xml").read_text(encoding="utf-8")
    (tmp_path / "alto2.xml").write_text(source.replace('BASELINE="34"', 'BASELINE="n/a"'), encoding="utf-8")
    dataset = DatasetConfig(name="d", source=str(tmp_path), train_split="train", eval_split=None, test_split=None)
    with pytest.raises(DataError, match=r"alto2.xml:11: TextLine BASELINE 'n/a' is not a number"):
        load_split(dataset, "train", DataConfig(datasets=[dataset]))


def test_region_text_without_lines_is_counted_not_dropped(tmp_path):
    # dinglehopper's ground truth: the text sits in a region of its own, the 7 lines are empty.
    shutil.copy(FIXTURES / "dinglehopper" / "lorem-ipsum-scan.gt.page.xml", tmp_path / "gt.page.xml")
    image(tmp_path / "lorem-ipsum-scan.tif", (2481, 3508))
    dataset = DatasetConfig(name="d", source=str(tmp_path), train_split="train", eval_split=None, test_split=None)
    report = load_split(dataset, "train", DataConfig(datasets=[dataset], on_bad_sample="skip")).report
    assert (report.total, report.kept) == (8, 0)
    assert report.skipped == {"empty_target": 7, "region_without_lines": 1}
    assert any("gt.page.xml:38: TextRegion 'r7' has text but no TextLine" in e for e in report.examples)
    # Inference in error mode: the 4 lines of PRImA's 2010 sample are read, its line-less text
    # region is counted, and nothing stops.
    shutil.copy(FIXTURES / "prima" / "RegionTypes_2010-03-19.xml", tmp_path / "prima.xml")
    image(tmp_path / "RegionTypes.tif", (700, 800))
    counted = SkipReport()
    dataset = DatasetConfig(name="d", source=str(tmp_path / "prima.xml"))
    records = index_layout_for_inference(tmp_path / "prima.xml", dataset, counted, "error", None)
    assert len(records) == 4 and counted.total == 5 and counted.skipped == {"region_without_lines": 1}


def test_an_image_named_but_not_there_falls_back_to_the_same_stem(tmp_path):
    # Transkribus exports can name the image by its server URL; ABBYY by a path on the scan server.
    source = (FIXTURES / "transkribus" / "StAZ-Sign.2-1_004.xml").read_text(encoding="utf-8")
    named = source.replace('imageFilename="StAZ-Sign.2-1_004.tif"',
                           'imageFilename="https://files.transkribus.eu/Get?id=ABC&amp;fileType=view"')
    (tmp_path / "p4.xml").write_text(named, encoding="utf-8")
    dataset = DatasetConfig(name="d", source=str(tmp_path), train_split="train", eval_split=None, test_split=None)
    with pytest.raises(DataError, match=r"page image 'https://files.transkribus.eu/Get\?id=ABC&fileType=view' "
                                        r"not found .* then for an image with the XML's name: p4.tif"):
        load_split(dataset, "train", DataConfig(datasets=[dataset]))
    image(tmp_path / "p4.jpg", (3504, 5336))
    records = load_split(dataset, "train", DataConfig(datasets=[dataset])).records
    assert len(records) == 8 and records[0].image_ref.page.endswith("p4.jpg")


def test_transkribus_table_page_every_line_in_reading_order(tmp_path):
    # A real Transkribus table (TableRegion/TableCell; the table is listed only in its custom
    # readingOrder, not in ReadingOrder): 165 of its 169 lines sit in cells; only 6 are transcribed.
    source = FIXTURES / "transkribus" / "S_Burgkirchen_am_Wald_020_0117.xml"
    shutil.copy(source, tmp_path / source.name)
    image(tmp_path / "S_Burgkirchen_am_Wald_020_0117.JPG", (4197, 3271))
    root = etree.parse(str(source)).getroot()
    page = root.find("{*}Page")
    listed = [ref.get("regionRef") for ref in root.iter("{*}RegionRefIndexed")]
    regions = {r.get("id"): r for r in page if isinstance(r.tag, str)}
    expected = [line.get("id") for ref in listed for line in regions[ref].iter("{*}TextLine")]
    cells = sorted(page.iter("{*}TableCell"), key=lambda c: (int(c.get("row")), int(c.get("col"))))
    expected += [line.get("id") for cell in cells for line in cell.iter("{*}TextLine")]
    assert len(expected) == len(list(root.iter("{*}TextLine"))) == 169
    records = inference(tmp_path)
    assert [r.id.split(":")[1] for r in records] == expected
    dataset = DatasetConfig(name="d", source=str(tmp_path), train_split="train", eval_split=None, test_split=None)
    train = load_split(dataset, "train", DataConfig(datasets=[dataset], on_bad_sample="skip"))
    assert (train.report.total, train.report.kept) == (169, 6)
    assert train.report.skipped == {"empty_target": 163}
