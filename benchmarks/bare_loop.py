"""A bare PyTorch fine-tuning loop, written the way each family's own documentation does it, to
compare with ``docvlm train`` on the same tiny model and the same synthetic lines.

It shares no code with docvlm's collator or trainer (only the CER metric), so when this loop learns
and ``docvlm train`` does not, the defect is docvlm's; when neither learns, it is the model/recipe.

- Florence-2 (as in Microsoft's fine-tuning notebooks): ``processor(text=task_prompt, images=...)``
  for the encoder, ``labels = tokenizer(answers, padding=True).input_ids`` for the decoder.
- Idefics2 / Idefics3 / Qwen (as in the HF Idefics2 fine-tuning tutorial): the chat template
  rendered with the answer, padding, image and prompt tokens masked with -100.

    python benchmarks/bare_loop.py idefics2 runs/demo/tiny-idefics2 runs/demo/data --steps 400
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import time
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor, get_cosine_schedule_with_warmup

from docvlm.evaluate.metrics import cer

PROMPT = "Transcribe the text in this image."


def read_split(data_dir: Path, split: str) -> list[tuple[Image.Image, str]]:
    rows = [json.loads(line) for line in (data_dir / f"{split}.jsonl").read_text().splitlines() if line.strip()]
    return [(Image.open(data_dir / r["image"]).convert("RGB"), r["text"]) for r in rows]


def messages(answer: str | None) -> list[dict]:
    turns = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    if answer is not None:
        turns.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return turns


def chat_batch(processor, batch):
    """The tutorial's collator: full conversation, labels = input_ids with the prompt masked."""
    images = [[image] for image, _ in batch]
    full = [processor.apply_chat_template(messages(text), tokenize=False) for _, text in batch]
    prompt = processor.apply_chat_template(messages(None), tokenize=False, add_generation_prompt=True)
    encoded = processor(text=full, images=images, padding=True, return_tensors="pt")
    prompt_length = processor(text=[prompt], images=[images[0]], return_tensors="pt")["input_ids"].shape[1]
    labels = encoded["input_ids"].clone()
    labels[:, :prompt_length] = -100  # same image size for every line, so the same prompt length
    labels[encoded["attention_mask"] == 0] = -100
    encoded["labels"] = labels
    return encoded


def florence_batch(processor, batch):
    """Florence-2's notebooks: the task prompt to the encoder, the tokenized answer as labels."""
    encoded = processor(text=["<OCR>"] * len(batch), images=[image for image, _ in batch], return_tensors="pt",
                        padding=True)
    labels = processor.tokenizer(text=[text for _, text in batch], return_tensors="pt", padding=True,
                                 return_token_type_ids=False).input_ids
    labels[labels == processor.tokenizer.pad_token_id] = -100
    return {"input_ids": encoded["input_ids"], "pixel_values": encoded["pixel_values"], "labels": labels}


@torch.no_grad()
def predict(model, processor, family: str, lines, batch_size: int = 32) -> list[str]:
    model.eval()
    answers = []
    for start in range(0, len(lines), batch_size):
        batch = lines[start:start + batch_size]
        if family == "florence2":
            inputs = processor(text=["<OCR>"] * len(batch), images=[i for i, _ in batch], return_tensors="pt")
            out = model.generate(**inputs, max_new_tokens=10, num_beams=1, do_sample=False)
            answers += [t.strip() for t in processor.batch_decode(out, skip_special_tokens=True)]
        else:
            prompt = processor.apply_chat_template(messages(None), tokenize=False, add_generation_prompt=True)
            inputs = processor(text=[prompt] * len(batch), images=[[i] for i, _ in batch], return_tensors="pt",
                               padding=True)
            out = model.generate(**inputs, max_new_tokens=10, do_sample=False)
            new = out[:, inputs["input_ids"].shape[1]:]
            answers += [t.strip() for t in processor.batch_decode(new, skip_special_tokens=True)]
    model.train()
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family")
    parser.add_argument("model_dir")
    parser.add_argument("data_dir")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=0.05)
    parser.add_argument("--clip", type=float, default=10.0)
    parser.add_argument("--eval_every", type=int, default=100)
    parser.add_argument("--eval_lines", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--freeze", action="append", default=[], metavar="PREFIX",
                        help="freeze parameters whose names start with PREFIX (e.g. model.connector, as the "
                             "idefics2 demo's tuning.freeze_projector does)")
    parser.add_argument("--freeze-regex", metavar="REGEX",
                        help="also freeze parameters whose names match REGEX (re.search), as "
                             "tuning.freeze_parameters does (the idefics2 demo: docvlm.models.tiny.IDEFICS2_ROUTING)")
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    data_dir = Path(args.data_dir)
    train, test = read_split(data_dir, "train"), read_split(data_dir, "validation")[:args.eval_lines]
    processor = AutoProcessor.from_pretrained(args.model_dir)
    model = AutoModelForImageTextToText.from_pretrained(args.model_dir, dtype=torch.float32)
    model.train()
    for name, parameter in model.named_parameters():
        frozen = any(name.startswith(prefix) for prefix in args.freeze) or bool(
            args.freeze_regex and re.search(args.freeze_regex, name))
        parameter.requires_grad_(not frozen)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.0)
    schedule = get_cosine_schedule_with_warmup(optimizer, math.ceil(args.warmup * args.steps), args.steps)
    make_batch = florence_batch if args.family == "florence2" else chat_batch
    order, started = [], time.time()
    for step in range(1, args.steps + 1):
        if len(order) < args.batch:
            order += random.sample(range(len(train)), len(train))
        batch = [train[order.pop()] for _ in range(args.batch)]
        loss = model(**make_batch(processor, batch)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, args.clip)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if step % 25 == 0:
            print(f"step {step} loss {loss.item():.4f} ({time.time() - started:.0f} s)", flush=True)
        if step % args.eval_every == 0 or step == args.steps:
            answers = predict(model, processor, args.family, test)
            score = cer([t for _, t in test], answers).rate
            print(f"EVAL step {step} cer {score:.4f} e.g. {answers[:3]} vs {[t for _, t in test[:3]]}", flush=True)


if __name__ == "__main__":
    main()
