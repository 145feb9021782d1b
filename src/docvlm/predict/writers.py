"""``docvlm predict`` on segmented pages: PAGE-XML / ALTO in, the same files out with the predictions.

The pages are read by the training readers (``data/layout.py``) in inference mode: lines without
text are kept, each record knows its file and ``TextLine``. Lines are cut as training cut them
(the run's ``line_padding``, ``mask_polygon`` and pixel budget), transcribed in batches by
``predict_samples``, and each XML is copied to the output folder under its own relative path with
the prediction filled in:

- PAGE: a ``TextEquiv/Unicode`` in the ``TextLine``, placed where the PAGE schema wants it (after
  ``Coords``, ``Baseline``, ``Word``s and existing ``TextEquiv``s; before ``TextStyle``,
  ``UserDefined``, ``Labels``). A line that already has text (ground truth) keeps it: the
  prediction is added as a further ``TextEquiv`` with the next ``index`` (``--replace`` drops the
  old ones instead). PAGE before 2016-07-15 allows one ``TextEquiv`` per line and no ``index``
  (Transkribus still writes 2013): there a line with text is left as it is unless ``--replace``,
  as in ALTO; PAGE 2010 also wants ``PlainText`` before ``Unicode`` and has no ``conf``. A line
  whose text is only in its ``Word``s (read as its text) counts as a line with text; from PAGE
  2016 on that text is first written as the line's ``TextEquiv`` (index 1), so it stays primary. A
  ``Metadata/MetadataItem type="processingStep" name="docvlm"`` records the model and the date
  (PAGE 2018 and later; older files have no ``MetadataItem``).
  The levels around the line are kept consistent with it, as OCR-D's line recognisers do:
  ``--replace`` removes the replaced line's ``Word``s (their text and boxes described the old
  reading; ``--keep-words`` keeps them as they were), and a ``TextRegion`` one of whose lines got a
  new primary reading gets the region-level ``TextEquiv`` recomputed: its lines' primary readings
  joined by newlines (created when the region had none, before ``TextStyle``; its ``conf`` dropped).
  Tools that read the region level (dinglehopper's default ``--textequiv-level region``) then see
  the predictions, not the old text or nothing. A region whose text is its own rather than its
  lines' readings joined (region-level ground truth, e.g. a Transkribus region transcribed while
  its lines are not) is left alone unless ``--replace``, as a line with text is.
- ALTO: the line's ``String``/``SP``/``HYP`` children are replaced by one ``String`` holding the
  prediction, with the line's box (``--alto-words``: one ``String`` per word with ``SP`` between and
  no box, since docvlm knows no word positions). ALTO has no place for a second reading of a line,
  so a line that already has text is left as it is unless ``--replace``. A
  ``Description/Processing`` (``OCRProcessing`` in ALTO 2) records the model and the date.

Only these change in a file (line and region text, the replaced lines' ``Word``s, the
metadata), and the input files are never written: an output path that is
an input file is refused. ``predictions.jsonl`` beside the XML files holds one row per line
(``xml``, ``line_id``, ``line_index``, ``confidence`` added to the usual row).

Confidence (PAGE ``TextEquiv@conf``, ALTO ``String@WC`` of a one-String line, ``confidence`` in the
JSONL): the model's geometric-mean probability of the written text's tokens, end-of-turn token
included, scored by one teacher-forced forward pass over the line image and prompt (a prediction
cut off by ``max_new_tokens`` therefore scores low: the model had not finished).
"""

from __future__ import annotations

import datetime
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from docvlm.config import DatasetConfig
from docvlm.data.layout import (FORMAT_OF_ROOT, LAYOUT_SUFFIXES, index_layout_for_inference, layout_files,
                                primary_equiv, root_name, words_text)
from docvlm.data.schema import BadSample, PixelBudget, SkipReport
from docvlm.data.sources import SampleSet
from docvlm.errors import DataError
from docvlm.files import atomic_path
from docvlm.models.loading import Loaded

