"""Prompts, answers and batches, derived from the checkpoint's own chat template.

Training and inference must see the same prompt tokens, and the loss must cover only the
answer. Both follow from one rule: a training sequence is the *inference prompt* (the template
rendered with ``add_generation_prompt=True``, tokenized by the processor together with the image)
followed by the *answer tokens* (what the template writes after that prompt for the assistant
turn, up to and including the end-of-turn token). Tokenizing the two parts separately means the
label span is exact by construction: no search for marker tokens, no BPE merge across the
boundary, and the model is trained on precisely the prefix it will be given at inference.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from docvlm.data.schema import PixelBudget, Sample, SkipReport
from docvlm.data.skips import FAILED_KEY, SKIPS_KEY, Failed, Skipped, in_worker
from docvlm.errors import ConfigError, DataError, DocVLMError, ModelError
from docvlm.models.families import FamilySpec

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
_SENTINEL = "\u2063DOCVLM-ANSWER\u2063"  # invisible separator: never produced by a template itself


# A Florence-2 task token opens the prompt: <OCR>, <OD>, <CAPTION_TO_PHRASE_GROUNDING>, <DocVQA>...
TASK_TOKEN = re.compile(r"^<[A-Za-z][A-Za-z0-9_]*>")


def task_token_of(prompt: str) -> str | None:
    match = TASK_TOKEN.match(prompt)
    return match.group(0) if match else None


def user_messages(prompt: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


@dataclass
class ChatFormat:
    """Renders prompts and answers for one processor, caching the template work per prompt."""

    processor: Any
    spec: FamilySpec
    _prompts: dict[str, str] = field(default_factory=dict)
    _answer_affixes: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def seq2seq(self) -> bool:
        return self.spec.architecture == "seq2seq"

    def prompt_text(self, prompt: str) -> str:
        """The text handed to the processor with the image: the rendered chat turn, or for an
        encoder-decoder the task prompt itself (its processor expands task tokens)."""
        if prompt not in self._prompts:
            self._check_prompt_kind(prompt)
            if self.seq2seq:
                self._prompts[prompt] = prompt
                return prompt
            if getattr(self.processor, "chat_template", None) is None:
                raise ModelError("the processor has no chat template; this family needs one to build prompts")
            rendered = self.processor.apply_chat_template(
                user_messages(prompt), tokenize=False, add_generation_prompt=True)
            self._check_renders_image(rendered)
            self._prompts[prompt] = rendered
        return self._prompts[prompt]

    def _check_renders_image(self, rendered: str) -> None:
        # A base checkpoint's template (Qwen2-VL-2B: content parts only, no roles) renders a user
        # turn as nothing; the processor would then fail on an image without a placeholder.
        image_token = getattr(self.processor, "image_token", None)
        if image_token and str(image_token) not in rendered:
            raise ModelError(
                f"the chat template does not render the image placeholder {image_token} for a user turn "
                f"(rendered {rendered!r}); a base checkpoint's template has no chat roles: fine-tune the "
                "Instruct checkpoint, or save a processor with the Instruct chat template beside the weights")

    def _check_prompt_kind(self, prompt: str) -> None:
        task = task_token_of(prompt)
        if self.seq2seq and task is None:
            raise ModelError(
                f"{self.spec.name} is driven by task prompts such as <OCR> or <DocVQA> + question, not by a "
                f"chat instruction ({prompt!r}); set data.datasets.N.task_token (or predict --prompt '<OCR>')")
        if not self.seq2seq and task is not None:
            raise ModelError(
                f"{self.spec.name} is a chat model: the prompt {prompt!r} starts with the Florence-2 task token "
                f"{task}; give a plain instruction and leave data.datasets.N.task_token empty")

    def answer_text(self, prompt: str, target: str) -> str:
        """What follows the generation prompt in a full conversation: answer + end-of-turn; for an
        encoder-decoder, the decoder's target sequence (begin + target + end of sequence)."""
        if self.seq2seq:
            tokenizer = self.processor.tokenizer
            return (tokenizer.bos_token or "") + target + self.spec.end_of_turn
        if prompt not in self._answer_affixes:
            self._answer_affixes[prompt] = self._derive_answer_affixes(prompt)
        before, after = self._answer_affixes[prompt]
        return before + target + after

    def _derive_answer_affixes(self, prompt: str) -> tuple[str, str]:
        messages = user_messages(prompt) + [
            {"role": "assistant", "content": [{"type": "text", "text": _SENTINEL}]}]
        full = self.processor.apply_chat_template(messages, tokenize=False)
        generation_prompt = self.prompt_text(prompt)
        if not full.startswith(generation_prompt) or _SENTINEL not in full:
            raise ModelError(
                "the chat template does not render a conversation as generation prompt + answer; "
                "cannot derive the answer span for label masking")
        suffix = full[len(generation_prompt):]
        before, after = suffix.split(_SENTINEL, 1)
        for marker in self._end_markers():
            end = after.find(marker)
            if end >= 0:
                # Anything after end-of-turn (Qwen writes a newline) is not part of the answer.
                return before, after[: end + len(marker)]
        raise ModelError(f"the chat template does not close the answer with "
                         f"{' or '.join(repr(m) for m in self._end_markers())}")

    def _end_markers(self) -> list[str]:
        """The family's end-of-turn token, then the tokenizer's end token: a checkpoint of the family
        may close turns with its own (granite-docling-258M, an Idefics3 model, writes <|end_of_text|>
        where SmolVLM writes <end_of_utterance>); generation already stops at either."""
        eos = getattr(self.processor.tokenizer, "eos_token", None)
        return [self.spec.end_of_turn] + ([str(eos)] if eos and str(eos) != self.spec.end_of_turn else [])


