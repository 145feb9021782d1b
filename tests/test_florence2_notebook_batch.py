"""docvlm feeds Florence-2 exactly as Microsoft's / Hugging Face's fine-tuning notebooks do.

The notebooks (and benchmarks/bare_loop.py) give the encoder ``processor(text="<OCR>", images=...)``
and take ``labels = tokenizer(answers, padding=True).input_ids`` (``<s>`` answer ``</s>``, padding
ignored); the model shifts them right behind ``decoder_start_token_id`` (``</s>``), so it learns to
write ``</s><s>answer</s>`` as the published checkpoints generate. Issue 10 asked whether the tiny
Florence-2's failure to learn the demo digits was a docvlm defect: these checks are the evidence
that batch, loss and gradients are the notebook's (and the guard that they stay so).
"""

import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from docvlm.config import ModelConfig
from docvlm.data.schema import PixelBudget, Record, Sample
from docvlm.models.families import FAMILIES
from docvlm.models.loading import load_processor
from docvlm.models.prompting import IGNORE_INDEX, ChatFormat, TrainingCollator, decode_seq2seq
from docvlm.models.tiny import build_tiny_model
from docvlm.train.losses import answer_logits

from conftest import SMALL

TARGETS = ["604876", "51375", "9450"]


@pytest.fixture(scope="module")
def florence(tmp_path_factory):
    from transformers import AutoModelForImageTextToText

    path = build_tiny_model("florence2", tmp_path_factory.mktemp("florence2"), SMALL, seed=0)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)
    return model, load_processor(str(path), ModelConfig())


def _samples() -> list[Sample]:
    samples = []
    for i, target in enumerate(TARGETS):
        image = Image.new("RGB", (224, 28), "white")
        ImageDraw.Draw(image).text((4 + i, 8), "  ".join(target), fill="black")
        record = Record(id=str(i), target=target, image_ref="-", prompt="<OCR>", dataset="d",
                        task="transcription", budget=PixelBudget(), where=f"sample {i}")
        samples.append(Sample(record, image))
    return samples


def _notebook_batch(processor, samples) -> dict:
    encoded = processor(text=["<OCR>"] * len(samples), images=[s.image for s in samples], return_tensors="pt",
                        padding=True)
    labels = processor.tokenizer(text=[s.target for s in samples], return_tensors="pt", padding=True,
                                 return_token_type_ids=False).input_ids
    labels[labels == processor.tokenizer.pad_token_id] = IGNORE_INDEX
    return {"input_ids": encoded["input_ids"], "pixel_values": encoded["pixel_values"], "labels": labels}


def test_batch_is_the_notebooks_batch(florence):
    _, processor = florence
    samples = _samples()
    ours = TrainingCollator(ChatFormat(processor, FAMILIES["florence2"]))(samples)
    theirs = _notebook_batch(processor, samples)
    assert torch.equal(ours["input_ids"], theirs["input_ids"])
    assert torch.equal(ours["pixel_values"], theirs["pixel_values"])
    assert torch.equal(ours["labels"], theirs["labels"])
    assert ours["attention_mask"].all()  # one task prompt for the batch: nothing to pad in the encoder
    tokenizer = processor.tokenizer
    assert tokenizer.decode(ours["labels"][2][:6]) == "<s>9450</s>"
    assert (ours["labels"][2][6:] == IGNORE_INDEX).all()


def test_loss_and_gradients_are_the_models_own_on_the_notebook_batch(florence):
    model, processor = florence
    samples = _samples()
    ours = TrainingCollator(ChatFormat(processor, FAMILIES["florence2"]))(samples)
    theirs = _notebook_batch(processor, samples)
    model.train()
    # docvlm's default path (answer_only_logits): decoder inputs shifted from the labels by the
    # model's own shift_tokens_right, logits at the labelled positions only.
    found = answer_logits(model, {k: v for k, v in ours.items() if k != "labels"}, ours["labels"])
    ours_loss = F.cross_entropy(found["logits"], found["targets"])
    ours_loss.backward()
    ours_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    theirs_loss = model(**theirs).loss
    theirs_loss.backward()
    assert ours_loss.item() == pytest.approx(theirs_loss.item(), rel=1e-6)
    for name, parameter in model.named_parameters():
        assert torch.allclose(ours_grads[name], parameter.grad, atol=1e-6), name
    model.zero_grad()


def test_generated_start_tokens_are_stripped_like_the_labels(florence):
    """The model writes </s> (decoder start) then <s>: prediction drops both, as the labels begin with <s>."""
    model, processor = florence
    tokenizer = processor.tokenizer
    assert model.config.text_config.decoder_start_token_id == tokenizer.eos_token_id
    ids = tokenizer("9450", add_special_tokens=False)["input_ids"]
    generated = torch.tensor([[tokenizer.eos_token_id, tokenizer.bos_token_id, *ids, tokenizer.eos_token_id,
                               tokenizer.pad_token_id]])
    assert decode_seq2seq(tokenizer, generated) == ["9450"]
