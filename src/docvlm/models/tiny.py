"""Tiny random-weight models of the real architectures, for tests and the offline demo.

Each builder writes a folder that loads exactly like ``Qwen/Qwen2-VL-2B-Instruct``: the real
config, model, image/video processor and processor classes, a byte-level BPE tokenizer trained
here on a small corpus but carrying the family's special tokens, and a chat template that
produces the family's real prompt format. Nothing is downloaded.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from docvlm.errors import ModelError
from docvlm.models.families import FAMILIES

# The published Qwen2-VL / Qwen2.5-VL chat template (their tokenizer_config.json), which tiny
# models need because they have no hub checkpoint to inherit it from. Real checkpoints bring their
# own; docvlm never applies this one to them. Identical to Qwen2-VL-2B-Instruct's published template
# (tests/test_checkpoint_fixtures.py compares them).
QWEN_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen3-VL-Instruct's template writes the same turns without a default system message (the
# published one also handles tools and reasoning blocks, which docvlm never sends). It renders like the
# published Qwen3-VL template whenever a conversation brings its own system turn (checked against
# Qwen3-VL-Embedding-8B's file in tests/test_checkpoint_fixtures.py).
QWEN3_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# HuggingFaceM4/idefics2-8b's template, and SmolVLM-Instruct's (model_type idefics3), which only
# adds the leading <|im_start|>: "User:<image>question<end_of_utterance>\nAssistant: answer".
_IDEFICS_TURNS = (
    "{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
IDEFICS2_CHAT_TEMPLATE = _IDEFICS_TURNS
IDEFICS3_CHAT_TEMPLATE = "<|im_start|>" + _IDEFICS_TURNS
# SmolVLM2's template (HuggingFaceTB/SmolVLM2-256M-Video-Instruct) also writes <video> parts.
SMOLVLM_CHAT_TEMPLATE = IDEFICS3_CHAT_TEMPLATE.replace(
    "{{ '<image>' }}{% endif %}", "{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}")

IDEFICS_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<image>",
                          "<fake_token_around_image>", "<global-img>"] + [
    f"<row_{row}_col_{col}>" for row in range(1, 7) for col in range(1, 7)]

# Florence-2's BART vocabulary carries 1000 location bins and the region markers its outputs use.
FLORENCE_SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "<image>"]
FLORENCE_ADDED_TOKENS = ["<od>", "</od>", "<ocr>", "</ocr>", "<poly>", "</poly>", "<sep>"] + [
    f"<loc_{i}>" for i in range(1000)]

QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]


@dataclass(frozen=True)
class TinySize:
    layers: int = 4
    hidden: int = 128
    heads: int = 4
    kv_heads: int = 2
    vision_layers: int = 2
    vision_hidden: int = 128
    vision_heads: int = 4
    init_std: float = 0.12
    """Weight init std. The families' 0.02 suits hidden sizes in the thousands; at 128 it makes
    attention logits far too small and a model trained from scratch barely looks at the image
    (demo digits, lr 1e-3, eval CER: 0.05 -> loss stuck at chance, 0.08 -> 24% after 2000 steps,
    0.12 -> 8% after 2500, 0.2 -> still at chance after 1000)."""


def _tokenizer_corpus() -> list[str]:
    """Text the tiny BPE learns merges from: chat words, prompts, digits, letters and punctuation."""
    words = ("system user assistant You are a helpful Transcribe the text in this image . Read line "
             "What is written here ? Answer question document page total amount date name")
    lines = [words, string.digits * 4, string.ascii_letters, string.punctuation, "0123456789 " * 8]
    lines += [" ".join(str(n) for n in range(i, i + 50)) for i in range(0, 1000, 50)]
    return lines * 4


def train_byte_level_tokenizer(special_tokens: list[str], vocab_size: int = 600):
    """Byte-level BPE with Qwen2's pre-tokenizer, returning (vocab, merges)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_tokenizer_corpus(), trainer=trainer)
    model = json.loads(tokenizer.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return model["vocab"], merges


def _byte_level_tokenizer(tokenizer_class, special_tokens: list[str], added_tokens: tuple[str, ...] = (),
                          **kwargs):
    """A ``tokenizer_class`` over a locally trained byte-level BPE carrying ``special_tokens``."""
    from tokenizers import AddedToken

    vocab, merges = train_byte_level_tokenizer(special_tokens)
    tokenizer = tokenizer_class(vocab=vocab, merges=merges, errors="replace", **kwargs)
    if added_tokens:
        # Plain (not special) added tokens, as in Florence-2's vocabulary: decoding keeps them.
        tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in added_tokens])
    tokenizer.model_max_length = 32768
    return tokenizer


