"""PAGE-XML (2013, 2019) and ALTO (v2-v4) pages read into line records.

Every text line becomes a ``Record`` whose image is a ``LineCrop``: the page image path, the
line's bounding box (polygon extent plus ``line_padding``, clipped to the page) and its polygon.
Nothing is decoded at indexing except image headers (for the page size); the crop is cut when the
sample is loaded. Transcriptions are kept exactly as written (right-to-left text and combining
characters included): no stripping, no normalisation.

Conventions:

- A box covers the pixels at the polygon's extreme coordinates: ``(min x, min y, max x + 1,
  max y + 1)``, the ``right``/``bottom`` being exclusive as in PIL.
- The page image is the file the XML names (PAGE ``Page@imageFilename``, ALTO
  ``sourceImageInformation/fileName``), looked up beside the XML file and then in its parent
  folder (Transkribus puts the XML in ``page/`` under the images); the actual image size is used.
- Lines come in reading order: PAGE ``ReadingOrder`` regions first (by ``index``), then regions
  it does not list, in document order; ALTO in document order.
- Splits: a first-level subfolder named like a configured split (``train/``, ``validation/``,
  ``test/``), else a per-file tag (PAGE ``Metadata/UserDefined/UserAttribute name="split"``,
  ALTO ``Tags/OtherTag LABEL="split"``), else a seeded split of whole pages (``split_ratios``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from lxml import etree
from PIL import Image

from docvlm.config import DatasetConfig
from docvlm.data.schema import BadSample, LineCrop, PixelBudget, Record, SkipReport, resolve_inside
from docvlm.data.splits import split_names, units_of_split
from docvlm.errors import DataError

log = logging.getLogger(__name__)

Point = tuple[int, int]


@dataclass
class LayoutLine:
    id: str
    text: str
    polygon: list[Point]
    baseline: list[Point] | None
    region_type: str | None
    language: str | None
    sourceline: int


@dataclass
class LayoutPage:
    xml: Path
    image_name: str
    lines: list[LayoutLine]
    split_tag: str | None


def _local(element) -> str:
    return etree.QName(element).localname


def parse_xml(path: Path) -> etree._Element:
    """The document root; a syntax error names the file and line."""
    try:
        return etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    except etree.XMLSyntaxError as error:
        line = error.lineno if error.lineno is not None else "?"
        raise BadSample("malformed_xml", f"{path}:{line}: not well-formed XML ({error.msg})") from None
    except OSError as error:
        raise BadSample("unreadable_xml", f"{path}: cannot be read ({error})") from None


def parse_points(text: str | None, where: str) -> list[Point]:
    """``"x,y x,y ..."`` (PAGE, ALTO 4) or ``"x y x y ..."`` (ALTO ``POINTS`` variants)."""
    if not text or not text.strip():
        return []
    numbers = text.replace(",", " ").split()
    try:
        values = [round(float(n)) for n in numbers]
    except ValueError:
        raise BadSample("bad_coordinates", f"{where}: coordinates '{text[:60]}' are not numbers") from None
    if len(values) % 2:
        raise BadSample("bad_coordinates", f"{where}: coordinates '{text[:60]}' have an odd count")
    return list(zip(values[0::2], values[1::2]))


# --------------------------------------------------------------------------------------------
# PAGE-XML


def read_page(path: Path, root: etree._Element) -> LayoutPage:
    page = root.find("{*}Page")
    if page is None:
        raise BadSample("bad_layout", f"{path}:{root.sourceline}: PcGts has no Page element")
    regions = _page_regions_in_reading_order(root, page)
    lines = []
    for region in regions:
        region_language = region.get("primaryLanguage")
        for line in region.findall("{*}TextLine"):
            where = f"{path}:{line.sourceline}"
            coords = line.find("{*}Coords")
            baseline = line.find("{*}Baseline")
            lines.append(LayoutLine(
                id=line.get("id") or f"line{len(lines)}", text=_page_text(line),
                polygon=parse_points(coords.get("points") if coords is not None else None, where),
                baseline=parse_points(baseline.get("points"), where) if baseline is not None else None,
                region_type=region.get("type"), language=line.get("primaryLanguage") or region_language,
                sourceline=line.sourceline))
    tag = root.find("{*}Metadata/{*}UserDefined/{*}UserAttribute[@name='split']")
    return LayoutPage(path, page.get("imageFilename") or "", lines, tag.get("value") if tag is not None else None)


def _page_regions_in_reading_order(root, page) -> list:
    regions = list(page.iter("{*}TextRegion"))
    by_id = {region.get("id"): region for region in regions}
    ordered = []
    reading_order = page.find("{*}ReadingOrder")
    if reading_order is not None:
        for ref in _flatten_order(reading_order):
            region = by_id.get(ref)
            if region is not None and region not in ordered:
                ordered.append(region)
    return ordered + [region for region in regions if region not in ordered]


def _flatten_order(group) -> list[str]:
    """Region ids of a (nested) reading-order group, ordered groups sorted by ``index``."""
    children = [child for child in group if isinstance(child.tag, str)]
    if _local(group) == "OrderedGroup" or any(child.get("index") is not None for child in children):
        children.sort(key=lambda child: int(child.get("index", 0)))
    refs = []
    for child in children:
        if child.get("regionRef"):
            refs.append(child.get("regionRef"))
        refs += _flatten_order(child)
    return refs


def _page_text(line) -> str:
    equivs = line.findall("{*}TextEquiv")
    if equivs:
        # Several TextEquivs are alternatives; index 1 (or the first one) is the primary reading.
        equivs.sort(key=lambda e: int(e.get("index", 1)))
        unicode = equivs[0].find("{*}Unicode")
        return unicode.text or "" if unicode is not None else ""
    words = [w.find("{*}TextEquiv/{*}Unicode") for w in line.findall("{*}Word")]
    return " ".join(w.text for w in words if w is not None and w.text)


# --------------------------------------------------------------------------------------------
# ALTO


def read_alto(path: Path, root: etree._Element) -> LayoutPage:
    unit = root.findtext("{*}Description/{*}MeasurementUnit", default="pixel").strip()
    if unit != "pixel":
        raise BadSample("bad_layout", f"{path}: MeasurementUnit '{unit}' is not supported (only pixel)")
    image_name = (root.findtext("{*}Description/{*}sourceImageInformation/{*}fileName") or "").strip()
    lines = []
    for block in root.iter("{*}TextBlock"):
        for line in block.findall("{*}TextLine"):
            where = f"{path}:{line.sourceline}"
            shape = line.find("{*}Shape/{*}Polygon")
            polygon = parse_points(shape.get("POINTS"), where) if shape is not None else _alto_box(line, where)
            lines.append(LayoutLine(
                id=line.get("ID") or f"line{len(lines)}", text=_alto_text(line), polygon=polygon,
                baseline=_alto_baseline(line, polygon, where), region_type=block.get("TYPE") or "TextBlock",
                language=line.get("LANG") or block.get("LANG"), sourceline=line.sourceline))
    tag = root.find("{*}Tags/{*}OtherTag[@LABEL='split']")
    return LayoutPage(path, image_name, lines, tag.get("VALUE") if tag is not None else None)


def _alto_box(line, where: str) -> list[Point]:
    try:
        x, y = float(line.get("HPOS")), float(line.get("VPOS"))
        w, h = float(line.get("WIDTH")), float(line.get("HEIGHT"))
    except (TypeError, ValueError):
        raise BadSample("bad_coordinates", f"{where}: TextLine needs numeric HPOS, VPOS, WIDTH and HEIGHT") from None
    if w <= 0 or h <= 0:
        return [(round(x), round(y))]  # zero area: reported when the crop is made
    # The box covers pixels x .. x + w - 1, so that the crop is exactly w x h.
    right, bottom = round(x + w) - 1, round(y + h) - 1
    return [(round(x), round(y)), (right, round(y)), (right, bottom), (round(x), bottom)]


def _alto_baseline(line, polygon: list[Point], where: str) -> list[Point] | None:
    value = line.get("BASELINE")
    if not value:
        return None
    if " " in value.strip() or "," in value:
        return parse_points(value, where)  # ALTO 4: a polyline
    xs = [x for x, _ in polygon] or [0]
    return [(min(xs), round(float(value))), (max(xs), round(float(value)))]  # ALTO 2/3: one y


def _alto_text(line) -> str:
    parts = []
    for child in line:
        if not isinstance(child.tag, str):
            continue
        name = _local(child)
        if name == "String":
            parts.append(child.get("CONTENT", ""))
        elif name == "SP":
            parts.append(" ")
        elif name == "HYP":
            parts.append(child.get("CONTENT", "-"))
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# Indexing a folder of pages


READERS = {"PcGts": read_page, "alto": read_alto}


def layout_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise DataError(f"layout source not found: {source}")
    files = sorted(source.rglob("*.xml"))
    if not files:
        raise DataError(f"{source}: no .xml files found (PAGE-XML or ALTO)")
    return files


def detect_layout_format(source: Path) -> str | None:
    """``page`` or ``alto`` from the first XML file's root element, or None."""
    for path in layout_files(source)[:20]:
        try:
            name = etree.QName(next(etree.iterparse(str(path), events=("start",)))[1]).localname
        except (etree.XMLSyntaxError, StopIteration, OSError):
            continue
        if name in ("PcGts", "alto"):
            return {"PcGts": "page", "alto": "alto"}[name]
    return None


