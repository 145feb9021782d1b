"""Reading predictions files (``docvlm predict`` output or any tool's) for scoring.

One JSON object per line with ``id``, ``prediction`` and the answer: ``reference`` (a string) and/or
``references`` (a list of acceptable strings). Every problem names the file and line: bytes that
are not UTF-8, an empty line, a line that is not a JSON object, a missing or duplicate id, a
missing prediction or reference, references of the wrong type, a ``reference`` that is not
among the ``references``, or a string holding a lone surrogate.

A lone surrogate (JSON ``"\\ud800"`` without its pair, typically a UTF-16 string cut inside an
emoji by the tool that wrote the file) is valid JSON syntax but no Unicode character: it cannot be
written to a UTF-8 metrics file, and its edit distance would depend on how the writer had split the
pair. So it is refused with the file, line, id and field, rather than scored or silently replaced.
"""

from __future__ import annotations

from pathlib import Path

from docvlm.data.sources import json_object
from docvlm.errors import DataError


def read_predictions(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"predictions file not found: {path}")
    rows, seen = [], {}
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{path}:{number}"
            try:  # a BOM on the first line (Windows editors write one) is not part of the JSON
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                raise DataError(f"{where}: not UTF-8 (byte {raw[error.start]:#04x} at column {error.start + 1})") from None
            if not line.strip():
                raise DataError(f"{where}: empty line (one JSON object per line expected)")
            row = json_object(line, where)
            _check_surrogates(row, where)
            row["references"] = _check_row(row, where)
            if row["id"] in seen:
                raise DataError(f"{where}: id '{row['id']}' already used on line {seen[row['id']]}")
            seen[row["id"]] = number
            row["_line"] = number
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: no predictions")
    return rows


def _lone_surrogate(text: str) -> int | None:
    """Index of the first lone surrogate in ``text`` (json.loads pairs the valid ones), or None."""
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as error:
        return error.start


def _check_surrogates(row: dict, where: str) -> None:
    named = f"{where} (id {row.get('id')})" if row.get("id") is not None else where
    for key, value in row.items():
        texts = [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)] \
            if isinstance(value, list) else []
        for text in [key, *texts]:
            index = _lone_surrogate(text)
            if index is not None:
                raise DataError(f"{named}: field '{key}' holds a lone surrogate U+{ord(text[index]):04X} at "
                                f"character {index + 1} (half of a UTF-16 pair, not a Unicode character; "
                                f"fix the tool that wrote the file)")


def _check_row(row: dict, where: str) -> list[str]:
    """Validate one row; returns its acceptable answers."""
    sample_id = row.get("id")
    if sample_id is None or sample_id == "":
        raise DataError(f"{where}: missing field 'id'")
    if not isinstance(sample_id, (str, int)):
        raise DataError(f"{where}: field 'id' must be a string, got {type(sample_id).__name__}")
    row["id"] = str(sample_id)
    named = f"{where} (id {sample_id})"
    if not isinstance(row.get("prediction"), str):
        raise DataError(f"{named}: field 'prediction' missing or not a string")
    reference, references = row.get("reference"), row.get("references")
    if reference is not None and not isinstance(reference, str):
        raise DataError(f"{named}: field 'reference' must be a string, got {type(reference).__name__}")
    if references is not None:
        if not isinstance(references, list) or not references or not all(isinstance(r, str) for r in references):
            raise DataError(f"{named}: field 'references' must be a non-empty list of strings")
        if reference is not None and reference not in references:
            raise DataError(f"{named}: 'reference' {reference!r} is not among 'references' {references!r}")
        return list(references)
    if reference is None:
        raise DataError(f"{named}: no 'reference' or 'references' to score against")
    return [reference]


def pair_rows(base: list[dict], tuned: list[dict], base_name: str, tuned_name: str) -> list[dict]:
    """The tuned rows in the base's order; both must answer the same samples with the same references."""
    tuned_by_id = {row["id"]: row for row in tuned}
    for row in base:
        other = tuned_by_id.get(row["id"])
        if other is None:
            raise DataError(f"{base_name}:{row['_line']}: id '{row['id']}' has no prediction in {tuned_name}")
        if other["references"] != row["references"]:
            raise DataError(f"{tuned_name}:{other['_line']}: references of id '{row['id']}' differ from "
                            f"{base_name}:{row['_line']} ({other['references']!r} vs {row['references']!r})")
    if len(tuned) != len(base):
        extra = next(r for r in tuned if r["id"] not in {b["id"] for b in base})
        raise DataError(f"{tuned_name}:{extra['_line']}: id '{extra['id']}' has no prediction in {base_name}")
    return [tuned_by_id[row["id"]] for row in base]
