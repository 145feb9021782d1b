"""Line folders, LLaMA-Factory registries, CSV manifests, HF VQA columns, and each bad input of each."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from docvlm.config import DataConfig, DatasetConfig
from docvlm.data.sources import load_split, source_format
from docvlm.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures" / "layout"


def load(source, on_bad="error", role="train", **settings):
    fields = {"train_split": "train", "eval_split": None, "test_split": None}
    if role == "test":
        fields = {"train_split": None, "eval_split": None, "test_split": "test"}
    dataset = DatasetConfig(name="d", source=str(source), **{**fields, **settings})
    return load_split(dataset, role, DataConfig(datasets=[dataset], on_bad_sample=on_bad))


def line_image(path: Path, width=60) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, 20), "white").save(path)


# --------------------------------------------------------------------------------------------
# Line folders


@pytest.fixture
def line_folder(tmp_path):
    root = tmp_path / "lines"
    texts = {"a/l1": "first line", "a/l2": "e\u0301\u0301 \u0627\u0644\u062d\u0628\u0631  ", "b/l3": "third"}
    for name, text in texts.items():
        line_image(root / f"{name}.png")
        (root / f"{name}.gt.txt").write_text(text + "\n", encoding="utf-8")
    return root


def test_line_folder_reads_recursively_and_exactly(line_folder):
    assert source_format(DatasetConfig(source=str(line_folder))) == "lines"
    samples = load(line_folder)
    assert [(r.id, r.target, r.group) for r in samples.records] == [
        ("a/l1", "first line", "a"), ("a/l2", "e\u0301\u0301 \u0627\u0644\u062d\u0628\u0631  ", "a"),
        ("b/l3", "third", "b")]
    assert samples[0].image.size == (60, 20)


def test_line_folder_bad_inputs(line_folder):
    (line_folder / "a" / "l1.gt.txt").write_bytes("caf\xe9".encode("latin-1"))
    (line_folder / "b" / "l3.gt.txt").write_text(" \n", encoding="utf-8")
    line_image(line_folder / "b" / "orphan.png")
    with pytest.raises(DataError, match=r"l1\.gt\.txt: not UTF-8 text \(byte 3"):
        load(line_folder)
    report = load(line_folder, "skip").report.as_dict()
    assert report["skipped"] == {"not_utf8": 1, "empty_target": 1, "missing_transcription": 1}
    assert report["kept"] == 1 and report["total"] == 4


# --------------------------------------------------------------------------------------------
# LLaMA-Factory


def registry(root: Path, entry: dict, rows: list, name="demo", file_name="demo.json") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    line_image(root / "imgs" / "a.png")
    line_image(root / "imgs" / "b.png", 80)
    (root / "dataset_info.json").write_text(json.dumps({name: {"file_name": file_name, **entry}}))
    if file_name.endswith(".jsonl"):
        (root / file_name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        (root / file_name).write_text(json.dumps(rows))
    return root


OPENAI = {"formatting": "sharegpt", "columns": {"messages": "messages", "images": "images"},
          "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}}


def openai_row(text="Read this: <image>", answer="42", images=("imgs/a.png",)):
    return {"messages": [{"role": "system", "content": "be exact"}, {"role": "user", "content": text},
                         {"role": "assistant", "content": answer}], "images": list(images)}


def test_llamafactory_openai_style_messages(tmp_path):
    root = registry(tmp_path / "lf", OPENAI, [openai_row(), openai_row("<image>", "7", ["imgs/b.png"])])
    assert source_format(DatasetConfig(source=str(root))) == "llamafactory"
    samples = load(root)
    assert [(r.id, r.prompt, r.target) for r in samples.records] == [
        ("demo-0", "Read this:", "42"), ("demo-1", "Transcribe the text in this image.", "7")]
    assert samples[1].image.size == (80, 20)


def test_llamafactory_default_sharegpt_tags_jsonl_and_alpaca(tmp_path):
    rows = [{"conversations": [{"from": "human", "value": "<image>What?"}, {"from": "gpt", "value": "x"}],
             "images": ["imgs/a.png"]}]
    root = registry(tmp_path / "sg", {"formatting": "sharegpt"}, rows, file_name="d.jsonl")
    record = load(root).records[0]
    assert (record.prompt, record.target, record.where.split("/")[-1]) == ("What?", "x", "d.jsonl:1 (sample 'demo-1')")
    alpaca = [{"instruction": "<image>Transcribe", "input": "", "output": "abc", "images": ["imgs/b.png"]}]
    record = load(registry(tmp_path / "al", {"columns": {"images": "images"}}, alpaca)).records[0]
    assert (record.prompt, record.target) == ("Transcribe", "abc")


def test_llamafactory_split_entries_and_ratios(tmp_path):
    root = registry(tmp_path / "lf", OPENAI, [openai_row() for _ in range(10)])
    info = json.loads((root / "dataset_info.json").read_text())
    info["heldout"] = info["demo"]
    (root / "dataset_info.json").write_text(json.dumps(info))
    assert len(load(root, role="test", test_split="heldout", llamafactory_dataset="demo").records) == 10
    ratios = {"llamafactory_dataset": "demo", "split_ratios": [0.8, 0.0, 0.2]}
    train, test = load(root, **ratios), load(root, role="test", **ratios)
    assert len(train.records) == 8 and len(test.records) == 2
    assert not {r.id for r in train.records} & {r.id for r in test.records}
    with pytest.raises(DataError, match="holds several datasets \\(demo, heldout\\); set llamafactory_dataset"):
        load(root)


def test_llamafactory_bad_inputs(tmp_path):
    rows = [openai_row(), openai_row(images=["imgs/a.png", "imgs/b.png"]), openai_row(text="no placeholder"),
            openai_row(images=["../outside.png"]), openai_row(answer=" ")]
    line_image(tmp_path / "outside.png")
    root = registry(tmp_path / "lf", OPENAI, rows)
    with pytest.raises(DataError, match=r"demo\.json:1 \(sample 'demo-1'\): field 'images' lists 2 image\(s\) "
                                        r"but the user message has 1 <image>"):
        load(root)
    report = load(root, "skip").report.as_dict()
    assert report["skipped"] == {"image_count_mismatch": 2, "outside_root": 1, "empty_target": 1}
    assert "set allow_outside_root: true" in " ".join(report["examples"])
    allowed = load(root, "skip", allow_outside_root=True).report.as_dict()
    assert allowed["kept"] == 2 and "outside_root" not in allowed["skipped"]


# --------------------------------------------------------------------------------------------
# CSV and JSONL manifests


def test_csv_manifest_with_split_column(tmp_path):
    line_image(tmp_path / "i" / "a.png")
    line_image(tmp_path / "i" / "b.png")
    (tmp_path / "m.csv").write_text('image,text,split\ni/a.png,"a, quoted",train\ni/b.png,b,test\n', encoding="utf-8")
    assert source_format(DatasetConfig(source=str(tmp_path / "m.csv"))) == "csv"
    train = load(tmp_path / "m.csv")
    assert [(r.id, r.target) for r in train.records] == [("train-2", "a, quoted")]
    assert [r.target for r in load(tmp_path / "m.csv", role="test").records] == ["b"]
    (tmp_path / "m.csv").write_text("image,text\ni/a.png,a,extra\n")
    with pytest.raises(DataError, match=r"m\.csv:2: more values than header columns"):
        load(tmp_path / "m.csv")


def test_jsonl_path_outside_root_is_refused(tmp_path):
    line_image(tmp_path / "outside.png")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text(json.dumps({"image": "../outside.png", "text": "x"}) + "\n")
    with pytest.raises(DataError, match=r"train\.jsonl:1 \(sample 'train-1'\): field 'image': image path "
                                        r"'\.\./outside\.png' leaves the dataset folder"):
        load(tmp_path / "data")
    assert load(tmp_path / "data", allow_outside_root=True).records[0].target == "x"


def test_ambiguous_folder_asks_for_a_format(tmp_path, line_folder):
    (line_folder / "train.jsonl").write_text("")
    with pytest.raises(DataError, match="holds jsonl and lines data; set format"):
        source_format(DatasetConfig(source=str(line_folder)))


# --------------------------------------------------------------------------------------------
# Hugging Face VQA


def test_hf_vqa_question_languages_answers_and_extra_groups(tmp_path):
    import datasets

    line_image(tmp_path / "a.png")
    table = datasets.Dataset.from_dict({
        "image": [str(tmp_path / "a.png")] * 3,
        "question": [{"en": "What is the date?", "fr": "Quelle date ?"}, {"en": "Total?", "fr": "Total ?"},
                     {"en": None, "fr": "Seulement ?"}],
        "answers": [["1 May", "May 1"], ["12"], ["x"]],
        "doc_type": ["letter", "invoice", "form"],
    }).cast_column("image", datasets.Image())
    datasets.DatasetDict({"test": table}).save_to_disk(str(tmp_path / "vqa"))
    settings = dict(role="test", task="vqa", question_column="question", answers_column="answers",
                    extra_columns=["doc_type"], prompt_template="Question: {question}\nAnswer briefly.")
    with pytest.raises(DataError, match="field 'question' is a per-language dict \\(en, fr\\); set question_language"):
        load(tmp_path / "vqa", **settings)
    samples = load(tmp_path / "vqa", "skip", question_language="en", **settings)
    records = samples.records
    assert [r.prompt for r in records] == ["Question: What is the date?\nAnswer briefly.", "Question: Total?\nAnswer briefly."]
    assert [(r.target, r.all_references, r.group) for r in records] == [
        ("1 May", ("1 May", "May 1"), "letter"), ("12", ("12",), "invoice")]
    assert samples.report.skipped == {"empty_question": 1}
    assert "row 2 (sample 'test-2'): field 'question.en' is empty or missing" in samples.report.examples[0]


# --------------------------------------------------------------------------------------------
# PAGE / ALTO bad inputs


def page_xml(tmp_path, replace: dict | None = None, image=True) -> Path:
    xml = (FIXTURES / "page2013.xml").read_text(encoding="utf-8")
    for old, new in (replace or {}).items():
        assert old in xml
        xml = xml.replace(old, new)
    (tmp_path / "p.xml").write_text(xml, encoding="utf-8")
    if image:
        Image.fromarray(np.zeros((300, 400, 3), dtype=np.uint8)).save(tmp_path / "page2013.png")
    return tmp_path / "p.xml"


def test_malformed_xml_names_file_and_line(tmp_path):
    path = page_xml(tmp_path, {"<TextEquiv><Unicode>Hello world</Unicode></TextEquiv>": "<TextEquiv><Unicode>Hello"})
    with pytest.raises(DataError, match=r"p\.xml:2[0-9]: not well-formed XML"):
        load(path)
    report = load(path, "skip").report.as_dict()
    assert report["skipped"] == {"malformed_xml": 1} and report["kept"] == 0


def test_missing_page_image(tmp_path):
    path = page_xml(tmp_path, image=False)
    with pytest.raises(DataError, match=r"p\.xml:34 \(sample 'p:l4'\): page image 'page2013\.png' not found"):
        load(path)
    assert load(path, "skip").report.skipped == {"missing_image": 4}


def test_polygon_outside_page_is_clipped_and_counted(tmp_path):
    path = page_xml(tmp_path, {'points="10,10 200,10 200,40 10,40"': 'points="-20,10 200,-5 450,40 10,320"'})
    samples = load(path)
    assert samples.records[1].image_ref.box == (0, 0, 400, 300)
    assert samples.report.adjusted == {"polygon_clipped": 1} and samples[1].image.size == (400, 300)


def test_zero_area_and_empty_lines(tmp_path):
    path = page_xml(tmp_path, {'points="10,10 200,10 200,40 10,40"': 'points="10,10 200,10"',
                               "<Unicode>a rotated line</Unicode>": "<Unicode>  </Unicode>"})
    with pytest.raises(DataError, match=r"p\.xml:\d+ \(sample 'p:l1'\): the line has zero area"):
        load(path)
    samples = load(path, "skip")
    assert samples.report.skipped == {"zero_area": 1, "empty_target": 1}
    assert [r.id for r in samples.records] == ["p:l4", "p:l3"]


def test_page_image_outside_root_is_refused(tmp_path):
    (tmp_path / "pages").mkdir()
    path = page_xml(tmp_path / "pages", {'imageFilename="page2013.png"': 'imageFilename="../elsewhere.png"'})
    Image.new("RGB", (400, 300)).save(tmp_path / "elsewhere.png")
    with pytest.raises(DataError, match="leaves the dataset folder"):
        load(tmp_path / "pages")
    assert len(load(path, allow_outside_root=True).records) == 4
