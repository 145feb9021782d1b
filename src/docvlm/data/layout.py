"""PAGE-XML (2010-2019) and ALTO (v1-v4) pages read into line records.

Every text line becomes a ``Record`` whose image is a ``LineCrop``: the page image path, the
line's bounding box (polygon extent plus ``line_padding``, clipped to the page) and its polygon.
Nothing is decoded at indexing except image headers (for the page size); the crop is cut when the
sample is loaded. Transcriptions are kept exactly as written (right-to-left text and combining
characters included): no stripping, no normalisation.

Conventions:

- A box covers the pixels at the polygon's extreme coordinates: ``(min x, min y, max x + 1,
  max y + 1)``, the ``right``/``bottom`` being exclusive as in PIL.
- The page image is the file the XML names (PAGE ``Page@imageFilename``, ALTO
  ``sourceImageInformation/fileName``), resolved relative to the XML's folder and then to each
  folder above it up to the dataset root (an OCR-D workspace names ``OCR-D-IMG/INPUT_0017.tif``
  from ``OCR-D-GT-PAGE/``), then by its bare name beside the XML and in its parent folder
  (Transkribus puts the XML in ``page/`` under the images). A file that names no image (ALTO's
  ``fileName`` is optional; ABBYY and converters omit it), or names one that is not there (a
  URL, a path on the producer's server), uses the image beside it with the same stem and any
  image suffix. Last, in a dataset folder, the named (or same-stem) image is looked for in the
  folders beside the XML's own (HTR-United datasets keep ``page/``, ``alto/`` and ``images/`` side
  by side); found in two of them, it is an ``ambiguous_image`` error. The actual image size is used. For a single XML file the dataset root
  is the folder above the XML's folder (the workspace root in both layouts).
- Every ``TextLine`` of a file is read, wherever it sits: in a ``TextRegion``, in a region nested
  in another region, in a Transkribus ``TableRegion/TableCell``. A line that cannot be used is a
  counted skip with its reason, never dropped silently. A ``TextRegion`` with text but no
  ``TextLine`` (region-level ground truth) is counted as a ``region_without_lines`` skip, in
  every ``on_bad_sample`` mode (it is not a line docvlm could make a sample of).
- Lines come in reading order: PAGE ``ReadingOrder`` regions first (by ``index``; a line belongs to
  the innermost listed region that contains it), then lines of regions it does not list, in
  document order; lines of a table cell by the cell's ``row``, then ``col``. ALTO: document order.
- Coordinates: PAGE ``points`` attributes, or ``Point`` children (PAGE 2010). A ``TextLine`` whose
  ``Coords`` are a placeholder (a point or one pixel: Aletheia's ``tempLine``, ``0,0 1,0 1,1 0,1``,
  holding Words outside any line) is cut around its ``Word``s, counted as ``line_box_from_words``.
  ALTO in pixels, or in ``mm10``/``inch1200`` scaled to the page image by its size over the ``Page``'s
  ``WIDTH``/``HEIGHT`` (ALTO 1 and ABBYY-made files such as the Library of Congress' newspapers).
- ALTO text: ``String@CONTENT``, ``SP`` as a space, ``HYP@CONTENT``. Many converters write no
  ``SP`` at all; in a line without any ``SP`` a space is put between two ``String``s unless their
  boxes touch or overlap by less than half the narrower box (``HPOS``/``WIDTH``; boxes that
  coincide carry no word positions and are spaced), as the line would read with explicit ``SP``.
- Files: ``*.xml`` and ``*.alto`` below a folder; ``format: page`` / ``alto`` reads only files of
  that format. Files not read (other suffixes, METS, the other format) are listed with the reason
  in the skip report (``unread_files``), which ``data check`` shows.
- Inference mode (``docvlm predict`` on pages): lines without text are kept, every page is read
  whatever its split, and each record carries a ``SourceRef`` (file, line index, element id) so
  that the prediction can be written back.
- Splits: a first-level subfolder named like a configured split (``train/``, ``validation/``,
  ``test/``), else a per-file tag (PAGE ``Metadata/UserDefined/UserAttribute name="split"``,
  ALTO ``Tags/OtherTag LABEL="split"``), else a seeded split of whole pages (``split_ratios``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from lxml import etree
from PIL import Image

from docvlm.config import DatasetConfig
from docvlm.data.schema import BadSample, LineCrop, PixelBudget, Record, SkipReport, SourceRef, resolve_inside
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
    index: int = 0
    """Position among all ``TextLine`` elements of the file (document order)."""
    extent: bool = False
    """The polygon is an ALTO box given as its outer corners ``(HPOS, VPOS)``, ``(HPOS + WIDTH,
    VPOS + HEIGHT)`` in a non-pixel unit; the last pixel is taken off once scaled to pixels."""
    from_words: bool = False
    """PAGE: the line's own ``Coords`` are a placeholder (a single point or pixel) and the
    polygon is the box around its ``Word``s (counted as ``line_box_from_words``)."""


@dataclass
class LayoutPage:
    xml: Path
    image_name: str
    lines: list[LayoutLine]
    split_tag: str | None
    unit_extent: tuple[float, float] | None = None
    """ALTO in ``mm10``/``inch1200``: the page's ``WIDTH``/``HEIGHT`` in that unit; coordinates
    are scaled to pixels by the page image's size over this extent. None: pixels."""
    lineless_regions: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    """PAGE ``TextRegion``s (id, source line) whose text is not in any ``TextLine``: region-level
    ground truth, which cannot be cut into line images; counted as skips, never fatal."""


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
    order = {ref: rank for rank, ref in enumerate(dict.fromkeys(_flatten_order(page.find("{*}ReadingOrder"), path)))}
    position = {element: number for number, element in enumerate(page.iter())}
    keyed = []
    for index, line in enumerate(page.iter("{*}TextLine")):
        owners = _owners(line)
        listed = next((o for o in owners if o.get("id") in order), None)
        # The anchor orders lines of unlisted regions among themselves: the outermost region.
        anchor = listed if listed is not None else (owners[-1] if owners else line)
        key = (order[listed.get("id")] if listed is not None else len(order), position[anchor],
               _cell_position(owners), index)
        keyed.append((key, _page_line(path, line, owners, index)))
    lines = [line for _, line in sorted(keyed, key=lambda pair: pair[0])]
    tag = root.find("{*}Metadata/{*}UserDefined/{*}UserAttribute[@name='split']")
    lineless = [(region.get("id") or "?", region.sourceline) for region in page.iter("{*}TextRegion")
                if region.find(".//{*}TextLine") is None and (region.findtext("{*}TextEquiv/{*}Unicode") or "").strip()]
    return LayoutPage(path, page.get("imageFilename") or "", lines, tag.get("value") if tag is not None else None,
                      lineless_regions=lineless)