def budget_kwargs(spec: FamilySpec, budget: PixelBudget, processor: Any) -> dict:
    """Processor call kwargs that apply one pixel budget (``images_at_their_budgets`` handles mixes)."""
    if budget.min_pixels is None and budget.max_pixels is None:
        return {}
    if spec.pixel_budget_keys is None:
        raise ConfigError(
            f"{spec.name} has no pixel-area budget: leave min_pixels/max_pixels empty and set the image size "
            f"with model.processor_options ({', '.join(spec.processor_options) or 'none'})")
    size = dict(processor.image_processor.size)
    min_key, max_key = spec.pixel_budget_keys
    if budget.min_pixels is not None:
        size[min_key] = budget.min_pixels
    if budget.max_pixels is not None:
        size[max_key] = budget.max_pixels
    return {"size": {min_key: size[min_key], max_key: size[max_key]}}


def apply_pixel_budget(processor: Any, spec: FamilySpec, budget: PixelBudget) -> None:
    """Make ``budget`` the processor's default, so it is saved with every checkpoint."""
    if budget.min_pixels is None and budget.max_pixels is None:
        return
    kwargs = budget_kwargs(spec, budget, processor)
    processor.image_processor.size = kwargs["size"]


def pixel_budget_of(processor: Any, spec: FamilySpec) -> PixelBudget:
    if spec.pixel_budget_keys is None:
        return PixelBudget()
    size = processor.image_processor.size
    min_key, max_key = spec.pixel_budget_keys
    return PixelBudget(size.get(min_key) if hasattr(size, "get") else getattr(size, min_key),
                       size.get(max_key) if hasattr(size, "get") else getattr(size, max_key))


def image_token_id(processor: Any) -> int:
    return processor.tokenizer.convert_tokens_to_ids(processor.image_token)


def encode_prompts(chat: ChatFormat, samples: Sequence[Sample], padding_side: str) -> dict[str, torch.Tensor]:
    """Processor output for the samples' generation prompts and images, padded on one side."""
    texts = [chat.prompt_text(s.prompt) for s in samples]
    images, kwargs = images_at_their_budgets(chat, samples)
    if not chat.seq2seq:
        images = [[image] for image in images]  # chat processors take a list of images per sample
    try:
        return chat.processor(text=texts, images=images, padding=True,
                              padding_side=padding_side, return_tensors="pt", **kwargs)
    except ValueError as error:
        if not chat.seq2seq:
            raise
        # Florence-2's processor rejects text after a task token that takes no input.
        raise ModelError(f"{samples[0].record.where}: prompt {samples[0].prompt!r}: {error}") from None


def images_at_their_budgets(chat: ChatFormat, samples: Sequence[Sample]) -> tuple[list, dict]:
    """The batch's images and processor kwargs such that every sample gets its own pixel budget.

    One budget: the processor resizes, as usual. Several (a mixture of datasets): each image is
    resized beforehand by the processor's own rule at its budget; the processor is then given
    bounds spanning those sizes, which leaves every already-fitted image as it is.
    """
    budgets = [s.record.budget for s in samples]
    if len(set(budgets)) == 1:
        return [s.image for s in samples], budget_kwargs(chat.spec, budgets[0], chat.processor)
    from docvlm.models.budget import fit_to_budget, resolved

    default = pixel_budget_of(chat.processor, chat.spec)
    images = [fit_to_budget(chat.processor.image_processor, s.image, resolved(s.record.budget, default))
              for s in samples]
    areas = [image.width * image.height for image in images]
    min_key, max_key = chat.spec.pixel_budget_keys
    return images, {"size": {min_key: min(areas), max_key: max(areas)}}