log = logging.getLogger(__name__)

SOFTWARE = "docvlm"
# PAGE TextLine children that must come before a TextEquiv (PAGE 2013-2019 TextLineType).
PAGE_BEFORE_TEXTEQUIV = {"AlternativeImage", "Coords", "Baseline", "Word", "TextEquiv"}
ALTO_TEXT = {"String", "SP", "HYP"}
ALTO_DESCRIPTION_ORDER = ("MeasurementUnit", "sourceImageInformation", "OCRProcessing", "Processing")


@dataclass
class WriteOptions:
    replace: bool = False
    """Overwrite existing line text (PAGE TextEquivs, ALTO Strings) instead of keeping it."""
    alto_words: bool = False
    """ALTO: one String per word with SP between, instead of one String per line."""
    keep_words: bool = False
    """PAGE with ``replace``: keep a replaced line's ``Word`` elements (default: removed, since their
    text and boxes describe the reading that was replaced)."""
    model: str = ""
    """What the metadata names as the model (run folder, model folder or hub id)."""
    date: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc)
                      .replace(microsecond=0).isoformat())


@dataclass
class WriteCounts:
    files: int = 0
    lines_written: int = 0
    lines_kept: int = 0
    """Lines that had text and kept it (ALTO, and PAGE before 2016, without --replace)."""
    files_not_written: int = 0
    """Input files that are not well-formed XML (a counted skip when read)."""
    words_removed: int = 0
    """PAGE ``Word`` elements removed from replaced lines."""
    regions_updated: int = 0
    """PAGE ``TextRegion``s whose region-level ``TextEquiv`` was recomputed from their lines."""


# --------------------------------------------------------------------------------------------
# Which inputs are pages


def is_layout_input(path: Path) -> bool:
    """A PAGE/ALTO file, or a folder holding at least one."""
    if path.is_file():
        return path.suffix.lower() in LAYOUT_SUFFIXES and root_name(path) in FORMAT_OF_ROOT
    if path.is_dir():
        return any(p.suffix.lower() in LAYOUT_SUFFIXES and root_name(p) in FORMAT_OF_ROOT
                   for p in path.rglob("*") if p.is_file())
    return False


def layout_samples(inputs: list[Path], prompt: str, budget: PixelBudget, on_bad: str, line_padding: int = 0,
                   mask_polygon: bool = False) -> SampleSet:
    """Every line of every page under ``inputs`` (texts or not), cut as training cuts them."""
    records, report = [], SkipReport()

    def handle_bad(bad: BadSample, report: SkipReport, on_bad: str) -> None:
        if on_bad == "error":
            raise bad
        report.skip(bad.reason, str(bad))

    for path in inputs:
        dataset = DatasetConfig(name="pages", source=str(path), prompt=prompt, min_pixels=budget.min_pixels,
                                max_pixels=budget.max_pixels, line_padding=line_padding,
                                mask_polygon=mask_polygon, allow_outside_root=True)
        records += index_layout_for_inference(path, dataset, report, on_bad, handle_bad)
    report.kept = len(records)
    return SampleSet(records, None, "image", on_bad, report)


def output_name(xml: Path, root: Path | None, single_file: bool) -> Path:
    """Where a page goes below the output folder: its path below the input folder."""
    return Path(xml.name) if single_file or root is None else xml.relative_to(root)


# --------------------------------------------------------------------------------------------
# The whole command