def _owners(line) -> list:
    """The regions (and table cells) that contain a line, innermost first, up to ``Page``."""
    owners = []
    for ancestor in line.iterancestors():
        name = _local(ancestor)
        if name == "Page":
            break
        if name.endswith("Region") or name == "TableCell":
            owners.append(ancestor)
    return owners


def _cell_position(owners: list) -> tuple[int, int]:
    cell = next((o for o in owners if _local(o) == "TableCell"), None)
    if cell is None:
        return (-1, -1)
    try:
        return int(cell.get("row", -1)), int(cell.get("col", -1))
    except ValueError:
        return (-1, -1)


def _page_line(path: Path, line, owners: list, index: int) -> LayoutLine:
    where = f"{path}:{line.sourceline}"
    coords = line.find("{*}Coords")
    baseline = line.find("{*}Baseline")
    region = next((o for o in owners if _local(o).endswith("Region")), None)
    region_type = None
    if region is not None:
        region_type = region.get("type") or (None if _local(region) == "TextRegion" else _local(region))
    language = line.get("primaryLanguage") or next(
        (o.get("primaryLanguage") for o in owners if o.get("primaryLanguage")), None)
    polygon = _page_points(coords, where)
    words = _words_box(line, where) if _placeholder(polygon) else None
    return LayoutLine(
        id=line.get("id") or f"line{index}", text=_page_text(line, path),
        polygon=words or polygon,
        baseline=_page_points(baseline, where) if baseline is not None else None,
        region_type=region_type, language=language, sourceline=line.sourceline, index=index,
        from_words=bool(words))


def _placeholder(polygon: list[Point]) -> bool:
    """Coords that outline no line: a point, or Aletheia's ``0,0 1,0 1,1 0,1`` on the ``tempLine``
    it makes to hold Words that belong to no line (Transkribus files carry them too)."""
    if not polygon:
        return False
    xs, ys = [x for x, _ in polygon], [y for _, y in polygon]
    return max(xs) - min(xs) <= 1 and max(ys) - min(ys) <= 1