def _qwen_tokenizer():
    from transformers import Qwen2Tokenizer

    return _byte_level_tokenizer(Qwen2Tokenizer, QWEN_SPECIAL_TOKENS, unk_token=None, bos_token=None,
                                 eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                 extra_special_tokens=QWEN_SPECIAL_TOKENS)


def _qwen_processor(tokenizer, processor_class):
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    # Small default budget, like a line-level HTR config: a tiny model has no use for 1 MP images.
    image_processor = Qwen2VLImageProcessor(min_pixels=28 * 28, max_pixels=28 * 28 * 64)
    video_processor = Qwen2VLVideoProcessor()
    return processor_class(image_processor=image_processor, tokenizer=tokenizer,
                           video_processor=video_processor, chat_template=QWEN_VL_CHAT_TEMPLATE)


def _qwen_text_config(tokenizer, size: TinySize) -> dict:
    head_dim = size.hidden // size.heads
    # M-RoPE splits half the head dimension into temporal / height / width sections.
    half = head_dim // 2
    section = [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]
    return dict(
        vocab_size=len(tokenizer), hidden_size=size.hidden, intermediate_size=size.hidden * 2,
        num_hidden_layers=size.layers, num_attention_heads=size.heads, num_key_value_heads=size.kv_heads,
        max_position_embeddings=4096, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                       "mrope_section": section},
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id, initializer_range=size.init_std,
    )