def index_layout(dataset: DatasetConfig, role_split: str, report: SkipReport, on_bad: str,
                 handle_bad) -> list[Record]:
    source = Path(dataset.source)
    pages = []
    for path in layout_files(source):
        try:
            root = parse_xml(path)
            reader = READERS.get(_local(root))
            if reader is None:
                report.adjusted["not_layout_xml"] += 1  # e.g. a METS file beside the pages
                log.info("%s: not PAGE or ALTO (root <%s>), ignored", path, _local(root))
                continue
            pages.append(reader(path, root))
        except BadSample as bad:
            report.total += 1
            handle_bad(bad, report, on_bad)
    chosen = units_of_split(pages, lambda page: _split_label(page, source, dataset), dataset, role_split)
    records = []
    for page in chosen:
        records += _page_records(page, dataset, source, report, on_bad, handle_bad)
    return records


def _split_label(page: LayoutPage, source: Path, dataset: DatasetConfig) -> str | None:
    if source.is_dir():
        first = page.xml.relative_to(source).parts[0]
        if first in {name for name in split_names(dataset) if name}:
            return first
    return page.split_tag


def _page_records(page: LayoutPage, dataset: DatasetConfig, source: Path, report: SkipReport, on_bad: str,
                  handle_bad) -> list[Record]:
    page_id = str(page.xml.relative_to(source).with_suffix("")) if source.is_dir() else page.xml.stem
    records = []
    size = None
    for line in page.lines:
        report.total += 1
        sample_id = f"{page_id}:{line.id}"
        where = f"{page.xml}:{line.sourceline} (sample '{sample_id}')"
        try:
            if size is None:
                image_path, size = _page_image(page, dataset, source, where)
            records.append(_line_record(line, image_path, size, dataset, sample_id, page_id, where, report))
        except BadSample as bad:
            handle_bad(bad, report, on_bad)
    return records


