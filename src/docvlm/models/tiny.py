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

# The published Qwen2-VL / Qwen2.5-VL chat template (their tokenizer_config.json), which tiny
# models need because they have no hub checkpoint to inherit it from. Real checkpoints bring their
# own; docvlm never applies this one to them.
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


def _qwen_tokenizer():
    from transformers import Qwen2Tokenizer

    vocab, merges = train_byte_level_tokenizer(QWEN_SPECIAL_TOKENS)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab, merges=merges, errors="replace", unk_token=None, bos_token=None,
        eos_token="<|im_end|>", pad_token="<|endoftext|>",
        extra_special_tokens=QWEN_SPECIAL_TOKENS,
    )
    tokenizer.model_max_length = 32768
    return tokenizer


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
        vision_config=dict(depth=size.vision_layers, hidden_size=size.vision_hidden,
                           intermediate_size=size.vision_hidden * 2, out_hidden_size=size.hidden,
                           num_heads=size.vision_heads, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                           window_size=56, fullatt_block_indexes=[size.vision_layers - 1],
                           initializer_range=size.init_std),
        tie_word_embeddings=True,
        **_qwen_token_ids(tokenizer),
    )
    return Qwen2_5_VLForConditionalGeneration(config), _qwen_processor(tokenizer, Qwen2_5_VLProcessor)


BUILDERS: dict[str, Callable[[TinySize], tuple]] = {
    "qwen2_vl": _build_qwen2_vl,
    "qwen2_5_vl": _build_qwen2_5_vl,
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
    model.generation_config.eos_token_id = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.do_sample = False
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir
