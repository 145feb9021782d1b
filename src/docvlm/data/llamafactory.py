"""LLaMA-Factory datasets: an entry of ``dataset_info.json`` and the JSON/JSONL file it names.

Both of LLaMA-Factory's layouts are read: ``sharegpt`` (a list of messages, with custom
``columns`` and ``tags``, which also covers OpenAI-style ``role``/``content`` messages) and
``alpaca`` (instruction / input / output). A sample is one user turn holding exactly one
``<image>`` placeholder and one assistant answer, with one path in its ``images`` list; the user
text without the placeholder becomes the prompt. Image paths are relative to the folder of
``dataset_info.json`` (LLaMA-Factory's ``media_dir`` default).

Split names: a split whose name is an entry of ``dataset_info.json`` reads that entry; otherwise
the entry ``llamafactory_dataset`` (or the only one) is split as ``docvlm.data.splits`` says.
"""

from __future__ import annotations

import json
from pathlib import Path

from docvlm.config import DatasetConfig
from docvlm.data.schema import BadSample, PixelBudget, Record, SkipReport, check_image_header, resolve_inside
from docvlm.data.sources import read_json_objects, read_utf8
from docvlm.data.splits import units_of_split
from docvlm.errors import DataError

IMAGE_PLACEHOLDER = "<image>"
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "system_tag": "system"}
SHAREGPT_COLUMNS = {"messages": "conversations", "images": "images", "system": "system"}
ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "images": "images",
                  "system": "system"}


def info_path(source: str) -> Path:
    path = Path(source)
    path = path / "dataset_info.json" if path.is_dir() else path
    if not path.is_file():
        raise DataError(f"LLaMA-Factory registry not found: {path}")
    return path


def read_json_file(path: Path, expected: type, what: str):
    """A whole JSON file that must hold ``expected`` (dict or list); errors name the file and line."""
    try:
        value = json.loads(read_utf8(path))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    if not isinstance(value, expected) or not value:
        raise DataError(f"{path}: expected {what}")
    return value


def read_registry(path: Path) -> dict:
    return read_json_file(path, dict, "an object of named datasets")


def _entry_for(registry: dict, path: Path, dataset: DatasetConfig, split: str) -> tuple[str, dict, bool]:
    """(entry name, entry, whether the entry *is* the split)."""
    if split in registry and split != dataset.llamafactory_dataset:
        return split, registry[split], True
    name = dataset.llamafactory_dataset
    if name is None:
        if len(registry) > 1:
            raise DataError(f"{path}: holds several datasets ({', '.join(registry)}); set llamafactory_dataset")
        name = next(iter(registry))
    if name not in registry:
        raise DataError(f"{path}: no dataset '{name}' (found: {', '.join(registry)})")
    return name, registry[name], False


def index_llamafactory(dataset: DatasetConfig, split: str, report: SkipReport, on_bad: str,
                       handle_bad) -> list[Record]:
    registry_path = info_path(dataset.source)
    name, entry, whole = _entry_for(read_registry(registry_path), registry_path, dataset, split)
    where_entry = f"{registry_path} entry '{name}'"
    if not isinstance(entry, dict) or "file_name" not in entry:
        raise DataError(f"{where_entry}: needs a 'file_name' (hub and script datasets are not read here)")
    formatting = entry.get("formatting", "alpaca")
    if formatting not in ("sharegpt", "alpaca"):
        raise DataError(f"{where_entry}: formatting '{formatting}' is not supported (sharegpt, alpaca)")
    root = registry_path.parent
    data_file = root / entry["file_name"]
    rows = _read_rows(data_file)
    if not whole:
        rows = units_of_split(rows, lambda row: None, dataset, split)
    columns = {**(SHAREGPT_COLUMNS if formatting == "sharegpt" else ALPACA_COLUMNS), **entry.get("columns", {})}
    tags = {**SHAREGPT_TAGS, **entry.get("tags", {})}
    records = []
    for position, row in rows:
        report.total += 1
        sample_id = str(row.get("id", f"{name}-{position}")) if isinstance(row, dict) else f"{name}-{position}"
        where = f"{data_file}:{position} (sample '{sample_id}')"
        try:
            if not isinstance(row, dict):
                raise BadSample("bad_row", f"{where}: expected a JSON object")
            prompt, target = (_sharegpt_turns(row, columns, tags, where) if formatting == "sharegpt"
                              else _alpaca_turns(row, columns, where))
            image = _single_image(row, columns, prompt, root, dataset, where)
            prompt = prompt.replace(IMAGE_PLACEHOLDER, "").strip() or dataset.prompt
            records.append(Record(id=sample_id, target=target, image_ref=image, prompt=prompt, dataset=dataset.name,
                                  task=dataset.task, budget=PixelBudget(dataset.min_pixels, dataset.max_pixels),
                                  where=where))
        except BadSample as bad:
            handle_bad(bad, report, on_bad)
    return records


