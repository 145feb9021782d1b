"""docvlm against the published checkpoints' own files (tests/fixtures/checkpoints; SOURCES.md says
where each came from and which families have none yet).

A tiny model built by docvlm proves nothing about the real checkpoints unless the two agree, so
these tests read the real ``config.json``, processor settings and chat templates: the family is
detected from the real config, the spec's module prefixes and default LoRA targets exist in a model
built from the real config (layers and widths scaled down, module names unchanged), the labels are
masked with the real template, and the real processor settings survive a docvlm checkpoint.
"""

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from docvlm.config import ModelConfig, TuningConfig
from docvlm.data.schema import PixelBudget, Record, Sample
from docvlm.models.families import FAMILIES, family_for_model_type
from docvlm.models.loading import load_processor
from docvlm.models.prompting import IGNORE_INDEX, ChatFormat, TrainingCollator, apply_pixel_budget, encode_prompts
from docvlm.models.tiny import FLORENCE_POST_PROCESSING

FIXTURES = Path(__file__).parent / "fixtures" / "checkpoints"
WITH_FIXTURES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


def published(family: str, name: str) -> dict:
    return json.loads((FIXTURES / family / name).read_text())


def test_sources_list_every_fixture_file():
    sources = (FIXTURES / "SOURCES.md").read_text()
    for path in FIXTURES.glob("*/*"):
        assert f"{path.parent.name}/{path.name}" in sources, path


@pytest.mark.parametrize("family", WITH_FIXTURES)
def test_family_is_detected_from_the_published_config(family):
    assert family_for_model_type(published(family, "config.json")["model_type"]).name == family


# --- the spec against a model built from the real config ---------------------------------------

def _scale_qwen_text(config) -> None:
    """One decoder layer and small widths; module names are unchanged."""
    text = config.text_config
    text.num_hidden_layers, text.hidden_size, text.intermediate_size = 1, 64, 128
    text.num_attention_heads, text.num_key_value_heads, text.vocab_size = 4, 2, 1000
    if getattr(text, "layer_types", None):  # Qwen2-VL / Qwen2.5-VL list one entry per layer
        text.layer_types = text.layer_types[:1]
    # M-RoPE sections split half the head dimension (16 / 2 = 8), as [16, 24, 24] split 128 / 2.
    text.rope_parameters = {**text.rope_parameters, "mrope_section": [2, 3, 3]}


def scaled_qwen2_vl():
    """Qwen2-VL-2B's config with 1 layer per tower and small widths."""
    from transformers import AutoConfig, Qwen2VLForConditionalGeneration

    config = AutoConfig.from_pretrained(FIXTURES / "qwen2_vl")
    _scale_qwen_text(config)
    vision = config.vision_config
    vision.depth, vision.embed_dim, vision.num_heads, vision.hidden_size = 1, 32, 2, 64
    return Qwen2VLForConditionalGeneration(config)


def scaled_qwen2_5_vl():
    """Qwen2.5-VL-3B-Instruct's config (window-attention vision tower, SwiGLU vision MLP) scaled
    down the same way."""
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    config = AutoConfig.from_pretrained(FIXTURES / "qwen2_5_vl")
    _scale_qwen_text(config)
    vision = config.vision_config
    vision.depth, vision.hidden_size, vision.intermediate_size = 2, 32, 64
    vision.num_heads, vision.out_hidden_size = 2, 64
    vision.fullatt_block_indexes = [1]  # one windowed and one full-attention block, as 7/15/23/31 of 32
    return Qwen2_5_VLForConditionalGeneration(config)


def scaled_qwen3_vl():
    """Qwen3-VL's config (published with Qwen3-VL-Embedding-8B: Qwen3-VL-8B's architecture, deepstack
    mergers) scaled down; the interleaved M-RoPE sections split half the 16-wide head."""
    from transformers import AutoConfig, Qwen3VLForConditionalGeneration

    config = AutoConfig.from_pretrained(FIXTURES / "qwen3_vl")
    _scale_qwen_text(config)
    config.text_config.head_dim = 16
    config.text_config.rope_parameters = {**config.text_config.rope_parameters, "mrope_section": [3, 3, 2]}
    vision = config.vision_config
    vision.depth, vision.hidden_size, vision.intermediate_size = 2, 32, 64
    vision.num_heads, vision.out_hidden_size, vision.num_position_embeddings = 2, 64, 64
    vision.deepstack_visual_indexes = [0]  # one deepstack merger, as 8/16/24 of 27
    return Qwen3VLForConditionalGeneration(config)


