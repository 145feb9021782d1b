"""A corpus of every kind of bad input, run through ``data check``, ``train`` (skip and error
modes) and ``predict``: no traceback, no silent drop, counts that add up (issue 9, acceptance).

Awkward but usable images (transparent background, 16-bit grey PNG and TIFF) must be kept.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from badimages import (write_16bit_grey, write_bomb_png, write_text_line, write_transparent_line,
                       write_truncated_jpeg)

from docvlm.cli import main

GOOD = ["good0", "good1", "good2", "good3"]
AWKWARD = {"rgba": "rgba.png", "grey16": "grey16.png", "grey16tif": "grey16.tif"}
# kind -> (image file, row change, skip reason, words the error line must hold)
BAD_IMAGES = {
    "notimage": ("notimage.png", "unreadable_image", ["notimage.png", "cannot be read"]),
    "truncated": ("cut.jpg", "unreadable_image", ["cut.jpg", "image file is truncated"]),
    "bomb": ("bomb.png", "decompression_bomb", ["bomb.png", "too large to decode safely"]),
    "wide": ("wide.png", "extreme_aspect_ratio", ["2020x10", "data.max_aspect_ratio"]),
    "dot": ("dot.png", "too_small", ["1x1", "data.min_image_side"]),
}
BAD_ROWS = {
    "missing": ({"image": "images/nowhere.png"}, "missing_image", ["nowhere.png", "image not found"]),
    "empty": ({"text": "  "}, "empty_target", ["field 'text' is empty"]),
    "nofield": ({"text": None}, "missing_field", ["field 'text' is missing"]),
    "outside": ({"image": "../outside.png"}, "outside_root", ["leaves the dataset folder"]),
}
KINDS = sorted(BAD_IMAGES) + sorted(BAD_ROWS)


@pytest.fixture(scope="module")
def corpus(lines_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    images = root / "data" / "images"
    images.mkdir(parents=True)
    sources = sorted((lines_dir / "images").rglob("*.png"))
    texts = {json.loads(line)["image"].split("/")[-1]: json.loads(line)["text"]
             for split in ("train", "validation", "test") for line in (lines_dir / f"{split}.jsonl").read_text().splitlines()}
    for name, source in zip(GOOD, sources):
        shutil.copy(source, images / f"{name}.png")
    write_transparent_line(images / "rgba.png")
    write_16bit_grey(images / "grey16.png")
    write_16bit_grey(images / "grey16.tif")
    (images / "notimage.png").write_bytes(b"this is not a png")
    write_truncated_jpeg(images / "cut.jpg")
    write_bomb_png(images / "bomb.png")
    write_text_line(images / "wide.png", size=(2020, 10))
    write_text_line(images / "dot.png", size=(1, 1))
    write_text_line(root / "outside.png")
    # The same images as a folder of lines with transcriptions beside them, for predict.
    lines = shutil.copytree(images, root / "lines")
    for name, source in zip(GOOD, sources):
        (lines / f"{name}.gt.txt").write_text(texts[source.name])
    for file in [*AWKWARD.values(), *(v[0] for v in BAD_IMAGES.values())]:
        (lines / file).with_suffix(".gt.txt").write_text("12")
    return root


def rows_for(kinds: list[str]) -> list[dict]:
    rows = [{"id": name, "image": f"images/{name}.png", "text": "12 34"} for name in GOOD]
    rows += [{"id": name, "image": f"images/{file}", "text": "12"} for name, file in AWKWARD.items()]
    for kind in kinds:
        if kind in BAD_IMAGES:
            rows.append({"id": kind, "image": f"images/{BAD_IMAGES[kind][0]}", "text": "12"})
        else:
            row = {"id": kind, "image": "images/good0.png", "text": "12", **BAD_ROWS[kind][0]}
            rows.append({k: v for k, v in row.items() if v is not None})
    return rows


def write_dataset(corpus: Path, kinds: list[str]) -> Path:
    folder = corpus / "data"
    good = "".join(json.dumps(r) + "\n" for r in rows_for([]))
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_for(kinds)))
    (folder / "validation.jsonl").write_text(good)
    (folder / "test.jsonl").write_text(good)
    return folder


def reasons(kinds) -> dict[str, int]:
    counts: dict[str, int] = {}
    for kind in kinds:
        reason = (BAD_IMAGES.get(kind) or BAD_ROWS[kind])[1 if kind in BAD_IMAGES else 1]
        counts[reason] = counts.get(reason, 0) + 1
    return counts


def run_cli(args, capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, captured.out, captured.err


def train_args(tmp_path, model, data, *extra) -> list[str]:
    config = tmp_path / "c.yaml"
    config.write_text("{}\n")
    return ["train", str(config), "--model.name_or_path", str(model), "--model.dtype", "fp32",
            "--data.datasets.0.source", str(data), "--data.datasets.0.max_pixels", "3136",
            "--train.max_steps", "1", "--train.batch_size", "16", "--train.gradient_accumulation_steps", "1",
            "--train.eval_steps", "0", "--train.save_steps", "1", "--train.report_to", "[none]",
            "--output_root", str(tmp_path / "runs"), *extra]


def test_data_check_counts_every_bad_sample(corpus, tmp_path, capsys, tiny_models):
    data = write_dataset(corpus, KINDS)
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"model": {"name_or_path": str(tiny_models["qwen2_vl"])},
                                  "data": {"datasets": [{"name": "c", "source": str(data), "max_pixels": 3136}]}}))
    code, out, _ = run_cli(["data", "check", str(config), "--output", str(tmp_path / "check.json")], capsys)
    assert code == 0
    split = json.loads((tmp_path / "check.json").read_text())["splits"]["c/train"]
    assert split["skipped"] == reasons(KINDS)
    assert split["samples"] == len(GOOD) + len(AWKWARD)
    assert split["samples"] + sum(split["skipped"].values()) == split["total"] == len(rows_for(KINDS))
    assert f"c/train: {len(GOOD) + len(AWKWARD)} samples (of {split['total']})" in out


def test_train_skip_mode_counts_add_up(corpus, tmp_path, capsys, tiny_models, caplog):
    data = write_dataset(corpus, KINDS)
    code, out, err = run_cli(train_args(tmp_path, tiny_models["qwen2_vl"], data, "--data.on_bad_sample", "skip"),
                             capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "runs" / "run" / "data_report.json").read_text())["train:data/train"]
    assert report["skipped"] == reasons(KINDS)                   # the truncated JPEG too, found at decode
    assert report["kept"] == len(GOOD) + len(AWKWARD)
    assert report["kept"] + report["skipped_total"] == report["total"] == len(rows_for(KINDS))
    assert f"train:data/train: kept {report['kept']} of {report['total']}; skipped {report['skipped_total']}" in out
    # The console also said at indexing what was skipped (one warning line).
    assert any(r.getMessage().startswith("dataset 'data' split 'train': kept 8 of 16; skipped 8")  # the JPEG is found at decode
               for r in caplog.records)


@pytest.mark.parametrize("kind,workers", [(kind, "0") for kind in KINDS] + [("truncated", "1")])
def test_train_error_mode_names_file_and_sample(corpus, tmp_path, capsys, tiny_models, kind, workers):
    # workers 1: the image fails in a data-loader worker process; the error still comes back as
    # the one line the training process would have written (not torch's worker traceback).
    data = write_dataset(corpus, [kind])
    code, _, err = run_cli(train_args(tmp_path, tiny_models["qwen2_vl"], data)
                           + ["--train.dataloader_workers", workers], capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    words = (BAD_IMAGES.get(kind) or BAD_ROWS[kind])[2]
    for word in ["train.jsonl", f"sample '{kind}'", *words]:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize("workers", ["0", "1"])
def test_train_skip_mode_with_no_readable_image_says_so_in_one_line(corpus, tmp_path, capsys, tiny_models, workers):
    # The only image passes the header check at indexing and fails to decode: every sample is
    # skipped while training, in the training process or in a data-loader worker.
    data = write_dataset(corpus, ["truncated"])
    only_cut = [row for row in rows_for(["truncated"]) if row["id"] == "truncated"]
    (data / "train.jsonl").write_text(json.dumps(only_cut[0]) + "\n")
    code, _, err = run_cli(train_args(tmp_path, tiny_models["qwen2_vl"], data, "--data.on_bad_sample", "skip")
                           + ["--train.dataloader_workers", workers], capsys)
    assert code == 2 and "Traceback" not in err and "DataLoader worker" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert lines == ["error: no training sample can be read: every image failed to decode (see the skip report)"]


def test_predict_skip_mode_counts_every_input(corpus, tmp_path, capsys, tiny_models):
    output = tmp_path / "p.jsonl"
    code, out, _ = run_cli(["predict", str(tiny_models["qwen2_vl"]), str(corpus / "lines"),
                            "--on-bad-sample", "skip", "--output", str(output), "--max-new-tokens", "2",
                            "--max-pixels", "3136"], capsys)
    assert code == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    files = len(GOOD) + len(AWKWARD) + len(BAD_IMAGES)
    assert sorted(r["id"] for r in rows) == sorted([f"{n}.png" for n in GOOD] + list(AWKWARD.values()))
    assert all(r["reference"] for r in rows)                           # from name.gt.txt
    assert (f"{len(rows)} predictions written to {output}; {len(rows)} of {files} inputs read, "
            f"{len(BAD_IMAGES)} skipped") in out


@pytest.mark.parametrize("kind", sorted(BAD_IMAGES))
def test_predict_error_mode_names_the_file(corpus, tmp_path, capsys, tiny_models, kind):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(corpus / "data" / "images" / "good0.png", folder)
    shutil.copy(corpus / "data" / "images" / BAD_IMAGES[kind][0], folder)
    code, _, err = run_cli(["predict", str(tiny_models["qwen2_vl"]), str(folder), "--output",
                            str(tmp_path / "p.jsonl"), "--max-new-tokens", "2", "--max-pixels", "3136"], capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and all(word in lines[0] for word in BAD_IMAGES[kind][2]), err


def test_a_batch_of_only_undecodable_samples_does_not_stop_skip_mode(corpus, tmp_path, capsys, tiny_models):
    # One sample per batch and enough steps to meet the truncated JPEG alone in a batch.
    data = write_dataset(corpus, ["truncated"])
    count = len(rows_for(["truncated"]))
    args = train_args(tmp_path, tiny_models["qwen2_vl"], data, "--data.on_bad_sample", "skip")
    args[args.index("--train.batch_size") + 1] = "1"
    args[args.index("--train.max_steps") + 1] = str(count + 2)
    args[args.index("--train.save_steps") + 1] = str(count + 2)
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "runs" / "run" / "data_report.json").read_text())["train:data/train"]
    assert report["skipped"] == {"unreadable_image": 1} and report["kept"] == count - 1 == report["total"] - 1


def test_too_long_sample_counts_once_in_its_split(corpus, tmp_path, capsys, tiny_models):
    data = write_dataset(corpus, [])
    with open(data / "train.jsonl", "a") as out:
        out.write(json.dumps({"id": "long", "image": "images/good1.png", "text": "1 2 3 4 5 6 7 8 9 " * 20}) + "\n")
    count = len(rows_for([])) + 1
    args = train_args(tmp_path, tiny_models["qwen2_vl"], data, "--data.on_bad_sample", "skip",
                      "--data.max_length", "80")
    args[args.index("--train.max_steps") + 1] = "3"                 # three epochs of one batch each
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    reports = json.loads((tmp_path / "runs" / "run" / "data_report.json").read_text())
    report = reports["train:data/train"]
    assert report["skipped"] == {"too_long": 1} and report["kept"] == count - 1 and report["total"] == count
    assert all(r["kept"] + r["skipped_total"] == r["total"] for r in reports.values())