def predict_pages(loaded: Loaded, inputs: list[str], output: Path, prompt: str, budget: PixelBudget,
                  batch_size: int, max_new_tokens: int, num_beams: int, on_bad: str, options: WriteOptions,
                  line_padding: int = 0, mask_polygon: bool = False, progress: bool = True,
                  meter: Any = None, max_batch_visual_tokens: int | None = None) -> dict:
    """Transcribe every line of the pages and write the XML copies and ``predictions.jsonl`` into
    ``output``; returns a summary (counts, files, skips)."""
    from docvlm.predict.run import predict_samples, write_predictions

    paths = [Path(p) for p in inputs]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise DataError(f"input not found: {missing[0]}")
    plan, not_xml = _output_plan(paths, output)
    samples = layout_samples(paths, prompt, budget, on_bad, line_padding, mask_polygon)
    rows = predict_samples(loaded, samples, batch_size, max_new_tokens, num_beams, progress, meter=meter,
                           max_batch_visual_tokens=max_batch_visual_tokens)
    by_id = {record.id: record for record in samples.records}
    confidences = line_confidences(loaded, samples, rows, batch_size)
    predictions: dict[str, dict[int, tuple[str, float | None]]] = defaultdict(dict)
    for row in rows:
        source = by_id[row["id"]].source
        confidence = confidences.get(row["id"])
        predictions[source.xml][source.line_index] = (row["prediction"], confidence)
        row.update({"xml": str(plan[source.xml]), "line_id": source.element_id, "line_index": source.line_index,
                    "confidence": confidence})
    counts = WriteCounts(files_not_written=not_xml)
    for xml, target in plan.items():
        write_layout(Path(xml), target, predictions.get(xml, {}), options, counts)
    jsonl = write_predictions(rows, output / "predictions.jsonl")
    return {"predictions": len(rows), "files": counts.files, "lines_written": counts.lines_written,
            "lines_kept": counts.lines_kept, "files_not_written": counts.files_not_written,
            "words_removed": counts.words_removed, "regions_updated": counts.regions_updated, "jsonl": str(jsonl),
            "skips": samples.report.as_dict()}


def _output_plan(paths: list[Path], output: Path) -> tuple[dict[str, Path], int]:
    """Input XML (as the readers name it) -> output file, and how many layout files are not XML at
    all (empty, cut short: the readers count them as malformed skips; none is written); refuses to
    overwrite an input or to write two pages to one place."""
    plan: dict[str, Path] = {}
    not_xml = 0
    for path in paths:
        roots = {f: root_name(f) for f in layout_files(path)}
        not_xml += sum(name is None for name in roots.values())
        for xml in (f for f, name in roots.items() if name in FORMAT_OF_ROOT):
            target = output / output_name(xml, path, path.is_file())
            if target.resolve() == xml.resolve():
                raise DataError(f"--output {output}: writing {target} would overwrite the input {xml}; "
                                "choose another output folder (inputs are never modified)")
            if target in plan.values():
                raise DataError(f"two inputs would both be written to {target}; predict them into separate folders")
            plan[str(xml)] = target
    inputs = {Path(x).resolve() for x in plan}
    if any(t.resolve() in inputs for t in plan.values()):
        raise DataError(f"--output {output} would overwrite input pages; choose another output folder")
    return plan, not_xml


def write_layout(xml: Path, target: Path, predictions: dict[int, tuple[str, float | None]], options: WriteOptions,
                 counts: WriteCounts) -> None:
    """Write a copy of ``xml`` with ``predictions`` (TextLine index -> (text, confidence)) to ``target``."""
    try:
        tree = etree.parse(str(xml), etree.XMLParser(resolve_entities=False, no_network=True))
    except (etree.XMLSyntaxError, OSError) as error:  # already a counted skip when the pages were read
        log.warning("%s: not written (%s)", xml, error)
        counts.files_not_written += 1
        return
    root = tree.getroot()
    kind = FORMAT_OF_ROOT[etree.QName(root).localname]
    lines = list(root.iter("{*}TextLine"))
    ids = _alto_ids(root) if kind == "alto" else set()
    # Region element -> its lines' text before any of them changed. Holding the element keeps its
    # lxml proxy alive, so getparent() returns that same object (equal hash) for its other lines.
    lines_before: dict = {}
    changed_regions: dict = {}  # an ordered set
    for index, (text, confidence) in sorted(predictions.items()):
        line = lines[index]
        text = xml_safe(text)
        if kind == "page":
            region = line.getparent()
            if etree.QName(region).localname == "TextRegion" and region not in lines_before:
                lines_before[region] = lines_text(region)
            before = primary_text(line)
            written = write_page_line(line, text, options.replace, confidence)
            if written and options.replace and not options.keep_words:
                counts.words_removed += remove_words(line)
            if primary_text(line) != before and region in lines_before:
                changed_regions[region] = None
        else:
            written = write_alto_line(line, text, options, ids, confidence)
        counts.lines_written += written
        counts.lines_kept += not written
    if kind == "page":
        for region in changed_regions:
            counts.regions_updated += write_region_text(region, options.replace, lines_before[region])
        add_page_metadata(root, options)
    else:
        add_alto_processing(root, options)
    standalone = tree.docinfo.standalone
    try:
        with atomic_path(target) as temporary:  # a killed predict leaves no half-written page
            tree.write(str(temporary), xml_declaration=True, encoding="UTF-8",
                       **({"standalone": standalone} if standalone is not None else {}))
    except OSError as error:
        raise DataError(f"cannot write {target}: {error}") from None
    counts.files += 1