def scaled_idefics3():
    """granite-docling-258M's config (Idefics3: SigLIP tower, pixel-shuffle connector with scale
    factor 4, Llama text model) scaled down."""
    from transformers import AutoConfig, Idefics3ForConditionalGeneration

    config = AutoConfig.from_pretrained(FIXTURES / "idefics3")
    text = config.text_config
    text.num_hidden_layers, text.hidden_size, text.intermediate_size, text.head_dim = 1, 64, 128, 16
    text.num_attention_heads, text.num_key_value_heads, text.vocab_size = 4, 2, 1000
    text.pad_token_id = 0  # the published id (100257) lies beyond the scaled vocabulary
    vision = config.vision_config
    vision.num_hidden_layers, vision.hidden_size, vision.intermediate_size, vision.num_attention_heads = 1, 32, 64, 2
    return Idefics3ForConditionalGeneration(config)


def scaled_smolvlm():
    """SmolVLM2-500M-Video-Instruct's config (SigLIP tower, pixel shuffle with scale factor 4, Llama
    text model) scaled down."""
    from transformers import AutoConfig, SmolVLMForConditionalGeneration

    config = AutoConfig.from_pretrained(FIXTURES / "smolvlm")
    text = config.text_config
    text.num_hidden_layers, text.hidden_size, text.intermediate_size, text.head_dim = 1, 64, 128, 16
    text.num_attention_heads, text.num_key_value_heads, text.vocab_size = 4, 2, 1000
    vision = config.vision_config
    vision.num_hidden_layers, vision.hidden_size, vision.intermediate_size, vision.num_attention_heads = 1, 32, 64, 2
    return SmolVLMForConditionalGeneration(config)


def florence_native_config(original: dict):
    """microsoft/Florence-2-base-ft's config.json (written for its remote code: ``florence2_language``
    text config, DaViT keys ``dim_embed``/``image_pos_embed``) as transformers' native Florence2Config,
    the layout of the converted florence-community checkpoints docvlm loads; scaled down."""
    from transformers import Florence2Config

    text = {k: v for k, v in original["text_config"].items() if not k.startswith("_")}
    text.update(model_type="bart", encoder_layers=1, decoder_layers=1, d_model=32, encoder_attention_heads=2,
                decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=1000)
    davit = original["vision_config"]
    stages = len(davit["depths"])
    vision = dict(embed_dim=[8, 16, 16, 32][:stages], depths=[1] * stages, num_heads=[1, 2, 2, 4][:stages],
                  num_groups=[1, 2, 2, 4][:stages], patch_size=davit["patch_size"], patch_stride=davit["patch_stride"],
                  patch_padding=davit["patch_padding"], patch_prenorm=davit["patch_prenorm"],
                  window_size=davit["window_size"], projection_dim=32,
                  max_position_embeddings=davit["image_pos_embed"]["max_pos_embeddings"])
    return Florence2Config(text_config=text, vision_config=vision)


def scaled_florence2():
    from transformers import Florence2ForConditionalGeneration

    return Florence2ForConditionalGeneration(florence_native_config(published("florence2", "config.json")))


SCALED = {"qwen2_vl": scaled_qwen2_vl, "qwen2_5_vl": scaled_qwen2_5_vl, "qwen3_vl": scaled_qwen3_vl,
          "idefics3": scaled_idefics3, "smolvlm": scaled_smolvlm, "florence2": scaled_florence2}


@pytest.mark.parametrize("family", sorted(SCALED))
def test_spec_prefixes_and_default_lora_targets_exist_in_the_real_architecture(family):
    spec = FAMILIES[family]
    model = SCALED[family]()
    names = [n for n, _ in model.named_modules()]
    for component, parts in spec.components().items():
        for part in parts:
            assert part.prefix in names, f"{component}: no module {part.prefix}"
    linear = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    defaults = [c for c in ("vision", "projector", "language") if c not in _frozen_by_default()]
    targets = {n for n in linear if re.fullmatch(spec.lora_target_regex(defaults), n)}
    for component in defaults:  # every default component gets adapters, and only those do
        assert any(spec.component_of(n) == component for n in targets), component
    assert {spec.component_of(n) for n in targets} == set(defaults)
    everything = spec.lora_target_regex(["vision", "projector", "language"])
    assert sorted(n for n in linear if n != "lm_head" and not re.fullmatch(everything, n)) == []