def _qwen_token_ids(tokenizer) -> dict:
    ids = tokenizer.convert_tokens_to_ids
    return dict(image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
                vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"))


def _qwen_vision_config(size: TinySize, patch_size: int, **specific) -> dict:
    """Qwen2.5-VL / Qwen3-VL vision tower (Qwen2-VL's names its sizes differently)."""
    return dict(depth=size.vision_layers, hidden_size=size.vision_hidden, intermediate_size=size.vision_hidden * 2,
                out_hidden_size=size.hidden, num_heads=size.vision_heads, patch_size=patch_size,
                spatial_merge_size=2, temporal_patch_size=2, initializer_range=size.init_std, **specific)


def _build_qwen2_vl(size: TinySize):
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor

    tokenizer = _qwen_tokenizer()
    config = Qwen2VLConfig(
        text_config=_qwen_text_config(tokenizer, size),
        vision_config=dict(depth=size.vision_layers, embed_dim=size.vision_hidden, hidden_size=size.hidden,
                           num_heads=size.vision_heads, mlp_ratio=2, patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2, initializer_range=size.init_std),
        tie_word_embeddings=True,
        **_qwen_token_ids(tokenizer),
    )
    return Qwen2VLForConditionalGeneration(config), _qwen_processor(tokenizer, Qwen2VLProcessor)


def _build_qwen2_5_vl(size: TinySize):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor

    tokenizer = _qwen_tokenizer()
    config = Qwen2_5_VLConfig(
        text_config=_qwen_text_config(tokenizer, size),
        vision_config=_qwen_vision_config(size, patch_size=14, window_size=56,
                                          fullatt_block_indexes=[size.vision_layers - 1]),
        tie_word_embeddings=True,
        **_qwen_token_ids(tokenizer),
    )
    return Qwen2_5_VLForConditionalGeneration(config), _qwen_processor(tokenizer, Qwen2_5_VLProcessor)


def _build_qwen3_vl(size: TinySize):
    from transformers import (Qwen2VLImageProcessor, Qwen3VLConfig, Qwen3VLForConditionalGeneration,
                              Qwen3VLProcessor, Qwen3VLVideoProcessor)

    tokenizer = _qwen_tokenizer()
    text = _qwen_text_config(tokenizer, size)
    # Qwen3-VL interleaves the M-RoPE sections and gives the head dimension explicitly.
    text.update(head_dim=size.hidden // size.heads,
                rope_parameters={**text["rope_parameters"], "mrope_interleaved": True})
    config = Qwen3VLConfig(
        text_config=text,
        vision_config=_qwen_vision_config(size, patch_size=16, num_position_embeddings=64,
                                          deepstack_visual_indexes=[size.vision_layers - 1]),
        tie_word_embeddings=True,
        **_qwen_token_ids(tokenizer),
    )
    # Qwen3-VL patches are 16 pixels, so a visual token covers 32 x 32 pixels.
    image_processor = Qwen2VLImageProcessor(patch_size=16, merge_size=2, min_pixels=32 * 32,
                                            max_pixels=32 * 32 * 64, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor = Qwen3VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                 video_processor=Qwen3VLVideoProcessor(), chat_template=QWEN3_VL_CHAT_TEMPLATE)
    return Qwen3VLForConditionalGeneration(config), processor


def _idefics_tokenizer(special_tokens: list[str] = IDEFICS_SPECIAL_TOKENS):
    from transformers import Qwen2Tokenizer

    # The Idefics checkpoints use Llama/GPT-2 BPE vocabularies; a byte-level BPE with the same
    # special tokens behaves the same for prompts and labels.
    return _byte_level_tokenizer(Qwen2Tokenizer, special_tokens, unk_token=None, bos_token="<|im_start|>",
                                 eos_token="<end_of_utterance>", pad_token="<|endoftext|>",
                                 extra_special_tokens=special_tokens)


def _llama_text_config(tokenizer, size: TinySize) -> dict:
    return dict(vocab_size=len(tokenizer), hidden_size=size.hidden, intermediate_size=size.hidden * 2,
                num_hidden_layers=size.layers, num_attention_heads=size.heads, num_key_value_heads=size.kv_heads,
                max_position_embeddings=4096, rms_norm_eps=1e-5, initializer_range=size.init_std,
                pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)


def _siglip_config(size: TinySize, image_size: int, patch_size: int) -> dict:
    return dict(hidden_size=size.vision_hidden, intermediate_size=size.vision_hidden * 2,
                num_hidden_layers=size.vision_layers, num_attention_heads=size.vision_heads,
                image_size=image_size, patch_size=patch_size, initializer_range=size.init_std)


def _build_idefics2(size: TinySize):
    from transformers import Idefics2Config, Idefics2ForConditionalGeneration, Idefics2ImageProcessor, Idefics2Processor

    tokenizer = _idefics_tokenizer()
    # A line keeps its shape (224 x 28: 16 x 2 patches of 14 pixels, a digit cell is 2 x 2 patches)
    # and the perceiver turns it into one visual token per 28-pixel cell, as SmolVLM2's pixel shuffle
    # does (idefics2-8b has 64 latents for any image). Each head reads one patch of the cell whole
    # (head_dim = hidden, a value projection per head), so the output projection sees the cell's four
    # patches side by side, as the linear layer after a pixel shuffle does.
    latents = 8
    config = Idefics2Config(
        text_config={"model_type": "mistral", **_llama_text_config(tokenizer, size)},
        vision_config=_siglip_config(size, image_size=224, patch_size=14),
        perceiver_config=dict(hidden_size=size.hidden, resampler_n_latents=latents, resampler_depth=1,
                              resampler_n_heads=size.heads, resampler_head_dim=size.hidden,
                              num_key_value_heads=size.heads, initializer_range=size.init_std),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), tie_word_embeddings=False,
    )
    image_processor = Idefics2ImageProcessor(size={"shortest_edge": 28, "longest_edge": 224},
                                             do_image_splitting=False)
    processor = Idefics2Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=latents,
                                  chat_template=IDEFICS2_CHAT_TEMPLATE)
    model = Idefics2ForConditionalGeneration(config)
    _align_perceiver(model, processor)
    return model, processor