def xml_safe(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold (C0 controls but tab/newline/return,
    lone surrogates, U+FFFE/U+FFFF); lxml refuses them, and a model may generate them."""
    return "".join(c for c in text if c in "\t\n\r" or (" " <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd")
                   or c >= "\U00010000")


# --------------------------------------------------------------------------------------------
# Confidence


def line_confidences(loaded: Loaded, samples: SampleSet, rows: list[dict], batch_size: int) -> dict[str, float]:
    """Sample id -> geometric-mean token probability of its prediction (see the module docstring)."""
    import dataclasses

    import torch

    from docvlm.data.schema import Sample
    from docvlm.models.prompting import ChatFormat, TrainingCollator

    chat = ChatFormat(loaded.processor, loaded.spec)
    collator = TrainingCollator(chat)
    index = {record.id: i for i, record in enumerate(samples.records)}
    model = loaded.model
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    found: dict[str, float] = {}
    try:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            batch = []
            for row in chunk:
                sample = samples[index[row["id"]]]
                batch.append(Sample(dataclasses.replace(sample.record, target=row["prediction"]), sample.image))
            encoded = {k: v.to(device) for k, v in collator(batch).items()}
            labels = encoded["labels"]
            with torch.no_grad():
                if chat.seq2seq:  # logits line up with the labels (the model shifts them itself)
                    logits = model(**encoded).logits
                else:
                    logits = model(**{k: v for k, v in encoded.items() if k != "labels"}).logits[:, :-1]
                    labels = labels[:, 1:]
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            mask = labels != -100
            picked = log_probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
            means = picked.sum(dim=1) / mask.sum(dim=1).clamp(min=1)
            for row, value in zip(chunk, means.exp().tolist()):
                found[row["id"]] = round(float(value), 4)
    finally:
        model.train(was_training)
    return found


# --------------------------------------------------------------------------------------------
# PAGE


def _q(parent, name: str) -> str:
    """``name`` in the namespace of ``parent`` (PAGE 2013 and 2019 differ only there)."""
    namespace = etree.QName(parent).namespace
    return f"{{{namespace}}}{name}" if namespace else name


def _has_text(equiv) -> bool:
    unicode = equiv.find("{*}Unicode")
    return unicode is not None and bool((unicode.text or "").strip())


def page_version(element) -> str:
    """The PAGE schema date of ``element``'s namespace (``2019-07-15``); ``9999`` (the newest
    rules) when the namespace carries no date."""
    version = (etree.QName(element).namespace or "").rstrip("/").rsplit("/", 1)[-1]
    return version if re.fullmatch(r"\d{4}-\d{2}-\d{2}", version) else "9999"


def primary_text(element) -> str | None:
    equiv = primary_equiv(element)
    unicode = equiv.find("{*}Unicode") if equiv is not None else None
    return None if unicode is None else (unicode.text or "")


def remove_words(line) -> int:
    """Remove a PAGE ``TextLine``'s ``Word`` children (with their ``Glyph``s); returns how many."""
    words = line.findall("{*}Word")
    for word in words:
        _remove_keeping_layout(word)
    return len(words)


