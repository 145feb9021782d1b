"""Readers on real files whose shape the other layout tests do not cover (see
fixtures/layout/SOURCES.md); page images are synthesised at the size the XML states."""

import shutil
from pathlib import Path

from PIL import Image
from test_layout_real import load

from docvlm.data.layout import parse_xml, read_page

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
