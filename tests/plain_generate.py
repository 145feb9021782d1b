"""Greedy answers of an exported model folder with plain transformers code only (no docvlm import).

Run as a script by tests/test_families.py: ``python plain_generate.py MODEL_DIR INPUTS.json``, where
INPUTS.json holds ``{"prompt": ..., "images": [paths], "max_new_tokens": N}``; prints a JSON list.
This is what a user without docvlm writes after ``docvlm export``.
"""

import json
import sys

from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

model_dir, inputs_file = sys.argv[1], sys.argv[2]
inputs = json.load(open(inputs_file))
model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
processor = AutoProcessor.from_pretrained(model_dir)
images = [Image.open(path).convert("RGB") for path in inputs["images"]]
encoder_decoder = model.config.is_encoder_decoder
if encoder_decoder:  # Florence-2: the task prompt goes to the encoder as it is
    text, image_args = [inputs["prompt"]] * len(images), images
else:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": inputs["prompt"]}]}]
    text = [processor.apply_chat_template(messages, add_generation_prompt=True)] * len(images)
    image_args = [[image] for image in images]
batch = processor(text=text, images=image_args, padding=True, padding_side="left", return_tensors="pt")
# Decoding settings (greedy, end-of-turn token) come from the exported generation config.
output = model.generate(**batch, max_new_tokens=inputs["max_new_tokens"])
if encoder_decoder:
    tokenizer = processor.tokenizer
    texts = tokenizer.batch_decode(output, skip_special_tokens=False)
    for marker in (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token):
        texts = [t.replace(marker, "") for t in texts]
else:
    texts = processor.batch_decode(output[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
assert not any(name == "docvlm" or name.startswith("docvlm.") for name in sys.modules)
print(json.dumps([t.strip() for t in texts]))
