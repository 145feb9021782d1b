"""Write-back into the PAGE and ALTO versions real archives hold: PAGE 2010 and 2013 (one
``TextEquiv`` per line, no ``index``; 2010 wants ``PlainText`` and has no ``conf``), ALTO 2 and 3
(``OCRProcessing``, no ``Processing``). Each written copy is validated against its own version's
schema (fixtures/schemas) and must keep everything it does not replace."""

import shutil
from functools import lru_cache
from pathlib import Path

import pytest
from lxml import etree

from docvlm.predict.writers import WriteCounts, WriteOptions, alto_major_version, page_version, write_layout

FIXTURES = Path(__file__).parent / "fixtures"
LAYOUT = FIXTURES / "layout"
SCHEMAS = FIXTURES / "schemas"


class LocalXlink(etree.Resolver):
    """ALTO imports xlink.xsd from loc.gov; the tests use the shipped copy (no network)."""

    def resolve(self, url, pubid, context):
        if url.endswith("xlink.xsd"):
            return self.resolve_filename(str(SCHEMAS / "xlink.xsd"), context)
        return None


@lru_cache(maxsize=None)
def schema(name: str) -> etree.XMLSchema:
    parser = etree.XMLParser()
    parser.resolvers.add(LocalXlink())
    return etree.XMLSchema(etree.parse(str(SCHEMAS / name), parser))


def assert_valid(xsd_name: str, path: Path) -> None:
    xsd = schema(xsd_name)
    assert xsd.validate(etree.parse(str(path))), f"{path}: {xsd.error_log}"


def canonical(path: Path, drop: str = "") -> bytes:
    """The tree without the elements matched by XPath ``drop`` and without whitespace-only text."""
    tree = etree.parse(str(path), etree.XMLParser(remove_blank_text=True))
    for element in tree.xpath(drop) if drop else []:
        element.getparent().remove(element)
    return etree.tostring(tree, method="c14n")


def write(source: Path, tmp_path: Path, replace: bool, count: int, confidence=0.5):
    xml = tmp_path / source.name
    shutil.copy(source, xml)
    target = tmp_path / "out" / f"{replace}" / source.name
    counts = WriteCounts()
    predictions = {index: (f"prediction {index} ſ", confidence) for index in range(count)}
    write_layout(xml, target, predictions, WriteOptions(model="m", replace=replace), counts)
    assert xml.read_bytes() == source.read_bytes()  # the input is never written
    return target, counts


TRANSKRIBUS_2010 = LAYOUT / "transkribus" / "StAZ-Sign.2-1_003.xml"
TRANSKRIBUS_2013 = LAYOUT / "transkribus" / "StAZ-Sign.2-1_004.xml"
TEXT_EQUIV = "//*[local-name()='TextLine']/*[local-name()='TextEquiv']"
LINE_WORDS = "//*[local-name()='TextLine']/*[local-name()='Word']"
REGION_TEXT_EQUIV = "//*[local-name()='TextRegion']/*[local-name()='TextEquiv']"


def first_reading(element) -> str:
    """The element's primary text as dinglehopper takes it: the TextEquiv with the lowest @index."""
    equivs = element.findall("{*}TextEquiv")
    if not equivs:
        return ""
    if len(equivs) > 1:
        equivs = sorted(equivs, key=lambda e: float(e.get("index", "nan")) if e.get("index") else float("inf"))
    return equivs[0].findtext("{*}Unicode") or ""


def assert_regions_read_their_lines(path: Path) -> None:
    """Every TextRegion with lines reads at region level what its lines read at line level (joined
    by newlines): dinglehopper's two text levels give the same text."""
    regions = [r for r in etree.parse(str(path)).iter("{*}TextRegion") if r.findall("{*}TextLine")]
    assert regions
    for region in regions:
        assert first_reading(region) == "\n".join(first_reading(line) for line in region.findall("{*}TextLine")), \
            region.get("id")


@pytest.mark.parametrize("source,xsd,lines", [(TRANSKRIBUS_2010, "pagecontent-2010-03-19.xsd", 15),
                                              (TRANSKRIBUS_2013, "pagecontent-2013-07-15.xsd", 8)])