@dataclass
class TrainingCollator:
    """Builds padded training batches whose labels are the answer tokens and nothing else."""

    chat: ChatFormat
    max_length: int | None = None
    warn_visual_tokens: int | None = None
    skip_report: SkipReport | None = None
    """When set (``on_bad_sample: skip``), over-long samples are dropped: counted in their own
    dataset's report (handed back with the batch from a data-loader worker), or here for samples
    made outside a sample set."""

    def __call__(self, samples: list) -> dict[str, torch.Tensor]:
        failed = next((s for s in samples if isinstance(s, Failed)), None)
        if failed is not None:
            return {FAILED_KEY: failed}
        if not in_worker():
            return self._collate(samples)
        try:
            return self._collate(samples)
        except DocVLMError as error:  # raised as the same one line by the main process
            return {FAILED_KEY: Failed.of(error)}

    def _collate(self, samples: list) -> dict[str, torch.Tensor]:
        # None: skipped at decode time and counted in place; Skipped: skipped in a worker process.
        skips = [(s.report, s.reason, s.message, s.key) for s in samples if isinstance(s, Skipped)]
        skips += [(m.report, m.reason, m.message, m.key) for s in samples if s is not None
                  and not isinstance(s, Skipped) for m in getattr(s, "skips", ())]
        samples = [s for s in samples if s is not None and not isinstance(s, Skipped)]
        if not samples:
            raise DataError("every sample of a batch was skipped; see the skip report")
        encoded, prompt_lengths, answers = self._encode(samples)
        too_long = self._too_long(samples, prompt_lengths, answers)
        if too_long:
            if self.skip_report is None:
                raise DataError(too_long[0][1])
            for row, message in too_long:
                # Counted in the sample's own dataset report (kept -> skipped, once per sample,
                # however many epochs meet it); in a data-loader worker that report is a copy, so
                # the skip travels back with the batch (docvlm.data.skips). Samples made outside a
                # SampleSet count in the collator's own report.
                sample = samples[row]
                if sample.report is not None and in_worker():
                    skips.append((f"train:{sample.record.dataset}", "too_long", message, sample.record.key))
                elif sample.report is not None:
                    sample.report.skip_kept(sample.record.key, "too_long", message)
                else:
                    self.skip_report.skip("too_long", message)
            dropped = {row for row, _ in too_long}
            samples = [s for row, s in enumerate(samples) if row not in dropped]
            if not samples:
                raise DataError("every sample of a batch was skipped; see the skip report")
            encoded, prompt_lengths, answers = self._encode(samples)
        self._warn_visual_tokens(samples, encoded["input_ids"])
        batch = self._batch(samples, encoded, prompt_lengths, answers)
        if skips:
            batch[SKIPS_KEY] = skips
        return batch

    def _batch(self, samples, encoded, prompt_lengths, answers) -> dict[str, torch.Tensor]:
        if self.chat.seq2seq:
            return self._decoder_batch(encoded, answers)

        batch_length = max(p + len(a) for p, a in zip(prompt_lengths, answers))
        pad_id = self.chat.processor.tokenizer.pad_token_id
        input_ids = torch.full((len(samples), batch_length), pad_id, dtype=torch.long)
        attention = torch.zeros((len(samples), batch_length), dtype=torch.long)
        labels = torch.full((len(samples), batch_length), IGNORE_INDEX, dtype=torch.long)
        # Per-token side inputs (e.g. Qwen's mm_token_type_ids) get zeros on answer tokens.
        per_token = {k: torch.zeros((len(samples), batch_length), dtype=v.dtype) for k, v in encoded.items()
                     if k not in ("input_ids", "attention_mask") and v.dim() == 2
                     and v.shape == encoded["input_ids"].shape}
        for row, (length, answer) in enumerate(zip(prompt_lengths, answers)):
            end = length + len(answer)
            input_ids[row, :length] = encoded["input_ids"][row, :length]
            input_ids[row, length:end] = torch.tensor(answer)
            attention[row, :end] = 1
            labels[row, length:end] = torch.tensor(answer)
            for key, tensor in per_token.items():
                tensor[row, :length] = encoded[key][row, :length]
        batch = {k: v for k, v in encoded.items() if k not in per_token}
        batch.update(per_token, input_ids=input_ids, attention_mask=attention, labels=labels)
        return batch

    def _decoder_batch(self, encoded, answers: list[list[int]]) -> dict[str, torch.Tensor]:
        """Encoder-decoder: the prompt batch as the processor made it, the targets as labels
        (padding ignored); the model shifts labels right to make the decoder's inputs."""
        labels = torch.full((len(answers), max(map(len, answers))), IGNORE_INDEX, dtype=torch.long)
        for row, answer in enumerate(answers):
            labels[row, :len(answer)] = torch.tensor(answer)
        return {**encoded, "labels": labels}

    def _encode(self, samples: list[Sample]):
        encoded = encode_prompts(self.chat, samples, padding_side="right")
        prompt_lengths = encoded["attention_mask"].sum(dim=1).tolist()
        tokenizer = self.chat.processor.tokenizer
        answers = self._answer_ids(tokenizer, samples)
        return encoded, prompt_lengths, answers

    def _answer_ids(self, tokenizer, samples: list[Sample]) -> list[list[int]]:
        """Every answer's token ids, in one tokenizer call for the batch (a call per sample costs
        more than the tokenizing itself)."""
        if self.chat.seq2seq:  # special tokens by id: the target text itself may contain "<s>"
            texts = tokenizer([s.target for s in samples], add_special_tokens=False)["input_ids"]
            end = tokenizer.convert_tokens_to_ids(self.chat.spec.end_of_turn)
            begin = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
            return [begin + ids + [end] for ids in texts]
        return tokenizer([self.chat.answer_text(s.prompt, s.target) for s in samples],
                         add_special_tokens=False)["input_ids"]

    def _too_long(self, samples, prompt_lengths, answers) -> list[tuple[int, str]]:
        if self.max_length is None:
            return []
        found = []
        for row, sample in enumerate(samples):
            total = prompt_lengths[row] + len(answers[row])
            if total > self.max_length:
                found.append((row, f"{sample.record.where}: {total} tokens exceed data.max_length="
                                   f"{self.max_length}; lower the dataset's max_pixels or raise max_length "
                                   "(samples are never truncated)"))
        return found

    def _warn_visual_tokens(self, samples, input_ids) -> None:
        image_id = image_token_id(self.chat.processor)
        for row, sample in enumerate(samples):
            visual = int((input_ids[row] == image_id).sum())
            if self.warn_visual_tokens and visual > self.warn_visual_tokens:
                log.warning("%s: image gives %d visual tokens (> data.warn_visual_tokens=%d); "
                            "consider a smaller max_pixels", sample.record.where, visual, self.warn_visual_tokens)