def lines_text(region) -> str:
    """A ``TextRegion``'s own lines' primary readings joined by newlines (a line without text gives
    an empty line, as dinglehopper's line level reads it)."""
    return "\n".join(primary_text(line) or "" for line in region.findall("{*}TextLine"))


def write_region_text(region, replace: bool, lines_before: str | None = None) -> bool:
    """Set a ``TextRegion``'s primary ``TextEquiv`` to its lines' text (``lines_text``); with
    ``replace`` the region's other readings go, as the lines' did. Returns whether it changed.

    Without ``replace``, a region whose text is its own, not its lines' readings as they were
    (``lines_before``, whitespace aside), holds ground truth the lines lack (Transkribus keeps the
    region's full transcription while lines are still untranscribed): it is left alone (False), as
    a line with ground truth keeps it. A region whose text was its lines' is recomputed."""
    text = lines_text(region)
    equiv = primary_equiv(region)
    old = primary_text(region)
    if (not replace and old is not None and old.strip() and lines_before is not None
            and old.split() != lines_before.split()):
        return False
    if replace:
        for other in region.findall("{*}TextEquiv"):
            if other is not equiv:
                _remove_keeping_layout(other)
    if equiv is None:
        equiv = _text_equiv(region, text, page_version(region))
        style = region.find("{*}TextStyle")
        siblings = [c for c in region if isinstance(c.tag, str)]
        region.insert(region.index(style) if style is not None else len(region), equiv)
        _indent_like_siblings(region, equiv, siblings)
        return True
    equiv.attrib.pop("conf", None)  # it scored the old text
    for name in ("PlainText", "Unicode"):
        child = equiv.find("{*}" + name)
        if child is not None:
            child.text = text
    return True


def _remove_keeping_layout(element) -> None:
    """Remove ``element``; the whitespace after it goes too, so no blank line is left behind."""
    parent = element.getparent()
    previous = element.getprevious()
    if previous is not None:
        previous.tail = element.tail
    elif element.getnext() is None:
        parent.text = element.tail
    parent.remove(element)


def _text_equiv(parent, text: str, version: str, confidence: float | None = None):
    """A new ``TextEquiv`` for ``text`` in the form the file's PAGE version wants."""
    equiv = etree.Element(_q(parent, "TextEquiv"))
    if confidence is not None and version >= "2013-07-15":  # PAGE 2010 has no conf
        equiv.set("conf", f"{confidence:.4f}")
    if version < "2013-07-15":  # PAGE 2010: PlainText is required, before Unicode
        etree.SubElement(equiv, _q(parent, "PlainText")).text = text
    etree.SubElement(equiv, _q(parent, "Unicode")).text = text
    return equiv


def write_page_line(line, text: str, replace: bool, confidence: float | None = None) -> bool:
    """Put ``text`` into a PAGE ``TextLine``. From PAGE 2016 on always written (ground truth is
    kept beside it); before, one ``TextEquiv`` is all a line may hold, so a line with text keeps
    it unless ``replace`` (False: not written).

    A line without ``TextEquiv`` whose ``Word``s hold text has that text as its ground truth (the
    reader reads it so): it is kept like a line's own, and from PAGE 2016 on first written as the
    line's ``TextEquiv`` (index 1), so that the prediction does not become the line's only reading."""
    version = page_version(line)
    equivs = line.findall("{*}TextEquiv")
    has_text = any(_has_text(e) for e in equivs)
    in_words = "" if equivs or replace else words_text(line)
    if (has_text or in_words) and not replace and version < "2016-07-15":
        return False
    if in_words:
        _insert_line_equiv(line, _text_equiv(line, in_words, version))
        equivs, has_text = line.findall("{*}TextEquiv"), True
    if replace or not has_text:
        for equiv in equivs:
            line.remove(equiv)
        equivs = []
    equiv = _text_equiv(line, text, version, confidence)
    if equivs:
        equiv.set("index", str(_number_readings(line, equivs) + 1))
    _insert_line_equiv(line, equiv)
    return True


