"""``docvlm predict`` on PAGE-XML / ALTO pages: predictions written back into copies of the files
(issue 13, item 1). Written files are validated against the official PAGE 2019 and ALTO 4.4
schemas (fixtures/schemas/SOURCES.md)."""

import hashlib
import json
import random
import shutil
from pathlib import Path

import pytest
from lxml import etree
from PIL import Image

from docvlm.cli import main
from docvlm.data.layout import parse_xml, read_alto, read_page
from docvlm.data.schema import PixelBudget
from docvlm.data.synthetic import LineStyle, find_fonts, render_line
from docvlm.evaluate.metrics import cer
from docvlm.predict.writers import (WriteCounts, WriteOptions, layout_samples, write_alto_line, write_layout,
                                    write_page_line)

SCHEMAS = Path(__file__).parent / "fixtures" / "schemas"
KANT = Path(__file__).parent / "fixtures" / "layout" / "ocrd_kant"
PAGE_NS = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
ALTO_NS = "http://www.loc.gov/standards/alto/ns-v4#"


class _LocalXlink(etree.Resolver):
    """ALTO imports xlink.xsd from loc.gov; the tests use the shipped copy (no network)."""

    def resolve(self, url, pubid, context):
        if url.endswith("xlink.xsd"):
            return self.resolve_filename(str(SCHEMAS / "xlink.xsd"), context)
        return None


def schema(name: str) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_LocalXlink())
    return etree.XMLSchema(etree.parse(str(SCHEMAS / name), parser))


PAGE_SCHEMA = schema("pagecontent-2019-07-15.xsd")
ALTO_SCHEMA = schema("alto-4-4.xsd")


def assert_valid(xsd: etree.XMLSchema, path: Path) -> None:
    assert xsd.validate(etree.parse(str(path))), f"{path}: {xsd.error_log}"


# --------------------------------------------------------------------------------------------
# Synthetic segmented pages: line images drawn on a page, PAGE and ALTO without any text


def write_synthetic_pages(root: Path, pages: int = 2, lines: int = 3, seed: int = 0) -> dict:
    """``root/page/p<n>.xml`` (PAGE 2019) and ``root/alto/a<n>.xml`` (ALTO 4) with their page images;
    returns ``{xml path: [true text of each line]}``. The XML carries only the segmentation."""
    rng = random.Random(seed)
    style = LineStyle(width=160)
    fonts = find_fonts()
    truth = {}
    for kind in ("page", "alto"):
        (root / kind).mkdir(parents=True, exist_ok=True)
        for number in range(pages):
            width, height = 200, 20 + lines * 40
            page = Image.new("RGB", (width, height), "white")
            boxes, texts = [], []
            for index in range(lines):
                text = "".join(rng.choice(style.alphabet) for _ in range(rng.randint(3, 6)))
                line = render_line(text, rng, style, fonts)
                x, y = 10, 10 + index * 40
                page.paste(line, (x, y))
                boxes.append((x, y, line.width, line.height))
                texts.append(text)
            stem = f"{kind[0]}{number}"
            page.save(root / kind / f"{stem}.png")
            xml = root / kind / f"{stem}.xml"
            xml.write_text((_page_xml if kind == "page" else _alto_xml)(f"{stem}.png", width, height, boxes),
                           encoding="utf-8")
            truth[str(xml)] = texts
    return truth


def _points(x, y, w, h) -> str:
    return f"{x},{y} {x + w - 1},{y} {x + w - 1},{y + h - 1} {x},{y + h - 1}"


def _page_xml(image: str, width: int, height: int, boxes) -> str:
    lines = "".join(
        f'\n        <TextLine id="l{i}">\n          <Coords points="{_points(*box)}"/>\n'
        f'          <Baseline points="{box[0]},{box[1] + box[3] - 6} {box[0] + box[2] - 1},{box[1] + box[3] - 6}"/>\n'
        f"        </TextLine>" for i, box in enumerate(boxes))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<PcGts xmlns="{PAGE_NS}">
  <Metadata>
    <Creator>test segmenter</Creator>
    <Created>2024-01-01T00:00:00</Created>
    <LastChange>2024-01-01T00:00:00</LastChange>
  </Metadata>
  <Page imageFilename="{image}" imageWidth="{width}" imageHeight="{height}">
    <TextRegion id="r0">
      <Coords points="{_points(0, 0, width, height)}"/>{lines}
    </TextRegion>
  </Page>