def test_page_before_2016_keeps_ground_truth_and_stays_valid(tmp_path, source, xsd, lines):
    assert_valid(xsd, source)  # the archive's file is valid to begin with
    kept, counts = write(source, tmp_path, replace=False, count=lines)
    # One TextEquiv per line is all these versions allow: a transcribed line keeps its text.
    assert (counts.lines_written, counts.lines_kept) == (0, lines)
    assert_valid(xsd, kept)
    assert canonical(kept) == canonical(source)
    replaced, counts = write(source, tmp_path, replace=True, count=lines)
    assert (counts.lines_written, counts.lines_kept) == (lines, 0)
    assert_valid(xsd, replaced)
    # Only the replaced lines' text, their Words and the region-level text change.
    changed = f"{TEXT_EQUIV} | {LINE_WORDS} | {REGION_TEXT_EQUIV}"
    assert canonical(replaced, changed) == canonical(source, changed)
    assert counts.words_removed == len(etree.parse(str(source)).xpath(LINE_WORDS))
    assert not etree.parse(str(replaced)).xpath(LINE_WORDS)
    assert_regions_read_their_lines(replaced)
    equivs = etree.parse(str(replaced)).xpath(TEXT_EQUIV)
    assert [e.findtext("{*}Unicode") for e in equivs] == [f"prediction {i} ſ" for i in range(lines)]
    if "2010" in xsd:  # PlainText is required before Unicode; there is no conf
        assert [e.findtext("{*}PlainText") for e in equivs] == [f"prediction {i} ſ" for i in range(lines)]
        assert {e.get("conf") for e in equivs} == {None}
    else:
        assert {e.get("conf") for e in equivs} == {"0.5000"} and {e.get("index") for e in equivs} == {None}


def test_page_2010_line_without_text_gets_the_prediction(tmp_path):
    # PRImA's 2010 sample: lines with glyphs but no line-level text are written without --replace.
    source = LAYOUT / "prima" / "RegionTypes_2010-03-19.xml"
    target, counts = write(source, tmp_path, replace=False, count=4)
    assert (counts.lines_written, counts.lines_kept) == (4, 0)
    assert_valid("pagecontent-2010-03-19.xsd", target)


@pytest.mark.parametrize("source,xsd,lines", [
    (LAYOUT / "dinglehopper" / "test.alto2.xml", "alto-2-1.xsd", 30),  # ABBYY FineReader Engine
    (LAYOUT / "dinglehopper" / "lorem-ipsum-scan.ocr.tesseract.alto.xml", "alto-3-1.xsd", 7)])  # tesseract
def test_alto_2_and_3_get_ocr_processing_and_stay_valid(tmp_path, source, xsd, lines):
    assert_valid(xsd, source)
    target, counts = write(source, tmp_path, replace=True, count=lines)
    assert (counts.lines_written, counts.lines_kept) == (lines, 0)
    assert_valid(xsd, target)
    steps = etree.parse(str(target)).xpath("//*[local-name()='OCRProcessing'][.//*[local-name()='softwareName']"
                                           "='docvlm']")
    assert len(steps) == 1 and not etree.parse(str(target)).xpath("//*[local-name()='Processing']")
    added = ("//*[local-name()='TextLine']/*[local-name()='String' or local-name()='SP' or local-name()='HYP']"
             " | //*[local-name()='OCRProcessing'][@ID='docvlm_processing']")
    assert canonical(target, added) == canonical(source, added)


def test_schema_versions_are_read_from_the_namespace():
    page = "{http://schema.primaresearch.org/PAGE/gts/pagecontent/%s}PcGts"
    assert page_version(etree.Element(page % "2010-03-19")) == "2010-03-19"
    assert page_version(etree.Element("PcGts")) == "9999"
    assert alto_major_version(etree.Element("{http://www.loc.gov/standards/alto/ns-v2#}alto")) == 2
    assert alto_major_version(etree.Element("{http://www.loc.gov/standards/alto/ns-v3#}alto")) == 3
    assert alto_major_version(etree.Element("{http://schema.ccs-gmbh.com/ALTO}alto")) == 1
    assert alto_major_version(etree.Element("alto", SCHEMAVERSION="2.1")) == 2
    assert alto_major_version(etree.Element("alto")) == 4
    xsi = "{http://www.w3.org/2001/XMLSchema-instance}noNamespaceSchemaLocation"
    assert alto_major_version(etree.Element("alto", {xsi: "http://schema.ccs-gmbh.com/metae/alto-1-2.xsd"})) == 1
    assert alto_major_version(etree.Element("alto", {xsi: "http://www.loc.gov/alto/v3/alto-3-0.xsd"})) == 3


