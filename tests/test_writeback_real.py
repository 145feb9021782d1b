"""Write-back on real files whose shape the other write-back tests do not cover (see
fixtures/layout/SOURCES.md): what a written copy keeps, and that it stays valid against its
version's schema."""

import shutil
from pathlib import Path

from lxml import etree
from test_writeback_versions import assert_valid, canonical, first_reading, schema

from docvlm.data.layout import parse_xml, read_page
from docvlm.predict.writers import WriteCounts, WriteOptions, write_layout

LAYOUT = Path(__file__).parent / "fixtures" / "layout"
# Transkribus PAGE 2013 (kraken's test resources): region 461 holds the page's whole transcription
# (25 lines) while only 4 TextLines are segmented, the first of them without text.
KRAKEN_LITE = LAYOUT / "kraken" / "170025120000003,0074-lite.xml"
PAGE_2019 = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"


def regions(path: Path) -> dict[str, list[tuple[str | None, str]]]:
    """Region id -> its TextEquivs as (index, Unicode)."""
    return {r.get("id"): [(e.get("index"), e.findtext("{*}Unicode")) for e in r.findall("{*}TextEquiv")]
            for r in etree.parse(str(path)).iter("{*}TextRegion")}


def schema_errors(path: Path, xsd: str = "pagecontent-2013-07-15.xsd") -> set[str]:
    validator = schema(xsd)
    validator.validate(etree.parse(str(path)))
    return {error.message for error in validator.error_log}


def write(source: Path, tmp_path: Path, predictions: dict, **options) -> tuple[Path, WriteCounts]:
    xml = tmp_path / source.name
    shutil.copy(source, xml)
    target, counts = tmp_path / "out" / source.name, WriteCounts()
    write_layout(xml, target, predictions, WriteOptions(model="m", **options), counts)
    return target, counts


def test_region_ground_truth_survives_predictions_for_its_untranscribed_lines(tmp_path):
    before = regions(KRAKEN_LITE)["region_1469098557906_461"]
    assert len(before) == 1 and before[0][1].count("\n") == 24  # 25 lines of text, 4 TextLines
    predictions = {index: (f"neu {index}", 0.5) for index in range(5)}
    target, counts = write(KRAKEN_LITE, tmp_path, predictions)
    assert_valid("pagecontent-2013-07-15.xsd", target)
    # Only the line without text takes its prediction (PAGE 2013: one TextEquiv per line) ...
    assert counts.lines_written == 1 and counts.lines_kept == 4
    lines = list(etree.parse(str(target)).iter("{*}TextLine"))
    assert first_reading(lines[1]) == "neu 1"
    # ... and the region keeps its own transcription, which its lines never held.
    assert regions(target) == regions(KRAKEN_LITE) and counts.regions_updated == 0


def test_replace_recomputes_a_region_with_its_own_text(tmp_path):
    predictions = {index: (f"neu {index}", 0.5) for index in range(5)}
    target, counts = write(KRAKEN_LITE, tmp_path, predictions, replace=True)
    assert_valid("pagecontent-2013-07-15.xsd", target)
    assert counts.lines_written == 5 and counts.regions_updated == 2
    assert regions(target)["region_1469098557906_461"] == [(None, "neu 1\nneu 2\nneu 3\nneu 4")]


def test_page_2019_region_with_its_own_text_keeps_it_and_one_with_its_lines_text_follows_them(tmp_path):
    # The same shapes in PAGE 2019: region "own" holds text its lines lack; "derived" holds its
    # lines' text (an OCR engine's, one line empty), which the new reading makes stale.
    def region(name, texts, text):
        lines = "".join(f'<TextLine id="{name}{n}"><Coords points="0,{n} 9,{n} 9,{n + 1}"/><TextEquiv>'
                        f"<Unicode>{t}</Unicode></TextEquiv></TextLine>" for n, t in enumerate(texts))
        return (f'<TextRegion id="{name}"><Coords points="0,0 9,0 9,9"/>{lines}'
                f'<TextEquiv conf="0.9"><Unicode>{text}</Unicode></TextEquiv><TextStyle fontSize="9"/></TextRegion>')

    source = tmp_path / "in" / "p.xml"
    source.parent.mkdir()
    source.write_text(
        f'<PcGts xmlns="{PAGE_2019}"><Metadata><Creator>x</Creator><Created>2020-01-01T00:00:00</Created>'
        '<LastChange>2020-01-01T00:00:00</LastChange></Metadata><Page imageFilename="p.png" imageWidth="9" '
        f'imageHeight="9">{region("own", ["", "zwei"], "eins zwei drei")}'
        f'{region("derived", ["", "zwei"], chr(10) + "zwei")}</Page></PcGts>', encoding="utf-8")
    predictions = {index: (f"p{index}", None) for index in range(4)}
    target, counts = write(source, tmp_path, predictions)
    assert_valid("pagecontent-2019-07-15.xsd", target)
    assert counts.lines_written == 4 and counts.regions_updated == 1
    assert regions(target)["own"] == [(None, "eins zwei drei")]
    assert regions(target)["derived"] == [(None, "p2\nzwei")]  # the line with text keeps it primary
    assert etree.parse(str(target)).find(".//{*}TextRegion[@id='own']/{*}TextEquiv").get("conf") == "0.9"