def _frozen_by_default() -> set[str]:
    tuning = TuningConfig()
    return {name for name, frozen in (("vision", tuning.freeze_vision), ("projector", tuning.freeze_projector),
                                      ("language", tuning.freeze_language)) if frozen}


# --- label masking with the real chat template ---------------------------------------------------

def _sample(target: str, prompt: str, budget: PixelBudget) -> Sample:
    record = Record(id="s", target=target, image_ref="-", prompt=prompt, dataset="d", task="transcription",
                    budget=budget, where="sample s")
    return Sample(record, Image.new("RGB", (112, 28), "white"))


# family -> (its published chat template, the system turn that template writes by default)
def trained_prompts(chat: ChatFormat, samples: list[Sample], end: str) -> list[str]:
    """Check one training batch against inference: each row's labels decode to exactly the answer
    + ``end``, and its prompt tokens are what the template renders for generation, all masked.
    Returns each sample's rendered generation prompt, for the caller to compare with the template."""
    batch = TrainingCollator(chat)(samples)
    tokenizer = chat.processor.tokenizer
    rendered = []
    for row, s in enumerate(samples):
        labels = batch["labels"][row]
        assert tokenizer.decode(labels[labels != IGNORE_INDEX]) == s.target + end
        inference = encode_prompts(chat, [s], padding_side="left")["input_ids"][0]
        assert batch["input_ids"][row][: len(inference)].tolist() == inference.tolist()
        assert (labels[: len(inference)] == IGNORE_INDEX).all()
        rendered.append(tokenizer.decode(inference))
    return rendered


CHAT_TEMPLATES = {
    "qwen2_vl": (lambda: published("qwen2_vl", "instruct_chat_template.json")["chat_template"],
                 "You are a helpful assistant."),
    "qwen3_vl": (lambda: (FIXTURES / "qwen3_vl" / "chat_template.jinja").read_text(),
                 "Represent the user's input."),
}


@pytest.mark.parametrize("family", sorted(CHAT_TEMPLATES))
def test_qwen_labels_with_the_published_template(family, tiny_models):
    """Both published templates write a default system turn (Qwen2-VL-Instruct's, and Qwen3-VL-
    Embedding's, whose Jinja also trims whitespace and reads ``content.type``); the labels must still
    be exactly the answer + <|im_end|>, and the prompt tokens exactly what the template renders for
    inference."""
    template, system = CHAT_TEMPLATES[family]
    processor = load_processor(str(tiny_models[family]), ModelConfig())
    processor.chat_template = template()
    chat = ChatFormat(processor, FAMILIES[family])
    budget = PixelBudget(1024, 8192) if family == "qwen3_vl" else PixelBudget(784, 6272)
    samples = [_sample("1234", "Transcribe the text in this image.", budget), _sample("7", "Read it.", budget)]
    for s, rendered in zip(samples, trained_prompts(chat, samples, "<|im_end|>")):
        assert rendered.replace("<|image_pad|>", "") == (
            f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n"
            f"<|vision_start|><|vision_end|>{s.prompt}<|im_end|>\n<|im_start|>assistant\n")


def test_tiny_qwen_templates_render_like_the_published_ones(tiny_models):
    """The tiny models' templates against the published files: Qwen2-VL's is the Instruct template
    itself; Qwen3-VL's renders exactly like the published Qwen3-VL template once a conversation
    brings its own system turn (without one, the Embedding checkpoint adds "Represent the user's
    input.", which the Instruct checkpoints' template does not)."""
    from docvlm.models.tiny import QWEN3_VL_CHAT_TEMPLATE, QWEN_VL_CHAT_TEMPLATE

    assert QWEN_VL_CHAT_TEMPLATE == CHAT_TEMPLATES["qwen2_vl"][0]()
    processor = load_processor(str(tiny_models["qwen3_vl"]), ModelConfig())
    conversation = [
        {"role": "system", "content": [{"type": "text", "text": "Read the line."}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What does it say?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "1234"}]},
        {"role": "user", "content": "And this one?"},
    ]
    for generation_prompt in (True, False):
        tiny, real = (processor.apply_chat_template(conversation, chat_template=template, tokenize=False,
                                                    add_generation_prompt=generation_prompt)
                      for template in (QWEN3_VL_CHAT_TEMPLATE, CHAT_TEMPLATES["qwen3_vl"][0]()))
        assert tiny == real
    assert "Represent the user's input." in processor.apply_chat_template(
        conversation[1:], chat_template=CHAT_TEMPLATES["qwen3_vl"][0](), tokenize=False)