def _words_box(line, where: str) -> list[Point] | None:
    """The box around a line's ``Word`` outlines; None without any."""
    points = [p for word in line.findall("{*}Word") for p in _page_points(word.find("{*}Coords"), where)]
    if not points:
        return None
    xs, ys = [x for x, _ in points], [y for _, y in points]
    return [(min(xs), min(ys)), (max(xs), min(ys)), (max(xs), max(ys)), (min(xs), max(ys))]


def _page_points(element, where: str) -> list[Point]:
    """A ``Coords``/``Baseline`` outline: the ``points`` attribute (PAGE 2013 and later) or, in
    PAGE 2010 (``2010-01-12``, ``2010-03-19``), ``Point x= y=`` children."""
    if element is None:
        return []
    if element.get("points") is not None:
        return parse_points(element.get("points"), where)
    points = element.findall("{*}Point")
    text = " ".join(f"{point.get('x')},{point.get('y')}" for point in points)
    return parse_points(text, f"{where}: Point") if points else []


def _flatten_order(group, path: Path) -> list[str]:
    """Region ids of a (nested) reading-order group, ordered groups sorted by ``index``."""
    if group is None:
        return []
    children = [child for child in group if isinstance(child.tag, str)]
    if _local(group) == "OrderedGroup" or any(child.get("index") is not None for child in children):
        children.sort(key=lambda child: _index(child, 0, path))
    refs = []
    for child in children:
        if child.get("regionRef"):
            refs.append(child.get("regionRef"))
        refs += _flatten_order(child, path)
    return refs


def _index(element, default: int, path: Path) -> int:
    """An ``index`` attribute (a PAGE integer); anything else is an error naming file and line."""
    value = element.get("index")
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise BadSample("bad_layout", f"{path}:{element.sourceline}: {_local(element)} index '{value}' "
                                      "is not an integer") from None


def primary_equiv(element, path: Path | None = None):
    """The element's primary ``TextEquiv`` among its alternatives (None when it has none).

    PAGE says only that the lowest ``index`` is the main reading; ``index`` is optional. The rule
    for the rest is dinglehopper's (qurator-spk/dinglehopper ``extracted_text.get_first_textequiv``), so
    that docvlm and the evaluation tool read the same text: when any alternative has an ``index``,
    the lowest index among those that have one (alternatives without one are passed over); when
    none has an index, the highest ``conf``; otherwise the first. Ties go to the earliest."""
    equivs = element.findall("{*}TextEquiv")
    if len(equivs) <= 1:
        return equivs[0] if equivs else None
    indexed = [e for e in equivs if e.get("index") is not None]
    if indexed:
        return min(indexed, key=lambda e: _index(e, 0, path or Path("?")))
    confident = [(conf, e) for e in equivs if (conf := _conf(e)) is not None]
    if confident:
        best = max(conf for conf, _ in confident)
        return next(e for conf, e in confident if conf == best)
    return equivs[0]


def _conf(equiv) -> float | None:
    """A ``conf`` attribute as a number; absent, unreadable or NaN: None (no confidence given)."""
    try:
        value = float(equiv.get("conf"))
    except (TypeError, ValueError):
        return None
    return None if value != value else value


def _page_text(line, path: Path) -> str:
    if line.find("{*}TextEquiv") is not None:
        unicode = primary_equiv(line, path).find("{*}Unicode")
        return unicode.text or "" if unicode is not None else ""
    return words_text(line, path)


def words_text(line, path: Path | None = None) -> str:
    """A ``TextLine``'s ``Word``s' primary readings joined by spaces: the line's text when the line
    itself has no ``TextEquiv`` (the write-back treats it as the line's ground truth too)."""
    texts = []
    for word in line.findall("{*}Word"):
        equiv = primary_equiv(word, path)
        unicode = equiv.find("{*}Unicode") if equiv is not None else None
        if unicode is not None and unicode.text:
            texts.append(unicode.text)
    return " ".join(texts)


# --------------------------------------------------------------------------------------------
# ALTO