def _page_image(page: LayoutPage, dataset: DatasetConfig, source: Path, where: str) -> tuple[str, tuple[int, int]]:
    if not page.image_name:
        raise BadSample("missing_image", f"{where}: the XML names no page image")
    root = source if source.is_dir() else source.parent
    name = page.image_name
    candidates = [page.xml.parent / name, page.xml.parent / Path(name).name, page.xml.parent.parent / Path(name).name]
    found = next((c for c in candidates if c.is_file()), candidates[0])
    path = resolve_inside(root, str(found.resolve()), f"{where}: page image", dataset.allow_outside_root)
    try:
        with Image.open(path) as image:
            return str(path), image.size
    except FileNotFoundError:
        raise BadSample("missing_image", f"{where}: page image '{name}' not found (looked beside the XML "
                                         "and in its parent folder)") from None
    except Image.DecompressionBombError as error:
        raise BadSample("decompression_bomb", f"{where}: page image {path} too large to decode safely ({error})") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise BadSample("unreadable_image", f"{where}: page image {path} cannot be read ({error})") from None


def _line_record(line: LayoutLine, image_path: str, size: tuple[int, int], dataset: DatasetConfig,
                 sample_id: str, page_id: str, where: str, report: SkipReport) -> Record:
    if not line.text.strip():
        raise BadSample("empty_target", f"{where}: the line has no transcription")
    if not line.polygon:
        raise BadSample("bad_coordinates", f"{where}: the line has no coordinates")
    box, clipped = line_box(line.polygon, size, dataset.line_padding)
    if box is None:
        raise BadSample("zero_area", f"{where}: the line has zero area (or lies outside the page)")
    if clipped:
        report.adjusted["polygon_clipped"] += 1
        log.info("%s: polygon clipped to the page", where)
    polygon = tuple((min(max(x, 0), size[0] - 1), min(max(y, 0), size[1] - 1)) for x, y in line.polygon)
    crop = LineCrop(page=image_path, box=box, polygon=polygon, mask=dataset.mask_polygon,
                    baseline=tuple(line.baseline) if line.baseline else None, region_type=line.region_type)
    return Record(id=sample_id, target=line.text, image_ref=crop, prompt=dataset.prompt, dataset=dataset.name,
                  task=dataset.task, budget=PixelBudget(dataset.min_pixels, dataset.max_pixels),
                  group=page_id, language=line.language, where=where)


def line_box(polygon: list[Point], size: tuple[int, int], padding: int) -> tuple[tuple[int, int, int, int] | None, bool]:
    """The padded crop box of a polygon clipped to the page, and whether the polygon left the page."""
    xs, ys = [x for x, _ in polygon], [y for _, y in polygon]
    width, height = size
    clipped = min(xs) < 0 or min(ys) < 0 or max(xs) >= width or max(ys) >= height
    if max(xs) == min(xs) or max(ys) == min(ys):
        return None, clipped
    left, top = max(min(xs) - padding, 0), max(min(ys) - padding, 0)
    right, bottom = min(max(xs) + 1 + padding, width), min(max(ys) + 1 + padding, height)
    if right <= left or bottom <= top:
        return None, clipped
    return (left, top, right, bottom), clipped
