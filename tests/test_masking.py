"""Labels cover the answer and its end-of-turn token, nothing else, for every family."""

import pytest
from PIL import Image

from docvlm.data.schema import PixelBudget, Record, Sample
from docvlm.models.families import FAMILIES
from docvlm.models.loading import load_processor, read_model_type
from docvlm.config import ModelConfig
from docvlm.models.prompting import IGNORE_INDEX, ChatFormat, TrainingCollator, encode_prompts, image_token_id

from conftest import FAMILIES as BUILT


def sample(sample_id: str, target: str, width: int, prompt: str = "Transcribe the text in this image.",
           budget: PixelBudget = PixelBudget(784, 28 * 28 * 8)) -> Sample:
    record = Record(id=sample_id, target=target, image_ref="-", prompt=prompt, dataset="d", task="transcription",
                    budget=budget, where=f"sample {sample_id}")
    return Sample(record, Image.new("RGB", (width, 28), "white"))


def family_samples(spec) -> list[Sample]:
    """Different image widths, answer lengths and prompts, so prompts and answers both get padded."""
    budget = PixelBudget(784, 28 * 28 * 8) if spec.pixel_budget_keys else PixelBudget()
    prompts = (["<OCR>", "<OCR>", "<DocVQA>Read it."] if spec.architecture == "seq2seq"
               else ["Transcribe the text in this image."] * 2 + ["Read it."])
    return [sample("a", "42", 56, prompts[0], budget), sample("b", "Hello, wörld 1234", 224, prompts[1], budget),
            sample("c", "x", 112, prompts[2], budget)]


@pytest.mark.parametrize("family", BUILT)
def test_labels_decode_to_exactly_the_answer(tiny_models, family):
    path = str(tiny_models[family])
    spec = FAMILIES[read_model_type(path, ModelConfig())]
    processor = load_processor(path, ModelConfig())
    chat = ChatFormat(processor, spec)
    samples = family_samples(spec)
    batch = TrainingCollator(chat)(samples)
    tokenizer = processor.tokenizer
    if spec.architecture == "seq2seq":
        # Encoder-decoder: the labels are the decoder's target, begin and end of sequence included.
        for row, s in enumerate(samples):
            labels = batch["labels"][row]
            kept = labels[labels != IGNORE_INDEX]
            assert tokenizer.decode(kept, skip_special_tokens=False) == "<s>" + s.target + "</s>"
            assert (labels[len(kept):] == IGNORE_INDEX).all()  # padding after the target carries no loss
            # The encoder reads the image tokens and the task prompt; the processor spells out its own
            # task tokens (<OCR>) and keeps a new one (<DocVQA>) with the text after it.
            prompt = tokenizer.decode(batch["input_ids"][row][batch["attention_mask"][row] == 1])
            expected = {"<OCR>": "What is the text in the image?"}.get(s.prompt, s.prompt)
            assert prompt.replace(processor.image_token, "") == f"<s>{expected}</s>"
        return
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    for row, s in enumerate(samples):
        labels = batch["labels"][row]
        kept = labels[labels != IGNORE_INDEX]
        # The answer as the template writes it: Idefics puts a space after "Assistant:".
        assert tokenizer.decode(kept, skip_special_tokens=False) == chat.answer_text(s.prompt, s.target)
        assert chat.answer_text(s.prompt, s.target).strip() == s.target + spec.end_of_turn
        positions = (labels != IGNORE_INDEX).nonzero().flatten()
        # The answer is one contiguous span that ends where the real (unpadded) tokens end.
        assert positions.tolist() == list(range(positions[0], positions[-1] + 1))
        assert positions[-1] + 1 == batch["attention_mask"][row].sum()
        # Image placeholders, prompt and padding carry no loss.
        image_positions = batch["input_ids"][row] == image_token_id(processor)
        assert image_positions.any()
        assert (labels[image_positions] == IGNORE_INDEX).all()
        assert (labels[batch["attention_mask"][row] == 0] == IGNORE_INDEX).all()
        # The prompt part of the sequence is exactly the inference prompt.
        # The prompt part of the sequence is exactly the inference prompt of that sample alone.
        alone = encode_prompts(chat, [s], padding_side="left")["input_ids"][0]
        assert batch["input_ids"][row][: positions[0]].tolist() == alone.tolist()


@pytest.mark.parametrize("family", [f for f in BUILT if FAMILIES[f].architecture == "chat"])
def test_answer_text_comes_from_the_chat_template(tiny_models, family):
    path = str(tiny_models[family])
    processor = load_processor(path, ModelConfig())
    chat = ChatFormat(processor, FAMILIES[family])
    full = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q"}]},
         {"role": "assistant", "content": [{"type": "text", "text": "A1"}]}], tokenize=False)
    assert full.startswith(chat.prompt_text("Q") + chat.answer_text("Q", "A1"))


def test_over_long_sample_is_reported_not_truncated(tiny_models):
    from docvlm.data.schema import SkipReport
    from docvlm.errors import DataError

    path = str(tiny_models["qwen2_vl"])
    processor = load_processor(path, ModelConfig())
    chat = ChatFormat(processor, FAMILIES["qwen2_vl"])
    long_one, short_one = sample("long", "9" * 80, 56), sample("short", "1", 56)
    with pytest.raises(DataError, match="sample long: .* tokens exceed data.max_length=60"):
        TrainingCollator(chat, max_length=60)([short_one, long_one])
    report = SkipReport()
    batch = TrainingCollator(chat, max_length=60, skip_report=report)([short_one, long_one])
    assert batch["input_ids"].shape[0] == 1
    assert report.skipped["too_long"] == 1