def read_alto(path: Path, root: etree._Element) -> LayoutPage:
    unit = (root.findtext("{*}Description/{*}MeasurementUnit") or "pixel").strip()
    extent = _unit_extent(path, root, unit)
    image_name = (root.findtext("{*}Description/{*}sourceImageInformation/{*}fileName") or "").strip()
    lines = []
    for index, line in enumerate(root.iter("{*}TextLine")):
        block = line.getparent()
        where = f"{path}:{line.sourceline}"
        shape = line.find("{*}Shape/{*}Polygon")
        polygon = (parse_points(shape.get("POINTS"), where) if shape is not None
                   else _alto_box(line, where, outer=extent is not None))
        lines.append(LayoutLine(
            id=line.get("ID") or f"line{index}", text=_alto_text(line), polygon=polygon,
            baseline=_alto_baseline(line, polygon, where), region_type=block.get("TYPE") or _local(block),
            language=line.get("LANG") or block.get("LANG"), sourceline=line.sourceline, index=index,
            extent=shape is None and extent is not None))
    tag = root.find("{*}Tags/{*}OtherTag[@LABEL='split']")
    return LayoutPage(path, image_name, lines, tag.get("VALUE") if tag is not None else None, extent)


def _unit_extent(path: Path, root, unit: str) -> tuple[float, float] | None:
    """None for ``pixel``; for ``mm10``/``inch1200`` (ALTO 1 and ABBYY-made files, e.g. the
    Library of Congress' newspaper ALTO) the first ``Page``'s ``WIDTH``/``HEIGHT``, which span the
    page image: the scale to pixels needs no resolution from the image's metadata."""
    if unit == "pixel":
        return None
    if unit not in ("mm10", "inch1200"):
        raise BadSample("bad_layout", f"{path}: MeasurementUnit '{unit}' is not an ALTO unit (pixel, mm10, inch1200)")
    page = root.find("{*}Layout/{*}Page")
    try:
        width, height = float(page.get("WIDTH")), float(page.get("HEIGHT"))
    except (AttributeError, TypeError, ValueError):
        width = height = 0.0
    if width <= 0 or height <= 0:
        raise BadSample("bad_layout", f"{path}: MeasurementUnit '{unit}' needs the Page's WIDTH and HEIGHT "
                                      "to scale coordinates to the page image")
    return width, height


def _alto_box(line, where: str, outer: bool = False) -> list[Point]:
    try:
        x, y = float(line.get("HPOS")), float(line.get("VPOS"))
        w, h = float(line.get("WIDTH")), float(line.get("HEIGHT"))
    except (TypeError, ValueError):
        raise BadSample("bad_coordinates", f"{where}: TextLine needs numeric HPOS, VPOS, WIDTH and HEIGHT") from None
    if w <= 0 or h <= 0:
        return [(round(x), round(y))]  # zero area: reported when the crop is made
    if outer:  # a non-pixel unit: the outer corners, scaled to pixels before the last pixel goes
        return [(round(x), round(y)), (round(x + w), round(y)), (round(x + w), round(y + h)), (round(x), round(y + h))]
    # The box covers pixels x .. x + w - 1, so that the crop is exactly w x h.
    right, bottom = round(x + w) - 1, round(y + h) - 1
    return [(round(x), round(y)), (right, round(y)), (right, bottom), (round(x), bottom)]


def _alto_baseline(line, polygon: list[Point], where: str) -> list[Point] | None:
    value = line.get("BASELINE")
    if not value:
        return None
    if " " in value.strip() or "," in value:
        return parse_points(value, where)  # ALTO 4: a polyline
    try:
        y = round(float(value))
    except ValueError:
        raise BadSample("bad_coordinates", f"{where}: TextLine BASELINE '{value[:60]}' is not a number") from None
    xs = [x for x, _ in polygon] or [0]
    return [(min(xs), y), (max(xs), y)]  # ALTO 2/3: one y


def _alto_text(line) -> str:
    """The line's text; without any ``SP`` in the line, words are spaced by their geometry."""
    children = [child for child in line if isinstance(child.tag, str)]
    spaced = any(_local(child) == "SP" for child in children)
    parts, previous = [], None
    for child in children:
        name = _local(child)
        if name == "String":
            if previous is not None and not spaced and _apart(previous, child):
                parts.append(" ")
            parts.append(child.get("CONTENT", ""))
            previous = child
        elif name == "SP":
            parts.append(" ")
            previous = None
        elif name == "HYP":
            parts.append(child.get("CONTENT", "-"))
            previous = None
    return "".join(parts)


