"""Which of several ``TextEquiv`` alternatives is an element's text: docvlm reads and writes PAGE
by dinglehopper's rule, so that the evaluation tool and docvlm agree on the ground truth and on the
prediction a write-back adds."""

import random

import numpy as np
import pytest
from lxml import etree

from docvlm.data.layout import primary_equiv
from docvlm.predict.writers import WriteCounts, WriteOptions, write_layout

NS = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"


def dinglehopper_first_textequiv(textequivs):
    """Test oracle: qurator-spk/dinglehopper ``src/dinglehopper/extracted_text.py`` (v0.11.0)
    ``get_first_textequiv`` / ``get_attr`` (behaviour reproduced, logging left out)."""
    def get_attr(te, name):
        value = te.attrib.get(name)
        try:
            return float(value)
        except TypeError:
            return np.nan

    if len(textequivs) == 1:
        return textequivs[0]
    indices = np.array([get_attr(te, "index") for te in textequivs], dtype=float)
    if np.any(~np.isnan(indices)):
        return textequivs[int(np.nanargmin(indices))]
    confidences = np.array([get_attr(te, "conf") for te in textequivs], dtype=float)
    if np.any(~np.isnan(confidences)):
        return textequivs[int(np.nanargmax(confidences))]
    return textequivs[0]


def line_with(readings: list[dict]) -> etree._Element:
    line = etree.Element(f"{{{NS}}}TextLine", id="l")
    for number, attributes in enumerate(readings):
        equiv = etree.SubElement(line, f"{{{NS}}}TextEquiv", {k: str(v) for k, v in attributes.items()})
        etree.SubElement(equiv, f"{{{NS}}}Unicode").text = f"reading {number}"
    return line


def test_rule_by_hand():
    # Alternatives without an index are passed over once any has one (they are not "index 1").
    assert primary_equiv(line_with([{}, {"index": 2}, {"index": 3}])).findtext("{*}Unicode") == "reading 1"
    # No index: the highest conf; ties and no conf at all: the first.
    assert primary_equiv(line_with([{"conf": 0.2}, {"conf": 0.9}])).findtext("{*}Unicode") == "reading 1"
    assert primary_equiv(line_with([{"conf": 0.9}, {"conf": 0.9}])).findtext("{*}Unicode") == "reading 0"
    assert primary_equiv(line_with([{}, {}])).findtext("{*}Unicode") == "reading 0"
    assert primary_equiv(line_with([])) is None


def test_rule_equals_dinglehopper_on_random_alternatives():
    rng = random.Random(3)
    for _ in range(2000):
        readings = []
        for _ in range(rng.randint(1, 5)):
            attributes = {}
            if rng.random() < 0.4:
                attributes["index"] = rng.randint(0, 4)
            if rng.random() < 0.6:
                attributes["conf"] = rng.choice([0.1, 0.5, 0.5, 0.9, 1.0])
            readings.append(attributes)
        line = line_with(readings)
        assert primary_equiv(line) is dinglehopper_first_textequiv(line.findall("{*}TextEquiv")), readings


def page_with_line(readings: list[dict]) -> str:
    line = etree.tostring(line_with(readings), encoding="unicode").replace(f' xmlns="{NS}"', "")
    line = line.replace('<TextLine id="l">', '<TextLine id="l"><Coords points="0,0 9,0 9,9"/>')
    return (f'<PcGts xmlns="{NS}"><Metadata><Creator>x</Creator><Created>2020-01-01T00:00:00</Created>'
            '<LastChange>2020-01-01T00:00:00</LastChange></Metadata><Page imageFilename="p.png" imageWidth="9" '
            f'imageHeight="9"><TextRegion id="r"><Coords points="0,0 9,0 9,9"/>{line}</TextRegion></Page></PcGts>')


@pytest.mark.parametrize("readings, primary", [
    ([{"conf": 0.3}, {"conf": 0.8}], "reading 1"),         # no index: the confident one is the ground truth
    ([{}], "reading 0"),                                     # a lone reading without index
    ([{}, {"index": 1}, {"index": 2}], "reading 1"),         # the unindexed one was never primary
])
def test_write_back_keeps_the_primary_reading_primary(tmp_path, readings, primary):
    source, target = tmp_path / "p.xml", tmp_path / "out" / "p.xml"
    source.write_text(page_with_line(readings), encoding="utf-8")
    before = dinglehopper_first_textequiv(etree.parse(str(source)).find(".//{*}TextLine").findall("{*}TextEquiv"))
    assert before.findtext("{*}Unicode") == primary
    write_layout(source, target, {0: ("predicted", 0.99)}, WriteOptions(), WriteCounts())
    line = etree.parse(str(target)).find(".//{*}TextLine")
    equivs = line.findall("{*}TextEquiv")
    # Every reading is indexed now, the ground truth still comes first, the prediction last.
    assert all(e.get("index") is not None for e in equivs) and len(equivs) == len(readings) + 1
    assert dinglehopper_first_textequiv(equivs).findtext("{*}Unicode") == primary
    assert primary_equiv(line).findtext("{*}Unicode") == primary
    assert max(equivs, key=lambda e: int(e.get("index"))).findtext("{*}Unicode") == "predicted"