</PcGts>
"""


def _alto_xml(image: str, width: int, height: int, boxes) -> str:
    lines = "".join(
        f'\n          <TextLine ID="l{i}" HPOS="{x}" VPOS="{y}" WIDTH="{w}" HEIGHT="{h}">\n'
        f'            <String CONTENT="" HPOS="{x}" VPOS="{y}" WIDTH="{w}" HEIGHT="{h}"/>\n'
        f"          </TextLine>" for i, (x, y, w, h) in enumerate(boxes))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alto xmlns="{ALTO_NS}">
  <Description>
    <MeasurementUnit>pixel</MeasurementUnit>
    <sourceImageInformation>
      <fileName>{image}</fileName>
    </sourceImageInformation>
  </Description>
  <Layout>
    <Page ID="p" WIDTH="{width}" HEIGHT="{height}" PHYSICAL_IMG_NR="1">
      <PrintSpace>
        <TextBlock ID="b0">{lines}
        </TextBlock>
      </PrintSpace>
    </Page>
  </Layout>
</alto>
"""


def canonical(path: Path, drop: str, implicit_index: bool = False) -> bytes:
    """The tree without the elements matched by XPath ``drop`` and without whitespace-only text;
    ``implicit_index`` also drops ``index="1"`` from line ``TextEquiv``s (the one attribute the
    writer adds to a kept ground truth, making PAGE's implicit first index explicit for OCR-D)."""
    tree = etree.parse(str(path), etree.XMLParser(remove_blank_text=True))
    namespaces = {"p": PAGE_NS, "a": ALTO_NS}
    for element in tree.xpath(drop, namespaces=namespaces):
        element.getparent().remove(element)
    if implicit_index:
        for element in tree.xpath("//p:TextLine/p:TextEquiv[@index='1']", namespaces=namespaces):
            del element.attrib["index"]
    return etree.tostring(tree, method="c14n")


PAGE_ADDED = "//p:TextLine/p:TextEquiv | //p:TextRegion/p:TextEquiv | //p:MetadataItem[@name='docvlm']"
ALTO_ADDED = "//a:TextLine/a:String | //a:TextLine/a:SP | //a:Processing"


def digest(root: Path) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_predict_writes_pages_back(tiny_models, tmp_path, capsys):
    pages = tmp_path / "pages"
    truth = write_synthetic_pages(pages)
    for xml in truth:
        assert_valid(PAGE_SCHEMA if "/page/" in xml else ALTO_SCHEMA, Path(xml))  # the inputs are valid
    before = digest(pages)
    out = tmp_path / "out"
    assert main(["predict", str(tiny_models["qwen2_vl"]), str(pages), "--output", str(out),
                 "--max-new-tokens", "5", "--batch-size", "4"]) == 0
    assert "12 lines transcribed into 4 files" in capsys.readouterr().out
    assert digest(pages) == before  # inputs never modified

    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 12 and {r["xml"] for r in rows} == {str(out / Path(x).relative_to(pages)) for x in truth}
    for xml in truth:
        written = out / Path(xml).relative_to(pages)
        kind = "page" if "/page/" in xml else "alto"
        assert_valid(PAGE_SCHEMA if kind == "page" else ALTO_SCHEMA, written)
        drop = PAGE_ADDED if kind == "page" else ALTO_ADDED
        assert canonical(written, drop) == canonical(Path(xml), drop)  # nothing else changed
        if kind == "page":  # the region now reads its lines (dinglehopper's default region level)
            region = etree.parse(str(written)).find(".//{*}TextRegion")
            lines = [line.findtext("{*}TextEquiv/{*}Unicode") for line in region.findall("{*}TextLine")]
            assert region.findtext("{*}TextEquiv/{*}Unicode") == "\n".join(lines) and len(lines) == 3

    # Re-read through docvlm's own readers: the written text is the JSONL prediction, line by line.
    # The copies name their page images as the inputs did; put the images beside them.
    for image in pages.rglob("*.png"):
        shutil.copy(image, out / image.relative_to(pages))
    reread = layout_samples([out], "x", PixelBudget(), "error").records
    by_line = {(r.source.xml, r.source.line_index): r.target for r in reread}
    assert [by_line[(r["xml"], r["line_index"])] for r in rows] == [r["prediction"] for r in rows]
    # Confidence: in the JSONL and in the files (PAGE TextEquiv@conf, ALTO String@WC), the same value.
    attributes = {}
    for xml in {r["xml"] for r in rows}:
        lines = etree.parse(xml).getroot().iter("{*}TextLine")
        for index, line in enumerate(lines):
            holder = line.find("{*}TextEquiv") if line.find("{*}TextEquiv") is not None else line.find("{*}String")
            attributes[(xml, index)] = float(holder.get("conf") or holder.get("WC"))
    assert [attributes[(r["xml"], r["line_index"])] for r in rows] == [r["confidence"] for r in rows]
    assert all(0 < r["confidence"] <= 1 for r in rows)
    references = [truth[str(pages / Path(r["xml"]).relative_to(out))][r["line_index"]] for r in rows]
    jsonl_cer = cer(references, [r["prediction"] for r in rows])
    writeback_cer = cer(references, [by_line[(r["xml"], r["line_index"])] for r in rows])
    assert writeback_cer == jsonl_cer and jsonl_cer.reference_length == sum(len(t) for ts in truth.values() for t in ts)