# Transkribus PAGE 2013 with a TableRegion: 169 lines, 165 of them in TableCells, 6 transcribed.
BURGKIRCHEN = LAYOUT / "transkribus" / "S_Burgkirchen_am_Wald_020_0117.xml"


def test_only_text_regions_get_region_text_and_nothing_else_changes(tmp_path):
    predictions = {index: (f"neu {index}", 0.5) for index in range(169)}
    target, counts = write(BURGKIRCHEN, tmp_path, predictions)
    # Transkribus' table extension is not PAGE 2013: the copy may add no error of its own.
    assert schema_errors(target) == schema_errors(BURGKIRCHEN) and len(schema_errors(BURGKIRCHEN)) == 4
    assert counts.lines_written == 163 and counts.lines_kept == 6
    # One TextRegion (whose only line had no text) gets its lines' text; table cells get none.
    assert counts.regions_updated == 1
    written = etree.parse(str(target))
    owners = {etree.QName(e.getparent()).localname for e in written.iter("{*}TextEquiv")}
    assert owners == {"TextLine", "TextRegion"}
    region = written.find(".//{*}TextRegion[@id='region_1501489674788_5']")
    assert first_reading(region) == "\n".join(first_reading(line) for line in region.findall("{*}TextLine"))
    # Apart from the line and region text, the written file is the input.
    drop = "//*[local-name()='TextLine' or local-name()='TextRegion']/*[local-name()='TextEquiv']"
    assert canonical(target, drop) == canonical(BURGKIRCHEN, drop)


# Transkribus PAGE 2013: the first TextLine ("tempLine") has no TextEquiv; its text, "ordentlichen",
# is in its one Word, and the reader reads it as the line's ground truth.
STAZ_001 = LAYOUT / "transkribus" / "StAZ-Sign.2-1_001.xml"


def reread(path: Path) -> list[str]:
    return [line.text for line in read_page(path, parse_xml(path)).lines]


def test_a_line_whose_text_is_in_its_words_keeps_it(tmp_path):
    assert reread(STAZ_001)[0] == "ordentlichen"
    predictions = {index: (f"neu {index}", 0.5) for index in range(38)}
    target, counts = write(STAZ_001, tmp_path, predictions)
    assert_valid("pagecontent-2013-07-15.xsd", target)
    # PAGE 2013: every line has ground truth, so none is written and the file reads as before.
    assert counts.lines_written == 0 and counts.lines_kept == 38
    assert reread(target) == reread(STAZ_001)
    # --replace does write it, and its Word goes with the old reading.
    (tmp_path / "replace").mkdir()
    target, counts = write(STAZ_001, tmp_path / "replace", predictions, replace=True)
    assert counts.lines_written == 38 and reread(target)[0] == "neu 0"


def test_page_2019_line_with_text_in_its_words_gets_it_as_the_primary_reading(tmp_path):
    source = tmp_path / "in" / "p.xml"
    source.parent.mkdir()
    source.write_text(
        f'<PcGts xmlns="{PAGE_2019}"><Metadata><Creator>x</Creator><Created>2020-01-01T00:00:00</Created>'
        '<LastChange>2020-01-01T00:00:00</LastChange></Metadata><Page imageFilename="p.png" imageWidth="9" '
        'imageHeight="9"><TextRegion id="r"><Coords points="0,0 9,0 9,9"/>'
        '<TextLine id="l"><Coords points="0,0 9,0 9,4"/>'
        '<Word id="w1"><Coords points="0,0 4,0 4,4"/><TextEquiv index="2"><Unicode>x</Unicode></TextEquiv>'
        '<TextEquiv index="1"><Unicode>Ein</Unicode></TextEquiv></Word>'
        '<Word id="w2"><Coords points="5,0 9,0 9,4"/><TextEquiv><Unicode>Wort</Unicode></TextEquiv></Word>'
        '<TextStyle fontSize="9"/></TextLine></TextRegion></Page></PcGts>', encoding="utf-8")
    assert reread(source) == ["Ein Wort"]  # each Word's primary reading (lowest index)
    target, counts = write(source, tmp_path, {0: ("Ein Wert", 0.5)})
    assert_valid("pagecontent-2019-07-15.xsd", target)
    line = etree.parse(str(target)).find(".//{*}TextLine")
    assert [(e.get("index"), e.findtext("{*}Unicode")) for e in line.findall("{*}TextEquiv")] == [
        ("1", "Ein Wort"), ("2", "Ein Wert")]
    assert reread(target) == ["Ein Wort"] and len(line.findall("{*}Word")) == 2