def _apart(first, second) -> bool:
    """Whether two Strings read as two words. Joined only when their boxes touch or overlap by
    less than half the narrower one (a word and its punctuation, in either direction for RTL);
    spaced when there is a gap, when a box is missing, and when the boxes mostly coincide:
    eScriptorium gives every String of a line the line's own box, i.e. no word positions."""
    try:
        x1, w1 = float(first.get("HPOS")), float(first.get("WIDTH"))
        x2, w2 = float(second.get("HPOS")), float(second.get("WIDTH"))
    except (TypeError, ValueError):
        return True
    gap = max(x2 - (x1 + w1), x1 - (x2 + w2))
    return gap > 0 or -gap >= 0.5 * min(w1, w2)


# --------------------------------------------------------------------------------------------
# Indexing a folder of pages


READERS = {"PcGts": read_page, "alto": read_alto}
FORMAT_OF_ROOT = {"PcGts": "page", "alto": "alto"}
LAYOUT_SUFFIXES = (".xml", ".alto")
IMAGE_SUFFIXES = (".tif", ".tiff", ".jpg", ".jpeg", ".png", ".jp2", ".j2k", ".jpx", ".bmp", ".gif", ".webp")
FORMAT_NAMES = {"page": "PAGE-XML", "alto": "ALTO"}


def layout_files(source: Path, report: SkipReport | None = None) -> list[Path]:
    """The ``.xml`` and ``.alto`` files of a source (recursive); other files (images aside) are
    listed in ``report.unread_files`` with the reason."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise DataError(f"layout source not found: {source}")
    files = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        suffix = path.suffix.lower()
        if suffix in LAYOUT_SUFFIXES:
            files.append(path)
        elif suffix not in IMAGE_SUFFIXES and report is not None:
            report.unread_files[str(path.relative_to(source))] = \
                f"suffix '{path.suffix}' is not a layout file ({', '.join(LAYOUT_SUFFIXES)})"
    if not files:
        raise DataError(f"{source}: no .xml or .alto files found (PAGE-XML or ALTO)")
    return files


def root_name(path: Path) -> str | None:
    """The local name of a file's root element, reading only its start; None if it is not XML."""
    try:
        return etree.QName(next(etree.iterparse(str(path), events=("start",)))[1]).localname
    except (etree.XMLSyntaxError, StopIteration, OSError):
        return None


def detect_layout_formats(source: Path) -> set[str]:
    """``{"page"}``, ``{"alto"}``, both, or none, from the root element of every layout file."""
    return {FORMAT_OF_ROOT[name] for name in map(root_name, layout_files(source)) if name in FORMAT_OF_ROOT}


def detect_layout_format(source: Path) -> str | None:
    """``page`` or ``alto``; None when no file is either; an error when a folder holds both."""
    found = detect_layout_formats(source)
    if len(found) > 1:
        raise DataError(f"{source} holds both PAGE-XML and ALTO files (kraken writes them side by side); "
                        "set format: page or format: alto for this dataset")
    return next(iter(found), None)


def read_layout_files(source: Path, fmt: str | None, report: SkipReport, on_bad: str,
                      handle_bad) -> list[LayoutPage]:
    """Every page of ``fmt`` (``page``/``alto``; None: both) under ``source``."""
    pages = []
    for path in layout_files(source, report):
        name = str(path.relative_to(source)) if source.is_dir() else path.name
        try:
            root = parse_xml(path)
            found = FORMAT_OF_ROOT.get(_local(root))
            if found is None:
                report.adjusted["not_layout_xml"] += 1  # e.g. a METS file beside the pages
                report.unread_files[name] = f"not PAGE-XML or ALTO (root element <{_local(root)}>)"
                continue
            if fmt is not None and found != fmt:
                report.unread_files[name] = f"{FORMAT_NAMES[found]} file; format: {fmt} reads {FORMAT_NAMES[fmt]} only"
                continue
            pages.append(READERS[_local(root)](path, root))
        except BadSample as bad:
            report.total += 1
            report.unread_files[name] = f"{bad.reason}: {bad}"
            handle_bad(bad, report, on_bad)
    return pages


def index_layout(dataset: DatasetConfig, role_split: str, report: SkipReport, on_bad: str,
                 handle_bad, fmt: str | None = None) -> list[Record]:
    source = Path(dataset.source)
    pages = read_layout_files(source, fmt, report, on_bad, handle_bad)
    chosen = units_of_split(pages, lambda page: _split_label(page, source, dataset), dataset, role_split)
    records = []
    for page in chosen:
        records += _page_records(page, dataset, source, report, on_bad, handle_bad)
    return records