def test_page_ground_truth_is_kept_beside_the_prediction_unless_replace():
    line = etree.fromstring(
        f'<TextLine xmlns="{PAGE_NS}" id="l"><Coords points="0,0 9,0 9,9 0,9"/><Baseline points="0,8 9,8"/>'
        '<Word id="w"><Coords points="0,0 9,0 9,9 0,9"/><TextEquiv><Unicode>gt</Unicode></TextEquiv></Word>'
        '<TextEquiv><Unicode>ground truth</Unicode></TextEquiv><TextStyle fontSize="9"/></TextLine>')
    write_page_line(line, "predicted", replace=False)
    names = [etree.QName(c).localname for c in line]
    assert names == ["Coords", "Baseline", "Word", "TextEquiv", "TextEquiv", "TextStyle"]
    assert [(e.get("index"), e.findtext("{*}Unicode")) for e in line.findall("{*}TextEquiv")] == [
        ("1", "ground truth"), ("2", "predicted")]  # index 1 made explicit: OCR-D reads only indexed ones
    write_page_line(line, "again", replace=True)
    assert [(e.get("index"), e.findtext("{*}Unicode")) for e in line.findall("{*}TextEquiv")] == [(None, "again")]
    assert line.find("{*}Word/{*}TextEquiv/{*}Unicode").text == "gt"  # word level untouched


def test_alto_keeps_text_unless_replace_and_splits_words_on_request():
    line = etree.fromstring(f'<TextLine xmlns="{ALTO_NS}" ID="l" HPOS="1" VPOS="2" WIDTH="30" HEIGHT="9">'
                            '<String CONTENT="old" HPOS="1" VPOS="2" WIDTH="30" HEIGHT="9"/></TextLine>')
    assert write_alto_line(line, "new text", WriteOptions(), set()) is False
    assert [c.get("CONTENT") for c in line] == ["old"]
    assert write_alto_line(line, "new text", WriteOptions(replace=True), set()) is True
    assert [(c.get("CONTENT"), c.get("HPOS"), c.get("WIDTH"), c.get("ID")) for c in line] == [
        ("new text", "1", "30", "l_docvlm1")]
    write_alto_line(line, "new  text", WriteOptions(replace=True, alto_words=True), {"l_docvlm1"})
    assert [(etree.QName(c).localname, c.get("CONTENT")) for c in line] == [
        ("String", "new"), ("SP", None), ("String", "text")]
    assert read_alto_text(line) == "new text"


def test_characters_xml_cannot_hold_are_dropped():
    from docvlm.predict.writers import xml_safe

    assert xml_safe("a\x00b\x1fc\td\ud800e\ufffe\U0001F600") == "abc\tde\U0001F600"


def read_alto_text(line) -> str:
    from docvlm.data.layout import _alto_text

    return _alto_text(line)