def _number_readings(line, equivs: list) -> int:
    """Give every existing reading of ``line`` an ``index`` such that the primary one (as
    :func:`primary_equiv` chooses it) stays primary once the prediction is added after them;
    returns the highest index. Needed because the rule only sees TextEquivs with an ``index``:
    a lone ground truth without one would lose to the prediction's index 2."""
    primary = primary_equiv(line)
    if all(e.get("index") is None for e in equivs):  # primary (highest conf, or first) becomes 1
        for number, existing in enumerate([primary] + [e for e in equivs if e is not primary], start=1):
            existing.set("index", str(number))
        return len(equivs)
    highest = max(_index(e) for e in equivs if e.get("index") is not None)
    for existing in equivs:  # passed over by the rule before; they stay behind the primary
        if existing.get("index") is None:
            highest += 1
            existing.set("index", str(highest))
    return highest


def _insert_line_equiv(line, equiv) -> None:
    """Insert a ``TextEquiv`` after the line's existing ones (and its ``Coords``, ``Word``s, ...)."""
    children = [c for c in line if isinstance(c.tag, str)]
    after = [i for i, c in enumerate(line) if isinstance(c.tag, str)
             and etree.QName(c).localname in PAGE_BEFORE_TEXTEQUIV]
    position = after[-1] + 1 if after else 0
    line.insert(position, equiv)
    _indent_like_siblings(line, equiv, children)


def _index(equiv) -> int:
    try:
        return int(equiv.get("index"))
    except (TypeError, ValueError):  # the reader has refused a non-integer index already
        return 0


def add_page_metadata(root, options: WriteOptions) -> None:
    """``MetadataItem type="processingStep"`` (PAGE 2018-07-15 and later)."""
    metadata = root.find("{*}Metadata")
    namespace = etree.QName(root).namespace or ""
    if metadata is None or namespace.rsplit("/", 1)[-1] < "2018-07-15":
        log.info("%s: PAGE before 2018 has no MetadataItem; the processing step is not recorded", namespace)
        return
    item = etree.Element(_q(root, "MetadataItem"), type="processingStep", name=SOFTWARE,
                         value=f"{SOFTWARE} predict, model {options.model}", date=options.date)
    children = [c for c in metadata if isinstance(c.tag, str)]
    metadata.append(item)
    _indent_like_siblings(metadata, item, children)


# --------------------------------------------------------------------------------------------
# ALTO


def _alto_ids(root) -> set[str]:
    return {element.get("ID") for element in root.iter() if isinstance(element.tag, str) and element.get("ID")}


def write_alto_line(line, text: str, options: WriteOptions, ids: set[str], confidence: float | None = None) -> bool:
    """Replace an ALTO ``TextLine``'s String/SP/HYP by the prediction; False when the line had text
    and ``replace`` is off."""
    parts = [c for c in line if isinstance(c.tag, str) and etree.QName(c).localname in ALTO_TEXT]
    if not options.replace and any((c.get("CONTENT") or "").strip() for c in parts
                                   if etree.QName(c).localname == "String"):
        return False
    # The new Strings take the place and the whitespace of the old ones.
    first = parts[0] if parts else None
    before = (first.getprevious().tail if first is not None and first.getprevious() is not None
              else line.text if first is not None else None)
    closing = parts[-1].tail if parts else None
    position = list(line).index(first) if first is not None else len(line)
    for part in parts:
        line.remove(part)
    words = text.split() if options.alto_words else [text]
    new = []
    for number, word in enumerate(words or [""]):
        if number:
            new.append(etree.Element(_q(line, "SP")))
        string = etree.Element(_q(line, "String"), CONTENT=word)
        if not options.alto_words:
            for key in ("HPOS", "VPOS", "WIDTH", "HEIGHT"):
                if line.get(key) is not None:
                    string.set(key, line.get(key))
            if confidence is not None:
                string.set("WC", f"{confidence:.4f}")
        if line.get("ID"):
            string.set("ID", _unique(f"{line.get('ID')}_docvlm{number + 1}", ids))
        new.append(string)
    for offset, element in enumerate(new):
        line.insert(position + offset, element)
        element.tail = before if offset + 1 < len(new) and _blank(before) else None
    new[-1].tail = closing
    return True