@torch.no_grad()
def generate_answers(model: Any, chat: ChatFormat, samples: Sequence[Sample], max_new_tokens: int,
                     num_beams: int = 1, encoded: dict | None = None, **generate_options: Any) -> list[str]:
    """Greedy (or beam) answers for one batch; prompts are left-padded so every row ends together.
    ``encoded``: the samples' prompts as ``encode_prompts(..., padding_side="left")`` gave them
    (encoded here when None). ``generate_options`` go to ``model.generate`` (e.g. ``synced_gpus``
    on sharded engines)."""
    if encoded is None:
        encoded = encode_prompts(chat, samples, padding_side="left")
    device = next(model.parameters()).device
    encoded = {k: v.to(device) for k, v in encoded.items()}
    tokenizer = chat.processor.tokenizer
    end_ids = {tokenizer.convert_tokens_to_ids(chat.spec.end_of_turn)}
    if tokenizer.eos_token_id is not None:
        end_ids.add(tokenizer.eos_token_id)
    was_training = model.training
    model.eval()
    try:
        # One processor call per batch (above); the KV cache keeps each step to the new token; a
        # row that has written an end id only receives padding while the others finish, and the
        # loop stops as soon as every row has.
        output = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False, num_beams=num_beams,
                                eos_token_id=sorted(end_ids), pad_token_id=tokenizer.pad_token_id, use_cache=True,
                                **generate_options)
    finally:
        model.train(was_training)
    if chat.seq2seq:
        return decode_seq2seq(tokenizer, output)
    new_tokens = output[:, encoded["input_ids"].shape[1]:]
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


def decode_seq2seq(tokenizer: Any, output: torch.Tensor) -> list[str]:
    """An encoder-decoder's output is the decoder sequence alone. Location tokens (<loc_N>) may be
    special tokens in a checkpoint's vocabulary, so only begin/end/padding markers are removed."""
    drop = [t for t in (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) if t]
    texts = tokenizer.batch_decode(output, skip_special_tokens=False)
    for marker in drop:
        texts = [text.replace(marker, "") for text in texts]
    return [text.strip() for text in texts]