def granite_docling_processor(tiny_models):
    """docvlm's tiny Idefics3 processor with granite-docling-258M's chat template, its role and end
    tokens (as its tokenizer_config.json names them) and its own image processor settings."""
    from transformers import AutoImageProcessor, Idefics3Processor

    real = published("idefics3", "tokenizer_config.json")
    tokenizer = load_processor(str(tiny_models["idefics3"]), ModelConfig()).tokenizer
    tokenizer.add_tokens([real["bos_token"], "<|end_of_role|>", real["eos_token"]], special_tokens=True)
    tokenizer.eos_token = real["eos_token"]
    return Idefics3Processor(image_processor=AutoImageProcessor.from_pretrained(FIXTURES / "idefics3"),
                             tokenizer=tokenizer, image_seq_len=published("idefics3", "processor_config.json")[
                                 "image_seq_len"], chat_template=(FIXTURES / "idefics3" / "chat_template.jinja").read_text())


def test_idefics3_labels_with_granite_docling_template(tiny_models):
    """granite-docling-258M is an Idefics3 model whose template closes turns with <|end_of_text|>
    (its eos token), not SmolVLM's <end_of_utterance>: the labels are the answer + <|end_of_text|>,
    and the prompt tokens what the template renders for inference."""
    processor = granite_docling_processor(tiny_models)
    chat = ChatFormat(processor, FAMILIES["idefics3"])
    samples = [_sample("1234", "Convert this page to docling.", PixelBudget()), _sample("7", "OCR", PixelBudget())]
    for s, rendered in zip(samples, trained_prompts(chat, samples, "<|end_of_text|>")):
        assert rendered.startswith("<|start_of_role|>user<|end_of_role|><fake_token_around_image>")
        assert rendered.endswith(f"<fake_token_around_image>{s.prompt}<|end_of_text|>\n"
                                 "<|start_of_role|>assistant<|end_of_role|>")


def test_qwen2_vl_base_template_is_not_a_chat_template(tiny_models):
    """The base checkpoint (Qwen2-VL-2B) ships a template without roles, which renders a user turn as
    nothing: docvlm says so in one error instead of the processor's image-count traceback."""
    from docvlm.errors import ModelError

    processor = load_processor(str(tiny_models["qwen2_vl"]), ModelConfig())
    processor.chat_template = published("qwen2_vl", "chat_template.json")["chat_template"]
    chat = ChatFormat(processor, FAMILIES["qwen2_vl"])
    with pytest.raises(ModelError, match="does not render the image placeholder <\\|image_pad\\|>"):
        TrainingCollator(chat)([_sample("1", "Read it.", PixelBudget(784, 6272))])


def test_florence2_task_prompts_and_answer_parsing_match_the_published_processor(tiny_models):
    """Florence-2-base-ft's preprocessor_config maps each task token to its answer parser; the
    processor docvlm loads must parse every task the same way, and docvlm's tiny processor must
    carry a parser setting for each parser kind the published checkpoint uses."""
    processor = load_processor(str(tiny_models["florence2"]), ModelConfig())
    expected = published("florence2", "preprocessor_config.json")["tasks_answer_post_processing_type"]
    assert processor.tasks_answer_post_processing_type == expected
    assert set(expected.values()) <= set(FLORENCE_POST_PROCESSING)
    # The encoder reads the task token spelled out as the processor's task prompt.
    ids = processor(text="<OCR>", images=Image.new("RGB", (64, 64)), return_tensors="pt")["input_ids"][0]
    assert processor.tokenizer.decode(ids).replace("<image>", "") == "<s>What is the text in the image?</s>"


# --- the real processor settings through a docvlm checkpoint ------------------------------------