def _blank(text: str | None) -> bool:
    return text is not None and text.strip() == ""


def _unique(name: str, ids: set[str]) -> str:
    candidate, number = name, 1
    while candidate in ids:
        number += 1
        candidate = f"{name}_{number}"
    ids.add(candidate)
    return candidate


def add_alto_processing(root, options: WriteOptions) -> None:
    """``Description/Processing`` (ALTO 4) or ``OCRProcessing/ocrProcessingStep`` (ALTO 1-3, whose
    schemas have no ``Processing``)."""
    description = root.find("{*}Description")
    if description is None:
        description = etree.Element(_q(root, "Description"))
        etree.SubElement(description, _q(root, "MeasurementUnit")).text = "pixel"
        root.insert(0, description)
    legacy = alto_major_version(root) < 4  # ALTO 1-3: OCRProcessing/ocrProcessingStep
    step = etree.Element(_q(root, "OCRProcessing" if legacy else "Processing"),
                         ID=_unique(f"{SOFTWARE}_processing", _alto_ids(root)))
    body = etree.SubElement(step, _q(root, "ocrProcessingStep")) if legacy else step
    if not legacy:
        etree.SubElement(body, _q(root, "processingCategory")).text = "contentGeneration"
    etree.SubElement(body, _q(root, "processingDateTime")).text = options.date
    etree.SubElement(body, _q(root, "processingStepDescription")).text = \
        f"text lines transcribed by {SOFTWARE} predict, model {options.model}"
    software = etree.SubElement(body, _q(root, "processingSoftware"))
    etree.SubElement(software, _q(root, "softwareName")).text = SOFTWARE
    etree.SubElement(software, _q(root, "softwareVersion")).text = _version()
    children = [c for c in description if isinstance(c.tag, str)]
    known = [i for i, c in enumerate(description) if isinstance(c.tag, str)
             and etree.QName(c).localname in ALTO_DESCRIPTION_ORDER]
    description.insert(known[-1] + 1 if known else 0, step)
    _indent_like_siblings(description, step, children)
    _indent_subtree(step)


def alto_major_version(root) -> int:
    """1 for the CCS namespace of ALTO 1, N for ``.../alto/ns-vN#``; without a namespace the
    ``SCHEMAVERSION`` attribute, else the schema file named (``xsi:noNamespaceSchemaLocation=
    ".../alto-1-2.xsd"``, as the National Library of Norway's files have it), else 4."""
    namespace = etree.QName(root).namespace or ""
    match = re.search(r"/alto/ns-v(\d+)#?$", namespace)
    if match:
        return int(match.group(1))
    if "ccs-gmbh.com/ALTO" in namespace:
        return 1
    match = re.match(r"\s*(\d+)", root.get("SCHEMAVERSION") or "")
    if match:
        return int(match.group(1))
    xsi = "{http://www.w3.org/2001/XMLSchema-instance}"
    location = root.get(f"{xsi}noNamespaceSchemaLocation") or root.get(f"{xsi}schemaLocation") or ""
    match = re.search(r"alto-?v?(\d+)[-.]", location)
    return int(match.group(1)) if match else 4


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("docvlm")
    except PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------------------------
# Layout of the written text


def _indent_subtree(element) -> None:
    """Indent a new element's own children one step deeper than the element (two spaces a step)."""
    depth = sum(1 for _ in element.iterancestors())
    etree.indent(element, space="  ", level=depth)