@pytest.mark.parametrize("kind", ["page", "alto"])
def test_real_kant_page_written_back_is_valid_and_reads_back(tmp_path, kind):
    source = KANT / ("OCR-D-GT-PAGE/PAGE_0017_PAGE.xml" if kind == "page" else "OCR-D-GT-ALTO/PAGE_0017_ALTO.xml")
    xml = tmp_path / source.name
    shutil.copy(source, xml)
    predictions = {index: (f"prediction {index}", 0.5) for index in range(24)}
    target = tmp_path / "out" / source.name
    counts = WriteCounts()
    write_layout(xml, target, predictions, WriteOptions(model="m", replace=kind == "alto"), counts)
    assert counts.lines_written == 24 and xml.read_bytes() == source.read_bytes()
    read = read_page if kind == "page" else read_alto
    lines = read(target, parse_xml(target)).lines
    if kind == "page":
        assert_valid(PAGE_SCHEMA, target)
        # The ground truth stays the primary reading (index 1); the prediction is index 2.
        assert [line.text for line in lines] == [line.text for line in read(source, parse_xml(source)).lines]
        second = etree.parse(str(target)).xpath("//p:TextLine/p:TextEquiv[@index='2']/p:Unicode/text()",
                                                namespaces={"p": PAGE_NS})
        assert second == [f"prediction {i}" for i in range(24)]
        assert set(etree.parse(str(target)).xpath("//p:TextLine/p:TextEquiv[@index='2']/@conf",
                                                  namespaces={"p": PAGE_NS})) == {"0.5000"}
        added = "//p:TextLine/p:TextEquiv[@index='2'] | //p:MetadataItem[@name='docvlm']"
        assert canonical(target, added, True) == canonical(source, added, True)  # the ground truth, unchanged
        item = etree.parse(str(target)).find(f"{{{PAGE_NS}}}Metadata/{{{PAGE_NS}}}MetadataItem")
        assert item.get("type") == "processingStep" and item.get("name") == "docvlm"
    else:
        assert sorted(line.text for line in lines) == sorted(text for text, _ in predictions.values())
        step = etree.parse(str(target)).find("{*}Description/{*}OCRProcessing")  # ALTO 2: OCRProcessing
        assert step is not None and step.find("{*}ocrProcessingStep/{*}processingSoftware/{*}softwareName").text \
            == "docvlm"


def test_output_onto_the_inputs_is_refused(tiny_models, tmp_path, capsys):
    pages = tmp_path / "pages"
    write_synthetic_pages(pages, pages=1, lines=1)
    assert main(["predict", str(tiny_models["qwen2_vl"]), str(pages / "page"), "--output", str(pages / "page")]) == 2
    assert "would overwrite the input" in capsys.readouterr().err


def test_malformed_page_is_skipped_and_declaration_kept(tiny_models, tmp_path, capsys):
    pages = tmp_path / "pages"
    write_synthetic_pages(pages, pages=1, lines=1)
    page = pages / "page" / "p0.xml"
    page.write_text(page.read_text().replace('<?xml version="1.0" encoding="UTF-8"?>',
                                             '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'))
    (pages / "page" / "broken.xml").write_text('<PcGts xmlns="x"><Page>', encoding="utf-8")
    (pages / "page" / "empty.xml").write_bytes(b"")  # not XML at all: a malformed skip, never written
    out = tmp_path / "out"
    assert main(["predict", str(tiny_models["qwen2_vl"]), str(pages), "--output", str(out),
                 "--max-new-tokens", "2", "--on-bad-sample", "skip"]) == 0
    printed = capsys.readouterr().out
    assert "2 lines transcribed into 2 files" in printed and "2 malformed files not written" in printed
    assert "malformed_xml: 2" in printed  # the skip count and the files not written agree
    assert not (out / "page" / "empty.xml").exists()
    assert (out / "page" / "p0.xml").read_text().startswith("<?xml version='1.0' encoding='UTF-8' standalone='yes'?>")
    assert not (out / "page" / "broken.xml").exists()


@pytest.mark.parametrize("flags,message", [
    (["--replace"], "--replace goes with PAGE-XML/ALTO inputs"),
    (["--alto-words"], "--alto-words goes with PAGE-XML/ALTO inputs"),
    (["--keep-words"], "--keep-words goes with --replace")])
def test_write_back_flags_without_pages_are_refused(tiny_models, tmp_path, capsys, flags, message):
    image = tmp_path / "line.png"
    Image.new("RGB", (64, 28), "white").save(image)
    out = tmp_path / "p.jsonl"
    assert main(["predict", str(tiny_models["qwen2_vl"]), str(image), "--output", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not out.exists()