def index_layout_for_inference(source: Path, dataset: DatasetConfig, report: SkipReport, on_bad: str,
                               handle_bad) -> list[Record]:
    """Every line of every PAGE/ALTO file under ``source``, lines without text included, each with
    its ``SourceRef``; splits are ignored."""
    records = []
    for page in read_layout_files(source, None, report, on_bad, handle_bad):
        records += _page_records(page, dataset, source, report, on_bad, handle_bad, inference=True)
    return records


def _split_label(page: LayoutPage, source: Path, dataset: DatasetConfig) -> str | None:
    if source.is_dir():
        first = page.xml.relative_to(source).parts[0]
        if first in {name for name in split_names(dataset) if name}:
            return first
    return page.split_tag


def _page_records(page: LayoutPage, dataset: DatasetConfig, source: Path, report: SkipReport, on_bad: str,
                  handle_bad, inference: bool = False) -> list[Record]:
    page_id = str(page.xml.relative_to(source).with_suffix("")) if source.is_dir() else page.xml.stem
    root = source if source.is_dir() else source.parent
    records, seen = [], set()
    size = None
    for region, sourceline in page.lineless_regions:
        # Not a line docvlm could use, but text the user may expect to train on: say so.
        report.total += 1
        report.skip("region_without_lines", f"{page.xml}:{sourceline}: TextRegion '{region}' has text but no "
                                            "TextLine (region-level text cannot be cut into a line image)")
        log.warning("%s:%s: TextRegion '%s' has text but no TextLine; not read", page.xml, sourceline, region)
    for line in page.lines:
        report.total += 1
        sample_id = f"{page_id}:{line.id}"
        if inference and sample_id in seen:  # ids must be unique to write each prediction back
            sample_id = f"{sample_id}@{line.index}"
        seen.add(sample_id)
        where = f"{page.xml}:{line.sourceline} (sample '{sample_id}')"
        try:
            if size is None:
                image_path, size = _page_image(page, dataset, source, where)
            if page.unit_extent is not None:
                line = _to_pixels(line, page.unit_extent, size)
            if line.from_words:
                report.adjusted["line_box_from_words"] += 1
                log.info("%s: the line's Coords are a placeholder; cut around its Words", where)
            record = _line_record(line, image_path, size, dataset, sample_id, page_id, where, report, inference)
            if inference:
                record.source = SourceRef(str(page.xml), line.index, line.id, str(root))
            records.append(record)
        except BadSample as bad:
            handle_bad(bad, report, on_bad)
    return records


def _to_pixels(line: LayoutLine, extent: tuple[float, float], size: tuple[int, int]) -> LayoutLine:
    """A line in ``mm10``/``inch1200`` coordinates scaled to the page image's pixels."""
    sx, sy = size[0] / extent[0], size[1] / extent[1]

    def scale(points):
        return [(round(x * sx), round(y * sy)) for x, y in points] if points else points

    polygon = scale(line.polygon)
    if line.extent and len(polygon) == 4:  # outer corners -> last pixel inside (as for pixel boxes)
        (left, top), (right, bottom) = polygon[0], polygon[2]
        right, bottom = max(right - 1, left), max(bottom - 1, top)
        polygon = [(left, top), (right, top), (right, bottom), (left, bottom)]
        # An ALTO 2/3 BASELINE spans the box: it ends on the same last pixel.
        baseline = [(min(max(x, left), right), y) for x, y in scale(line.baseline)] if line.baseline else None
        return dataclasses.replace(line, polygon=polygon, baseline=baseline, extent=False)
    return dataclasses.replace(line, polygon=polygon, baseline=scale(line.baseline), extent=False)


def _search_root(source: Path) -> Path:
    # A single XML file: the folder above its own (an OCR-D workspace or a Transkribus export).
    return source if source.is_dir() else source.resolve().parent.parent


def _image_candidates(page: LayoutPage, root: Path) -> list[Path]:
    """Where the named page image may be: relative to the XML's folder and each folder above it up
    to ``root``, then its bare name beside the XML and in the XML's parent folder."""
    name = page.image_name
    if name.startswith("file://"):
        name = name[len("file://"):]
    name = name.replace("\\", "/")
    folder = page.xml.resolve().parent
    folders = [folder]
    for parent in folder.parents:
        if not parent.is_relative_to(root.resolve()):
            break
        folders.append(parent)
    bare = Path(name).name
    candidates = [f / name for f in folders] + [folder / bare, folder.parent / bare]
    return list(dict.fromkeys(candidates))