@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_qwen_published_pixel_budget_round_trips(family, tiny_models, tmp_path):
    """The published min/max_pixels are what docvlm reads as the budget, and a docvlm budget is
    written back under the keys the real processor reads."""
    from transformers import AutoImageProcessor, AutoProcessor

    from docvlm.models.prompting import pixel_budget_of

    real = published(family, "preprocessor_config.json")
    assert real["image_processor_type"].startswith("Qwen2VLImageProcessor")
    processor = load_processor(str(tiny_models[family]), ModelConfig())
    assert type(processor).__name__ == real["processor_class"]
    processor.image_processor = AutoImageProcessor.from_pretrained(FIXTURES / family)
    spec = FAMILIES[family]
    assert pixel_budget_of(processor, spec) == PixelBudget(real["min_pixels"], real["max_pixels"])
    apply_pixel_budget(processor, spec, PixelBudget(28 * 28 * 4, 28 * 28 * 256))
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())["image_processor"]
    assert "max_pixels" not in saved  # a stale max_pixels would override the saved size on loading
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(reloaded).__name__ == real["processor_class"]
    image_processor = reloaded.image_processor
    assert (image_processor.size["shortest_edge"], image_processor.size["longest_edge"]) == (3136, 200704)
    assert (image_processor.patch_size, image_processor.merge_size) == (real["patch_size"], real["merge_size"])


def florence2_with_published_image_settings(tiny_models):
    """docvlm's tiny Florence-2 processor with the image processor of Florence-2-base-ft's own file."""
    from transformers import CLIPImageProcessor, Florence2Processor

    real = published("florence2", "preprocessor_config.json")
    assert real["image_processor_type"] == "CLIPImageProcessor"
    settings = {k: v for k, v in real.items() if not k.startswith("_") and k not in
                ("image_processor_type", "processor_class", "tasks_answer_post_processing_type")}
    tiny = load_processor(str(tiny_models["florence2"]), ModelConfig())
    return Florence2Processor(image_processor=CLIPImageProcessor(**settings), tokenizer=tiny.tokenizer,
                              post_processor_config=FLORENCE_POST_PROCESSING), real


def test_florence2_published_image_size_round_trips(tiny_models, tmp_path):
    """Florence-2's fixed 768 x 768 input (577 visual tokens) survives a docvlm checkpoint; a size
    option must keep the area, since the prompt holds a fixed number of image tokens."""
    from transformers import AutoProcessor

    from docvlm.errors import ConfigError
    from docvlm.models.loading import apply_processor_options

    processor, real = florence2_with_published_image_settings(tiny_models)
    spec = FAMILIES["florence2"]
    with pytest.raises(ConfigError, match="height \\* width"):
        apply_processor_options(processor, spec, {"size": {"height": 512, "width": 512}})
    # With the published tower's config the grid itself is compared: 144 x 4096 has the area of
    # 768 x 768 but gives DaViT 5 x 128 = 640 cells, not 24 x 24 = 576.
    published = json.loads((FIXTURES / "florence2" / "config.json").read_text())
    tower = SimpleNamespace(vision_config=SimpleNamespace(**published["vision_config"]))
    with pytest.raises(ConfigError, match="640 cells, not the 576"):
        apply_processor_options(processor, spec, {"size": {"height": 144, "width": 4096}}, tower)
    apply_processor_options(processor, spec, {"size": {"height": 576, "width": 1024}}, tower)  # 18 x 32 cells
    apply_processor_options(processor, spec, {"size": {"height": 768, "width": 768}}, tower)
    processor.save_pretrained(tmp_path / "as-published")
    reloaded = AutoProcessor.from_pretrained(tmp_path / "as-published")
    assert {k: v for k, v in vars(reloaded.image_processor.size).items() if v is not None} == real["size"]
    assert reloaded.image_processor.image_seq_length == real["image_seq_length"] == 577
    pixels = reloaded(text="<OCR>", images=Image.new("RGB", (100, 30)), return_tensors="pt")["pixel_values"]
    assert tuple(pixels.shape[-2:]) == (768, 768)
    # A line-shaped input of the same area (384 x 1536) is allowed and saved with the checkpoint.
    apply_processor_options(processor, spec, {"size": {"height": 384, "width": 1536}})
    processor.save_pretrained(tmp_path / "lines")
    pixels = AutoProcessor.from_pretrained(tmp_path / "lines")(
        text="<OCR>", images=Image.new("RGB", (100, 30)), return_tensors="pt")["pixel_values"]
    assert tuple(pixels.shape[-2:]) == (384, 1536)


