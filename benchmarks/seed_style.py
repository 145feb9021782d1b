"""The reference loop the benchmarks compare against: the seed tutorial's Qwen2-VL fine-tuning.

A faithful re-implementation of /work/shared/seeds/000 (wjbmattingly/qwen2-vl-finetuning-
huggingface, ``src/finetune.py``) on the benchmarks' tiny model and lines: batch 1, every image
upscaled (LANCZOS) until both sides are >= 256 px (``ensure_pil_image``), a processor with
``min_pixels = 256*28*28`` and ``max_pixels = 384*28*28``, the whole conversation rendered with the
chat template and tokenized with the image in the collate function, labels from
``<|im_start|>assistant`` + 2 tokens up to and including ``<|im_end|>`` (its
``find_assistant_content_sublist_indexes``), AdamW, 2 accumulation steps, and a hand-written loop.
The learning rate is the caller's (the seed's 1e-5 suits a pretrained 2B model, not a randomly
initialised tiny one); everything else is the seed's.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable

import torch
from PIL import Image

MIN_SIZE = 256
MIN_PIXELS = 256 * 28 * 28
MAX_PIXELS = 384 * 28 * 28
ACCUMULATION = 2


def ensure_pil_image(image: Image.Image, min_size: int = MIN_SIZE) -> Image.Image:
    if image.width < min_size or image.height < min_size:
        scale = max(min_size / image.width, min_size / image.height)
        image = image.resize((int(image.width * scale), int(image.height * scale)), Image.LANCZOS)
    return image


def messages(image: Image.Image, prompt: str, text: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": prompt}]},
            {"role": "assistant", "content": [{"type": "text", "text": text}]}]


def assistant_spans(ids: list[int], start_id: int, assistant_ids: list[int], end_id: int) -> list[tuple[int, int]]:
    """(begin, end) of each ``<|im_start|>assistant ... <|im_end|>`` turn, as the seed finds them."""
    spans, n = [], len(assistant_ids)
    for i in range(len(ids) - n):
        if ids[i] == start_id and ids[i + 1:i + 1 + n] == assistant_ids:
            for j in range(i + 1 + n, len(ids)):
                if ids[j] == end_id:
                    spans.append((i, j))
                    break
    return spans


class SeedCollate:
    """The seed's ``collate_fn`` for one processor (whose tokenizer may split 'assistant')."""

    def __init__(self, processor: Any):
        self.processor = processor
        tokenizer = processor.tokenizer
        self.start_id = tokenizer.convert_tokens_to_ids("<|im_start|>")
        self.end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.assistant_ids = tokenizer("assistant", add_special_tokens=False)["input_ids"]

    def __call__(self, batch: list[list[dict]]) -> tuple[dict, torch.Tensor]:
        texts = [self.processor.apply_chat_template(m, tokenize=False, add_generation_prompt=False) for m in batch]
        images = [ensure_pil_image(m[0]["content"][0]["image"]) for m in batch]
        # The seed gives these to from_pretrained; as call kwargs they leave the shared processor alone.
        inputs = self.processor(text=texts, images=images, padding=True, return_tensors="pt",
                                size={"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS})
        labels = []
        skip = 1 + len(self.assistant_ids)  # the seed's +2: <|im_start|> and the 'assistant' token
        for ids in inputs["input_ids"].tolist():
            row = [-100] * len(ids)
            for begin, end in assistant_spans(ids, self.start_id, self.assistant_ids, self.end_id):
                row[begin + skip:end + 1] = ids[begin + skip:end + 1]
            labels.append(row)
        return inputs, torch.tensor(labels, dtype=torch.int64)


def train_seed_style(model: Any, processor: Any, items: list[tuple[Image.Image, str]], prompt: str, steps: int,
                     learning_rate: float, seed: int = 0,
                     on_step: Callable[[int, float, dict], bool] | None = None) -> int:
    """The seed's loop for ``steps`` forward passes over shuffled ``items`` (image, text), batch 1.

    ``on_step(step, loss, inputs)`` is called after every pass; returning True stops the loop.
    Returns the number of passes made.
    """
    collate = SeedCollate(processor)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    rng = random.Random(seed)
    model.train()
    step = 0
    while step < steps:
        order = list(range(len(items)))
        rng.shuffle(order)
        for index in order:
            image, text = items[index]
            inputs, labels = collate([messages(image, prompt, text)])
            outputs = model(**inputs, labels=labels)
            (outputs.loss / ACCUMULATION).backward()
            step += 1
            if step % ACCUMULATION == 0:
                optimizer.step()
                optimizer.zero_grad()
            if (on_step and on_step(step, outputs.loss.item(), inputs)) or step >= steps:
                return step
    return step


class StepClock:
    """Wall time at the end of every step, for rates measured after a warm-up."""

    def __init__(self):
        self.times: list[float] = []

    def tick(self) -> None:
        self.times.append(time.perf_counter())

    def rate(self, warmup: int, per_step: float) -> float:
        """Items per second over the steps after the first ``warmup``."""
        if len(self.times) <= warmup + 1:
            raise ValueError(f"need more than {warmup + 1} steps to measure after a warm-up of {warmup}")
        return (len(self.times) - 1 - warmup) * per_step / (self.times[-1] - self.times[warmup])


@torch.no_grad()
def seed_generate(model: Any, processor: Any, images: list[Image.Image], prompt: str, max_new_tokens: int) -> list[str]:
    """The seed's inference recipe (chat template with the generation prompt, upscaled image, its
    pixel budget), batched with left padding so held-out scoring stays cheap."""
    user = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text] * len(images), images=[ensure_pil_image(i) for i in images], padding=True,
                       padding_side="left", return_tensors="pt",
                       size={"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS})
    was_training = model.training
    model.eval()
    output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    model.train(was_training)
    new = output[:, inputs["input_ids"].shape[1]:]
    return [t.strip() for t in processor.batch_decode(new, skip_special_tokens=True)]