def _same_stem_images(xml: Path) -> list[Path]:
    return [xml.with_suffix(suffix) for suffix in IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES)]


def _sibling_image(page: LayoutPage, names: list[str], source: Path, where: str) -> Path | None:
    """One of ``names`` in a folder beside the XML's own: HTR-United datasets keep ``page/``,
    ``alto/`` and ``images/`` side by side. Only inside a dataset folder (``source``), so that no
    unrelated folder is searched. Found in two such folders (``images/`` and ``thumbs/``), which
    one is meant is unknown: an error naming both."""
    folder = page.xml.resolve().parent
    if not source.is_dir() or folder == source.resolve() or not folder.is_relative_to(source.resolve()):
        return None
    try:
        siblings = sorted(p for p in folder.parent.iterdir() if p.is_dir() and p != folder)
    except OSError:
        return None
    found = [sibling / name for sibling in siblings for name in dict.fromkeys(names) if (sibling / name).is_file()]
    if len(found) > 1:
        raise BadSample("ambiguous_image", f"{where}: the page image is in several folders beside the XML's "
                                           f"({', '.join(str(f) for f in found[:3])}); keep one of them")
    return found[0] if found else None


def _page_image(page: LayoutPage, dataset: DatasetConfig, source: Path, where: str) -> tuple[str, tuple[int, int]]:
    root = _search_root(source)
    stems = [image.name for image in _same_stem_images(page.xml)]
    if page.image_name:
        candidates = _image_candidates(page, root) + _same_stem_images(page.xml)
        found = next((c for c in candidates if c.is_file()), None) or _sibling_image(
            page, [Path(page.image_name.replace("\\", "/")).name] + stems, source, where)
        if found is None:
            raise BadSample("missing_image", f"{where}: page image '{page.image_name}' not found (looked beside "
                                             f"the XML and in the folders above it up to {root}, then for the bare "
                                             "name beside the XML and in its parent folder, then for an image "
                                             f"with the XML's name: {page.xml.stem}.tif, .png, .jpg, ..., then "
                                             "for both in the folders beside the XML's)")
    else:
        found = next((c for c in _same_stem_images(page.xml) if c.is_file()), None) or _sibling_image(
            page, stems, source, where)
        if found is None:
            raise BadSample("missing_image", f"{where}: the XML names no page image and no image with the same "
                                             f"name lies beside it or in a folder beside its own "
                                             f"({page.xml.stem}.tif, .png, .jpg, ...)")
    path = resolve_inside(root, str(found.resolve()), f"{where}: page image", dataset.allow_outside_root)
    try:
        with Image.open(path) as image:
            return str(path), image.size
    except FileNotFoundError:
        raise BadSample("missing_image", f"{where}: page image {path} not found") from None
    except Image.DecompressionBombError as error:
        raise BadSample("decompression_bomb", f"{where}: page image {path} too large to decode safely ({error})") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise BadSample("unreadable_image", f"{where}: page image {path} cannot be read ({error})") from None


def _line_record(line: LayoutLine, image_path: str, size: tuple[int, int], dataset: DatasetConfig,
                 sample_id: str, page_id: str, where: str, report: SkipReport, inference: bool = False) -> Record:
    if not inference and not line.text.strip():
        raise BadSample("empty_target", f"{where}: the line has no transcription")
    if not line.polygon:
        raise BadSample("bad_coordinates", f"{where}: the line has no coordinates")
    box, clipped = line_box(line.polygon, size, dataset.line_padding)
    if box is None:
        raise BadSample("zero_area", f"{where}: the line has zero area (its outline is a point or a line: no "
                                     "width or no height, e.g. an ALTO WIDTH of 1; or it lies outside the page)")
    if clipped:
        report.adjusted["polygon_clipped"] += 1
        log.info("%s: polygon clipped to the page", where)
    polygon = tuple((min(max(x, 0), size[0] - 1), min(max(y, 0), size[1] - 1)) for x, y in line.polygon)
    crop = LineCrop(page=image_path, box=box, polygon=polygon, mask=dataset.mask_polygon,
                    baseline=tuple(line.baseline) if line.baseline else None, region_type=line.region_type)
    return Record(id=sample_id, target=line.text, image_ref=crop, prompt=dataset.prompt_for(), dataset=dataset.name,
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