def _read_rows(path: Path) -> list[tuple[int, object]]:
    """``(position, row)``: the line number for JSONL, the list index for JSON."""
    if not path.is_file():
        raise DataError(f"LLaMA-Factory data file not found: {path}")
    if path.suffix == ".jsonl":
        return read_json_objects(path)
    return list(enumerate(read_json_file(path, list, "a non-empty JSON list of samples")))


def _sharegpt_turns(row: dict, columns: dict, tags: dict, where: str) -> tuple[str, str]:
    messages = row.get(columns["messages"])
    if not isinstance(messages, list):
        raise BadSample("missing_field", f"{where}: field '{columns['messages']}' is missing or not a list")
    turns = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get(tags["content_tag"]), str):
            raise BadSample("bad_message", f"{where}: message {index} has no text '{tags['content_tag']}'")
        role = message.get(tags["role_tag"])
        if role == tags["system_tag"]:
            continue
        turns.append((role, message[tags["content_tag"]]))
    roles = [role for role, _ in turns]
    if roles != [tags["user_tag"], tags["assistant_tag"]]:
        raise BadSample("not_single_turn", f"{where}: field '{columns['messages']}': expected one "
                                           f"'{tags['user_tag']}' then one '{tags['assistant_tag']}' message, got {roles}")
    return turns[0][1], _non_empty(turns[1][1], where, columns["messages"])


def _alpaca_turns(row: dict, columns: dict, where: str) -> tuple[str, str]:
    instruction = row.get(columns["prompt"])
    if not isinstance(instruction, str):
        raise BadSample("missing_field", f"{where}: field '{columns['prompt']}' is missing")
    query = row.get(columns["query"]) or ""
    prompt = f"{instruction}\n{query}" if query else instruction
    return prompt, _non_empty(row.get(columns["response"]), where, columns["response"])


def _non_empty(text, where: str, field: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise BadSample("empty_target", f"{where}: field '{field}': the answer is empty")
    return text


def _single_image(row: dict, columns: dict, prompt: str, root: Path, dataset: DatasetConfig, where: str) -> str:
    images = row.get(columns["images"]) or []
    if isinstance(images, str):
        images = [images]
    placeholders = prompt.count(IMAGE_PLACEHOLDER)
    if len(images) != placeholders:
        raise BadSample("image_count_mismatch", f"{where}: field '{columns['images']}' lists {len(images)} "
                                                f"image(s) but the user message has {placeholders} {IMAGE_PLACEHOLDER}")
    if len(images) != 1:
        raise BadSample("several_images", f"{where}: field '{columns['images']}': {len(images)} images in one "
                                          "sample; only single-image samples are supported")
    path = resolve_inside(root, str(images[0]), f"{where}: field '{columns['images']}'", dataset.allow_outside_root)
    check_image_header(str(path), f"{where}: field '{columns['images']}' ({path})")
    return str(path)
