"""Labels cover the answer and its end-of-turn token, nothing else, for every family."""

import pytest
from PIL import Image

from docvlm.data.schema import PixelBudget, Record, Sample
from docvlm.models.families import FAMILIES
from docvlm.models.loading import load_processor, read_model_type
from docvlm.config import ModelConfig
from docvlm.models.prompting import IGNORE_INDEX, ChatFormat, TrainingCollator, image_token_id

from conftest import FAMILIES as BUILT


def sample(sample_id: str, target: str, width: int, prompt: str = "Transcribe the text in this image.") -> Sample:
    record = Record(id=sample_id, target=target, image_ref="-", prompt=prompt, dataset="d", task="transcription",
                    budget=PixelBudget(784, 28 * 28 * 8), where=f"sample {sample_id}")
    return Sample(record, Image.new("RGB", (width, 28), "white"))


@pytest.mark.parametrize("family", BUILT)
def test_labels_decode_to_exactly_the_answer(tiny_models, family):
    path = str(tiny_models[family])
    spec = FAMILIES[read_model_type(path, ModelConfig())]
    processor = load_processor(path, ModelConfig())
    collator = TrainingCollator(ChatFormat(processor, spec))
    # Different image widths and answer lengths force padding on both prompt and answer.
    samples = [sample("a", "42", 56), sample("b", "Hello, wörld 1234", 224), sample("c", "x", 112, "Read it.")]
    batch = collator(samples)
    tokenizer = processor.tokenizer
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    for row, s in enumerate(samples):
        labels = batch["labels"][row]
        kept = labels[labels != IGNORE_INDEX]
        assert tokenizer.decode(kept, skip_special_tokens=False) == s.target + spec.end_of_turn
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
        prompt_text = tokenizer.decode(batch["input_ids"][row][: positions[0]], skip_special_tokens=False)
        expected = ChatFormat(processor, spec).prompt_text(s.prompt)
        assert prompt_text.replace(processor.image_token, "") == expected.replace(processor.image_token, "")


@pytest.mark.parametrize("family", BUILT)
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