def _indent_like_siblings(parent, element, siblings: list[Any]) -> None:
    """Give a new element the whitespace its siblings have, so pretty-printed files stay so.

    Only the new element's own tail is set (and, when it is the last child, the tail of the one
    before it, which then needs the sibling indentation): no text of the file changes otherwise.
    """
    if not siblings:
        return
    index = list(parent).index(element)
    if index + 1 < len(parent):  # inserted before a sibling: reuse the indentation before it
        before = parent[index - 1].tail if index > 0 else parent.text
        element.tail = before
    else:  # appended: take over the closing whitespace, the previous last child gets an indent
        previous = parent[index - 1]
        element.tail = previous.tail
        indent = parent[index - 2].tail if index >= 2 else parent.text
        if indent is not None and indent.strip() == "":
            previous.tail = indent


# --------------------------------------------------------------------------------------------
# The command line's entry


def run_predict_pages(args: Any, loaded: Loaded, cfg: Any, prompt: str, budget: PixelBudget, batch_size: int,
                      max_new_tokens: int, num_beams: int, on_bad: str,
                      max_batch_visual_tokens: int | None = None) -> int:
    """``docvlm predict RUN pages/ --output out/``: called by the CLI when an input is PAGE/ALTO."""
    paths = [Path(p) for p in args.inputs]
    others = [p for p in paths if not is_layout_input(p)]
    if others:
        raise DataError(f"{others[0]}: not PAGE-XML or ALTO; predict pages and images in separate runs")
    output = Path(args.output) if args.output else (
        Path(args.model) / "predictions" / "pages" if cfg is not None else Path("predictions-pages"))
    if output.is_file():
        raise DataError(f"--output {output} is a file; for PAGE/ALTO inputs --output is a folder (the XML "
                        "copies and predictions.jsonl go into it)")
    if output.suffix.lower() in (".jsonl", ".json", ".xml"):
        raise DataError(f"--output {output}: for PAGE/ALTO inputs --output is a folder (the XML copies and "
                        "predictions.jsonl go into it)")
    padding, mask = _line_settings(cfg)
    options = WriteOptions(replace=getattr(args, "replace", False), alto_words=getattr(args, "alto_words", False),
                           keep_words=getattr(args, "keep_words", False), model=_model_name(args.model, cfg))
    from docvlm.predict.latency import finish_meter, start_meter
    from docvlm.predict.run import inputs_read

    meter, price = start_meter(batch_size, args.price_per_hour, cfg)
    summary = predict_pages(loaded, args.inputs, output, prompt, budget, batch_size, max_new_tokens, num_beams,
                            on_bad, options, padding, mask, progress=not getattr(args, "quiet", False), meter=meter,
                            max_batch_visual_tokens=max_batch_visual_tokens)
    timing = finish_meter(meter, price, output / "predictions.jsonl.timing.json")
    kept = f", {summary['lines_kept']} lines kept their text (use --replace)" if summary["lines_kept"] else ""
    if summary["files_not_written"]:
        kept += f", {summary['files_not_written']} malformed files not written"
    if summary["words_removed"]:
        kept += f", {summary['words_removed']} Words of replaced lines removed (--keep-words keeps them)"
    if summary["regions_updated"]:
        kept += f", {summary['regions_updated']} region texts recomputed from their lines"
    print(f"{summary['predictions']} lines transcribed into {summary['files']} files in {output}{kept}; "
          f"{summary['jsonl']}; {inputs_read(summary['skips'])}")
    print(timing)
    return 0


def _line_settings(cfg: Any) -> tuple[int, bool]:
    """The run's line cutting: its first PAGE/ALTO dataset's, else its first dataset's."""
    if cfg is None or not cfg.data.datasets:
        return 0, False
    layout = [d for d in cfg.data.datasets if d.format in ("page", "alto")] or cfg.data.datasets
    return layout[0].line_padding, layout[0].mask_polygon


def _model_name(model: str, cfg: Any) -> str:
    return f"{model} (base {cfg.model.name_or_path})" if cfg is not None else str(model)
