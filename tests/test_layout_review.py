"""Readers on real files whose shape the other layout tests do not cover (see
fixtures/layout/SOURCES.md); page images are synthesised at the size the XML states."""

import shutil
from pathlib import Path

import pytest
from PIL import Image
from test_layout_real import load

from docvlm.data.layout import parse_xml, read_alto, read_page
from docvlm.errors import DataError

LAYOUT = Path(__file__).parent / "fixtures" / "layout"
# Transkribus PAGE 2013 (TranskribusCore's test document): Aletheia put the word "ordentlichen",
# which belongs to no line, into a "tempLine" whose Coords are the placeholder 0,0 1,0 1,1 0,1.
STAZ_001 = LAYOUT / "transkribus" / "StAZ-Sign.2-1_001.xml"


def test_placeholder_line_coords_are_replaced_by_the_box_around_its_words(tmp_path):
    page = read_page(STAZ_001, parse_xml(STAZ_001))
    temp = page.lines[0]
    assert temp.id == "tempLine357564684568544579089" and temp.text == "ordentlichen" and temp.from_words
    assert temp.polygon == [(2238, 3140), (2619, 3140), (2619, 3259), (2238, 3259)]  # the Word's extent
    assert not any(line.from_words for line in page.lines[1:])  # real line outlines are kept

    shutil.copy(STAZ_001, tmp_path / STAZ_001.name)
    Image.new("L", (3352, 5128)).save(tmp_path / "StAZ-Sign.2-1_001_B.tif", compression="packbits")
    samples = load(tmp_path / STAZ_001.name)
    records = {r.target: r for r in samples.records}
    assert len(samples.records) == 38
    # Not a 2 x 2 pixel crop at the page's corner labelled with a whole word.
    assert records["ordentlichen"].image_ref.box == (2238, 3140, 2620, 3260)
    assert samples.report.adjusted["line_box_from_words"] == 1


# HTR-United dataset layout (HTR-School-Vienna/2025-syriac): page/, alto/ and images/ side by side,
# the XML naming the image by its bare name. Syriac (right to left), PAGE 2013 and ALTO 4 of one page.
SYRIAC = LAYOUT / "htr_united_syriac"
SYRIAC_IMAGE = "0125_SMMJ_00036__130.JPG"


@pytest.mark.parametrize("fmt", ["page", "alto"])
def test_image_in_a_folder_beside_the_xmls_is_found(tmp_path, fmt):
    dataset = tmp_path / "SMMJ_00036"
    shutil.copytree(SYRIAC, dataset)
    image = dataset / "images" / SYRIAC_IMAGE
    image.parent.mkdir()
    Image.new("L", (5616, 3744)).save(image, format="JPEG")
    samples = load(dataset, format=fmt)
    assert len(samples.records) == 132 and samples.records[0].image_ref.page == str(image.resolve())
    assert samples.records[0].target == "ܐܡܪܬ ܕܐܠܗܐ ܐܝܬܝܟܘܢ:"
    # The same name in a second folder beside the XML's (thumbnails?) is not guessed between.
    (dataset / "thumbs").mkdir()
    Image.new("L", (56, 37)).save(dataset / "thumbs" / SYRIAC_IMAGE, format="JPEG")
    with pytest.raises(DataError, match="ambiguous_image|several folders beside"):
        load(dataset, format=fmt)


def test_page_and_alto_of_the_syriac_page_read_alike():
    page_xml, alto_xml = SYRIAC / "page" / "0125_SMMJ_00036__130.xml", SYRIAC / "alto" / "0125_SMMJ_00036__130.xml"
    page, alto = read_page(page_xml, parse_xml(page_xml)), read_alto(alto_xml, parse_xml(alto_xml))
    assert [line.text for line in page.lines] == [line.text for line in alto.lines]
    assert len(page.lines) == 132