# --- the original Florence-2 layout is refused in one line ---------------------------------------

def test_original_remote_code_florence2_is_refused_with_the_converted_name(tmp_path):
    """microsoft/Florence-2-base-ft's own config.json (written for its remote code) gets one error
    that names the converted checkpoint, not transformers' list of every model type."""
    from docvlm.errors import ModelError
    from docvlm.models.loading import load_base

    (tmp_path / "config.json").write_bytes((FIXTURES / "florence2" / "config.json").read_bytes())
    with pytest.raises(ModelError) as error:
        load_base(ModelConfig(name_or_path=str(tmp_path)))
    message = str(error.value)
    assert "\n" not in message and len(message) < 400
    assert "remote-code layout" in message and "florence-community/Florence-2-base-ft" in message
    with pytest.raises(ModelError, match="converted checkpoint florence-community/Florence-2-large "):
        load_base(ModelConfig(name_or_path="microsoft/Florence-2-large"))  # offline: known by name


def smolvlm_processor(tiny_models):
    """docvlm's tiny SmolVLM2 processor (tokenizer, video processor, template) with
    SmolVLM2-500M-Video-Instruct's image processor settings and image_seq_len."""
    from transformers import AutoImageProcessor, SmolVLMProcessor

    tiny = load_processor(str(tiny_models["smolvlm"]), ModelConfig())
    return SmolVLMProcessor(image_processor=AutoImageProcessor.from_pretrained(FIXTURES / "smolvlm"),
                            tokenizer=tiny.tokenizer, video_processor=tiny.video_processor,
                            image_seq_len=published("smolvlm", "processor_config.json")["image_seq_len"],
                            chat_template=tiny.chat_template)


@pytest.mark.parametrize("family,processor_of", [("idefics3", granite_docling_processor),
                                                 ("smolvlm", smolvlm_processor)])
def test_idefics3_style_published_image_splitting_round_trips(tiny_models, tmp_path, family, processor_of):
    """granite-docling-258M's (Idefics3) and SmolVLM2-500M-Video-Instruct's processor settings
    (images resized to a 2048-pixel long edge, split into 512-pixel tiles plus a global view, 64
    visual tokens each) load, count the visual tokens as published, refuse a pixel-area budget,
    and survive a docvlm checkpoint with the options a config may change."""
    from transformers import AutoProcessor

    from docvlm.errors import ConfigError
    from docvlm.models.loading import apply_processor_options

    real = published(family, "preprocessor_config.json")
    processor = processor_of(tiny_models)
    spec = FAMILIES[family]
    image_token = processor.tokenizer.convert_tokens_to_ids("<image>")
    line = Image.new("RGB", (1024, 128), "white")  # -> 2048 x 256: 4 tiles of 512 + the global view
    ids = processor(text="<image>", images=[[line]], return_tensors="pt")["input_ids"][0]
    assert int((ids == image_token).sum()) == (4 + 1) * 64
    with pytest.raises(ConfigError, match="no pixel-area budget"):
        apply_pixel_budget(processor, spec, PixelBudget(784, 3136))
    processor.save_pretrained(tmp_path / "as-published")
    reloaded = AutoProcessor.from_pretrained(tmp_path / "as-published")
    assert type(reloaded) is type(processor)
    assert reloaded.image_seq_len == published(family, "processor_config.json")["image_seq_len"] == 64
    image_processor = reloaded.image_processor
    assert image_processor.do_image_splitting is real["do_image_splitting"] is True
    assert image_processor.size["longest_edge"] == real["size"]["longest_edge"] == 2048
    assert image_processor.max_image_size == real["max_image_size"]
    apply_processor_options(processor, spec, {"do_image_splitting": False, "size": {"longest_edge": 1024}})
    processor.save_pretrained(tmp_path / "tuned")
    reloaded = AutoProcessor.from_pretrained(tmp_path / "tuned")
    assert (reloaded.image_processor.do_image_splitting, reloaded.image_processor.size["longest_edge"]) == (False, 1024)
    ids = reloaded(text="<image>", images=[[line]], return_tensors="pt")["input_ids"][0]
    assert int((ids == image_token).sum()) == 64  # one global view, no tiles