KANT_PAGE = LAYOUT / "ocrd_kant" / "OCR-D-GT-PAGE" / "PAGE_0017_PAGE.xml"


@pytest.mark.parametrize("keep_words", [False, True])
def test_replace_keeps_words_and_regions_consistent_with_the_new_lines(tmp_path, keep_words):
    # OCR-D's ground truth has Words with text under every line and the text again at region level.
    source = tmp_path / KANT_PAGE.name
    shutil.copy(KANT_PAGE, source)
    words = len(etree.parse(str(source)).xpath(LINE_WORDS))
    regions = etree.parse(str(source)).xpath(REGION_TEXT_EQUIV)
    assert words == 161 and len(regions) == 11
    target, counts = tmp_path / "out.xml", WriteCounts()
    predictions = {index: (f"neu {index}", 0.9) for index in range(24)}
    write_layout(source, target, predictions, WriteOptions(replace=True, keep_words=keep_words), counts)
    assert_valid("pagecontent-2019-07-15.xsd", target)
    assert counts.lines_written == 24 and counts.regions_updated == 11
    assert counts.words_removed == (0 if keep_words else words)
    assert len(etree.parse(str(target)).xpath(LINE_WORDS)) == (words if keep_words else 0)
    assert_regions_read_their_lines(target)
    # The region text is the new lines' text, and its conf (which scored the old text) is gone.
    texts = etree.parse(str(target)).xpath(REGION_TEXT_EQUIV)
    assert len(texts) == 11 and {e.get("conf") for e in texts} == {None}
    assert "\n".join(first_reading(e.getparent()) for e in texts) == "\n".join(f"neu {i}" for i in range(24))


def test_adding_a_reading_leaves_a_transcribed_region_alone(tmp_path):
    # Without --replace the ground truth stays each line's primary reading, so the regions keep theirs.
    source = tmp_path / KANT_PAGE.name
    shutil.copy(KANT_PAGE, source)
    target, counts = tmp_path / "out.xml", WriteCounts()
    write_layout(source, target, {0: ("neu", None)}, WriteOptions(), counts)
    assert counts.regions_updated == 0 and counts.words_removed == 0
    def regions(path):
        return [etree.tostring(e, method="c14n") for e in etree.parse(str(path)).xpath(REGION_TEXT_EQUIV)]

    assert regions(target) == regions(source) and len(regions(source)) == 11
    assert len(etree.parse(str(target)).xpath(LINE_WORDS)) == 161


def test_region_without_text_gets_one_before_its_text_style(tmp_path):
    ns = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
    source = tmp_path / "p.xml"
    source.write_text(
        f'<PcGts xmlns="{ns}"><Metadata><Creator>x</Creator><Created>2020-01-01T00:00:00</Created>'
        '<LastChange>2020-01-01T00:00:00</LastChange></Metadata><Page imageFilename="p.png" imageWidth="9" '
        'imageHeight="9"><TextRegion id="r"><Coords points="0,0 9,0 9,9"/>'
        '<TextLine id="l1"><Coords points="0,0 9,0 9,4"/></TextLine>'
        '<TextLine id="l2"><Coords points="0,5 9,5 9,9"/></TextLine>'
        '<TextStyle fontSize="9"/></TextRegion></Page></PcGts>', encoding="utf-8")
    target, counts = tmp_path / "out.xml", WriteCounts()
    write_layout(source, target, {1: ("zwei", None)}, WriteOptions(), counts)
    assert_valid("pagecontent-2019-07-15.xsd", target)
    region = etree.parse(str(target)).find(".//{*}TextRegion")
    assert [etree.QName(c).localname for c in region] == ["Coords", "TextLine", "TextLine", "TextEquiv", "TextStyle"]
    assert region.findtext("{*}TextEquiv/{*}Unicode") == "\nzwei"  # the line without text is an empty line