def _align_perceiver(model, processor, position_std: float = 2.0, sharpness: float = 10.0) -> None:
    """Initialise the perceiver so that latent i starts by reading the i-th block of patch columns,
    each attention head its own share of the block's patches (as pixel shuffle concatenates them).

    transformers sets every latent to ones (fine for loading trained weights): all visual tokens of a
    random model are then the same vector and every latent pools the whole line. Random latents
    look at arbitrary patches (several latents at one, none at others). Here the position embeddings
    are made stronger than the patch content (std 2: 94% of a latent's attention on its own block
    of a demo line; 39% with 0.5, 70% with 1), the context a blank line produces is computed once,
    and the query projection maps latent i onto the keys of its block's patches. The latents stay
    random, so a latent does not attend to its own key, which the perceiver also offers it.

    The MLP after the attention starts at zero (its down projection), as residual branches often
    do: with 32-dim heads a random MLP outweighs the attention's output and scrambles it (a linear
    probe reads a cell's digit from 49% of the visual tokens with it at zero, 38% without; with the
    128-dim heads used now 51% either way, and the demo was measured with it at zero). Training moves
    this routing off the cells (own-block attention 94% -> 30% after 2000 demo steps, the visual
    tokens then blend neighbouring digits), so the demo keeps it fixed (``IDEFICS2_ROUTING``).
    """
    import torch
    from PIL import Image

    vision, connector = model.model.vision_model, model.model.connector
    resampler = connector.perceiver_resampler
    layer, attention = resampler.layers[0], resampler.layers[0].self_attn
    torch.nn.init.normal_(vision.embeddings.position_embedding.weight, std=position_std)
    torch.nn.init.normal_(resampler.latents, std=1.0)
    size = processor.image_processor.size
    blank = processor.image_processor([[Image.new("RGB", (size["longest_edge"], size["shortest_edge"]), "white")]],
                                      return_tensors="pt")["pixel_values"][:, 0]
    rows = size["shortest_edge"] // model.config.vision_config.patch_size
    heads = attention.num_heads
    with torch.no_grad():
        normed = layer.input_context_norm(connector.modality_projection(vision(pixel_values=blank).last_hidden_state)[0])
        # Patches are row-major; block i holds columns [i * c, (i + 1) * c) of every row.
        blocks = normed.view(rows, resampler.n_latents, -1, normed.shape[-1]).transpose(0, 1)
        blocks = blocks.reshape(resampler.n_latents, -1, normed.shape[-1])
        count = blocks.shape[1]
        shares = (blocks.tensor_split(heads, dim=1) if count >= heads
                  else [blocks[:, [h * count // heads]] for h in range(heads)])
        targets = torch.stack([share.mean(1) for share in shares]) - normed.mean(0)  # head, latent, hidden
        latents = layer.input_latents_norm(resampler.latents)
        to_target = sharpness * targets.transpose(1, 2) @ torch.linalg.pinv(latents.T)  # [h] @ latent_i = target_hi
        keys = attention.k_proj.weight.view(attention.num_key_value_heads, attention.head_dim, -1)
        queries = keys.repeat_interleave(attention.num_key_value_groups, dim=0) @ to_target
        attention.q_proj.weight.copy_(queries.reshape(attention.q_proj.weight.shape))
        layer.mlp.down_proj.weight.zero_()


IDEFICS2_ROUTING = (r"perceiver_resampler\.(latents|layers\.\d+\.(self_attn\.(q|k)_proj|input_latents_norm|"
                    r"input_context_norm))|vision_model\.embeddings\.position_embedding")
"""The parameters that decide which patches each perceiver latent of the tiny Idefics2 reads (its
queries and keys, the norms before them, the latents, the vision position embeddings). The demo
keeps them fixed (``tuning.freeze_parameters``) so that visual token i keeps reading cell i."""


def _build_idefics3(size: TinySize):
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessor, Idefics3Processor

    tokenizer = _idefics_tokenizer()
    config, image_processor, image_seq_len = _idefics3_layout(size, tokenizer, Idefics3Config, Idefics3ImageProcessor)
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                  image_seq_len=image_seq_len, chat_template=IDEFICS3_CHAT_TEMPLATE)
    return Idefics3ForConditionalGeneration(config), processor


IDEFICS3_TILE, IDEFICS3_PATCH, IDEFICS3_SCALE = 64, 8, 2


def _idefics3_layout(size: TinySize, tokenizer, config_class, image_processor_class):
    """(config, image processor, visual tokens per tile) of an Idefics3-style model (Idefics3,
    SmolVLM2): images are resized to at most 2 tiles on the long edge and split into tiles plus a
    global view; each tile gives (tile / patch)^2 / scale^2 = 16 visual tokens."""
    tile, patch, scale = IDEFICS3_TILE, IDEFICS3_PATCH, IDEFICS3_SCALE
    config = config_class(
        text_config={"model_type": "llama", **_llama_text_config(tokenizer, size)},
        vision_config=_siglip_config(size, image_size=tile, patch_size=patch), scale_factor=scale,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), tie_word_embeddings=False,
    )
    image_processor = image_processor_class(size={"longest_edge": 2 * tile}, max_image_size={"longest_edge": tile},
                                            do_image_splitting=True)
    return config, image_processor, (tile // patch) ** 2 // scale ** 2


def _build_smolvlm(size: TinySize):
    """SmolVLM2 (model_type smolvlm): Idefics3's layout with its own classes and a video processor;
    its processor needs the ``num2words`` package."""
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMImageProcessor, \
        SmolVLMProcessor, SmolVLMVideoProcessor

    tokenizer = _idefics_tokenizer(IDEFICS_SPECIAL_TOKENS + ["<video>"])
    config, image_processor, image_seq_len = _idefics3_layout(size, tokenizer, SmolVLMConfig, SmolVLMImageProcessor)
    video_processor = SmolVLMVideoProcessor(size={"longest_edge": IDEFICS3_TILE},
                                            max_image_size={"longest_edge": IDEFICS3_TILE})
    processor = SmolVLMProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                                 image_seq_len=image_seq_len, chat_template=SMOLVLM_CHAT_TEMPLATE)
    return SmolVLMForConditionalGeneration(config), processor


def _build_florence2(size: TinySize):
    from transformers import BartTokenizer, CLIPImageProcessor, Florence2Config, Florence2ForConditionalGeneration, \
        Florence2Processor

    tokenizer = _byte_level_tokenizer(BartTokenizer, FLORENCE_SPECIAL_TOKENS, tuple(FLORENCE_ADDED_TOKENS),
                                      extra_special_tokens={"image_token": "<image>"})
    # A fixed input size, like the real 768 x 768, here the demo line's own 28 x 224: one visual token
    # per 28-pixel digit cell (8 tokens + Florence-2's pooled one), as Qwen2-VL's merged patches.
    height, width, cell = 28, 224, 28
    # One encoder layer: with four, the demo digits stayed at ~90% eval CER after 600 steps (the
    # encoder's near-uniform attention blends the visual tokens), with one 49% (see docvlm/demo.py).
    text = dict(vocab_size=len(tokenizer), d_model=size.hidden, encoder_layers=1, decoder_layers=size.layers,
                encoder_attention_heads=size.heads, decoder_attention_heads=size.heads,
                encoder_ffn_dim=size.hidden * 2, decoder_ffn_dim=size.hidden * 2, max_position_embeddings=512,
                init_std=size.init_std, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id,
                forced_eos_token_id=tokenizer.eos_token_id, dropout=0.0, scale_embedding=False)
    # The real DaViT's stage classes with two stages whose strides (7, 4) make one token per cell.
    vision = dict(embed_dim=[max(8, size.vision_hidden // 2), size.hidden], depths=[1, size.vision_layers],
                  patch_size=[7, 4], patch_stride=[7, 4], patch_padding=[0, 0], patch_prenorm=[False, True],
                  num_heads=[max(1, size.vision_heads // 2), size.vision_heads],
                  num_groups=[max(1, size.vision_heads // 2), size.vision_heads],
                  window_size=4, drop_path_rate=0.0, projection_dim=size.hidden, max_position_embeddings=32,
                  initializer_range=size.init_std)
    config = Florence2Config(text_config=text, vision_config=vision,
                             image_token_id=tokenizer.convert_tokens_to_ids("<image>"))
    image_processor = CLIPImageProcessor(size={"height": height, "width": width}, do_center_crop=False,
                                         crop_size={"height": height, "width": width},
                                         image_seq_length=(height // cell) * (width // cell) + 1)
    processor = Florence2Processor(image_processor=image_processor, tokenizer=tokenizer,
                                   post_processor_config=FLORENCE_POST_PROCESSING)
    model = Florence2ForConditionalGeneration(config)
    _spread_image_positions(model, FLORENCE_IMAGE_POSITION_STD)
    return model, processor


FLORENCE_IMAGE_POSITION_STD = 1.0
"""Init std of the tiny Florence-2's learned image row/column embeddings. transformers' 0.02 is
noise beside the random DaViT's output (std ~7, mostly one vector shared by every token), so the
visual tokens would start almost identical, whatever their column."""


def _spread_image_positions(model, std: float) -> None:
    import torch

    embedding = model.model.multi_modal_projector.image_position_embed
    with torch.no_grad():
        embedding.row_embeddings.weight.normal_(0.0, std)
        embedding.column_embeddings.weight.normal_(0.0, std)


# What Florence-2's processor parses for each kind of task answer (the published checkpoints
# ship the same keys in their processor config).
FLORENCE_POST_PROCESSING = {
    "ocr": {"PATTERN": r"(.+?)<loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)><loc_(\d+)>",
            "AREA_THRESHOLD": 0.0},
    "phrase_grounding": {"banned_grounding_tokens": []},
    "pure_text": {}, "description_with_bboxes": {}, "description_with_polygons": {}, "polygons": {}, "bboxes": {},
    "description_with_bboxes_or_polygons": {},
}


BUILDERS: dict[str, Callable[[TinySize], tuple]] = {
    "qwen2_vl": _build_qwen2_vl,
    "qwen2_5_vl": _build_qwen2_5_vl,
    "qwen3_vl": _build_qwen3_vl,
    "idefics2": _build_idefics2,
    "idefics3": _build_idefics3,
    "smolvlm": _build_smolvlm,
    "florence2": _build_florence2,
}


def build_tiny_model(family: str, out_dir: str | Path, size: TinySize = TinySize(), seed: int = 0) -> Path:
    """Create, save and return the folder of a tiny random-weight model of ``family``."""
    import torch

    if family not in BUILDERS:
        raise ModelError(f"no tiny-model builder for family '{family}' (available: {', '.join(sorted(BUILDERS))})")
    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    model, processor = BUILDERS[family](size)
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.eos_token_id = processor.tokenizer.convert_tokens_to_ids(FAMILIES[family].end_of_turn)
    model.generation_config.do_sample = False
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir
