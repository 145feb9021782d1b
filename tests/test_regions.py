"""Florence-2 region answers parsed into image coordinates and drawn; task prompts vs chat prompts."""

import json

import pytest
from PIL import Image

from docvlm.cli import main
from docvlm.config import ModelConfig
from docvlm.models.loading import load_processor
from docvlm.predict.regions import draw_regions, parse_regions, region_task

from conftest import make_config


@pytest.fixture(scope="module")
def florence_processor(tiny_models):
    return load_processor(str(tiny_models["florence2"]), ModelConfig())


def test_boxes_are_parsed_into_image_pixels(florence_processor):
    # 1000 bins per side; a bin maps to its centre: x = (bin + 0.5) * width / 1000, truncated.
    text = "invoice<loc_100><loc_200><loc_300><loc_400>total<loc_0><loc_0><loc_999><loc_999>"
    regions = parse_regions(florence_processor, "<OD>", text, image_size=(1000, 500))
    assert regions == {"bboxes": [[100, 100, 300, 200], [0, 0, 999, 499]], "labels": ["invoice", "total"]}


def test_ocr_quads_keep_their_text(florence_processor):
    text = "Straße 12<loc_10><loc_20><loc_110><loc_20><loc_110><loc_60><loc_10><loc_60>"
    regions = parse_regions(florence_processor, "<OCR_WITH_REGION>", text, image_size=(2000, 1000))
    assert regions == {"quad_boxes": [[21, 20, 221, 20, 221, 60, 21, 60]], "labels": ["Straße 12"]}


def test_phrase_grounding_gives_one_box_per_location(florence_processor):
    text = "a signature<loc_500><loc_500><loc_600><loc_550><loc_700><loc_500><loc_800><loc_550>"
    regions = parse_regions(florence_processor, "<CAPTION_TO_PHRASE_GROUNDING>", text, image_size=(100, 100))
    assert regions == {"bboxes": [[50, 50, 60, 55], [70, 50, 80, 55]], "labels": ["a signature", "a signature"]}


def test_region_tasks_are_told_from_text_tasks(florence_processor):
    assert region_task(florence_processor, "<OD>") == "<OD>"
    assert region_task(florence_processor, "<CAPTION_TO_PHRASE_GROUNDING>a cat") == "<CAPTION_TO_PHRASE_GROUNDING>"
    assert region_task(florence_processor, "<OCR>") is None
    assert region_task(florence_processor, "<DocVQA>What is the total?") is None


def test_drawing_outlines_the_boxes(tmp_path):
    image = Image.new("RGB", (100, 60), "white")
    path = draw_regions(image, {"bboxes": [[10, 10, 50, 40], [95, 58, 70, 55]], "labels": ["x", "corners swapped"],
                                "quad_boxes": [[60, 10, 90, 10, 90, 50, 60, 50]]}, tmp_path / "a.png")
    drawn = Image.open(path)
    assert drawn.size == (100, 60) and drawn.format == "PNG"
    assert drawn.getpixel((30, 40)) == (255, 0, 0)      # bottom edge of the box
    assert drawn.getpixel((60, 30)) == (0, 160, 255)    # left edge of the quad
    assert drawn.getpixel((30, 25)) == (255, 255, 255)  # inside stays untouched
    assert drawn.getpixel((95, 57)) == (255, 0, 0)      # a box written bottom-right first is drawn too
    assert image.getpixel((30, 40)) == (255, 255, 255)  # the input image is not modified


def test_predict_draw_writes_regions_and_pictures(tiny_models, lines_dir, tmp_path, capsys):
    out, pictures = tmp_path / "p.jsonl", tmp_path / "drawn"
    images = lines_dir / "images" / "test"
    code = main(["predict", str(tiny_models["florence2"]), str(images), "--prompt", "<OD>", "--draw", str(pictures),
                 "--output", str(out), "--max-new-tokens", "8", "--batch-size", "3"])
    assert code == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6
    for row in rows:
        assert set(row["regions"]) == {"bboxes", "labels"}
        assert (pictures / (row["id"][:-4] + ".png")).is_file()


@pytest.mark.parametrize("family, prompt, message", [
    ("florence2", "Transcribe the text in this image.", "driven by task prompts such as <OCR>"),
    ("qwen2_vl", "<OCR>", "is a chat model: the prompt '<OCR>' starts with the Florence-2 task token"),
])
def test_wrong_kind_of_prompt_is_a_clear_error(tiny_models, lines_dir, family, prompt, message, capsys):
    image = lines_dir / "images" / "test" / "test-000000.png"
    assert main(["predict", str(tiny_models[family]), str(image), "--prompt", prompt]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err


def test_draw_needs_a_region_task(tiny_models, lines_dir, tmp_path, capsys):
    image = lines_dir / "images" / "test" / "test-000000.png"
    assert main(["predict", str(tiny_models["qwen2_vl"]), str(image), "--draw", str(tmp_path)]) == 2
    assert "--draw needs a region task prompt" in capsys.readouterr().err


def test_task_token_in_a_chat_family_config_fails_at_the_first_batch(tiny_models, lines_dir, tmp_path):
    from docvlm.errors import ModelError
    from docvlm.train.trainer import run_training

    cfg = make_config(tmp_path, tiny_models["qwen2_vl"], lines_dir, "--data.datasets.0.task_token", "<OCR>",
                      "--train.max_steps", "1", "--train.eval_steps", "0")
    with pytest.raises(ModelError, match="qwen2_vl is a chat model"):
        run_training(cfg)


def test_pixel_budget_on_a_family_without_one_is_a_config_error(tiny_models, lines_dir, tmp_path):
    from docvlm.errors import ConfigError
    from docvlm.train.trainer import run_training

    cfg = make_config(tmp_path, tiny_models["idefics3"], lines_dir, "--train.max_steps", "1", "--train.eval_steps", "0")
    with pytest.raises(ConfigError, match="idefics3 has no pixel-area budget"):
        run_training(cfg)
    bad = make_config(tmp_path, tiny_models["idefics3"], lines_dir, "--model.processor_options", "{image_seq_len: 4}")
    from docvlm.models.loading import load_base

    with pytest.raises(ConfigError, match=r"processor_options.image_seq_len: not an option of the idefics3 processor "
                                          r"\(allowed: do_image_splitting, size\)"):
        load_base(bad.model)


def test_florence_size_must_keep_its_visual_token_count(tiny_models, lines_dir, tmp_path):
    from docvlm.errors import ConfigError
    from docvlm.models.loading import load_base

    cfg = make_config(tmp_path, tiny_models["florence2"], lines_dir, "--model.processor_options",
                      "{size: {height: 56, width: 224}}")
    with pytest.raises(ConfigError, match=r"florence2 reads every image as 9 visual tokens; 56x224 gives its vision "
                                          r"tower 16 cells, not the 8 of the current 28x224"):
        load_base(cfg.model)
