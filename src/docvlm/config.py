"""One typed configuration for every command.

The config is a tree of dataclasses. Each field carries a docstring (the string literal below it),
which ``docvlm config fields`` prints, so the YAML keys and their meaning are documented in one
place. Values come from a YAML file and then from ``--section.key value`` overrides; both paths go
through :func:`from_dict`, which rejects unknown keys and wrong types with the dotted key in the
message. The resolved config is written into every run folder (``config.yaml``) so later commands
never need the user to retype anything.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import textwrap
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from docvlm.errors import ConfigError
from docvlm.files import write_text_atomic


@dataclass
class ModelConfig:
    name_or_path: str = "Qwen/Qwen2-VL-2B-Instruct"
    """Hub id or local folder of the base model (loaded through transformers' Auto classes)."""
    family: str | None = None
    """Model family spec to use; detected from ``config.model_type`` when empty."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) of the base model."""
    trust_remote_code: bool = False
    """Allow code from the model repository to run. Off unless you trust the repository."""
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """Weight dtype: ``auto`` is bf16 on a GPU that supports it and fp32 on CPU."""
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    """Attention kernel; ``flash_attention_2`` needs the flash-attn package and a GPU."""
    processor_options: dict[str, Any] | None = None
    """Image-processor settings of the family (its spec lists which), e.g. Idefics
    ``{do_image_splitting: false, size: {longest_edge: 728}}`` or Florence-2 ``{size: {height: 768,
    width: 768}}``; saved with every checkpoint so predict reads images the same way."""


@dataclass
class LoraConfig:
    r: int = 16
    """LoRA rank."""
    alpha: int = 32
    """LoRA scaling numerator (scale = alpha / r, or alpha / sqrt(r) with rsLoRA)."""
    dropout: float = 0.05
    """Dropout on the LoRA input."""
    target_modules: list[str] | str | None = None
    """Module names (list) or one regex over full module names (string). Empty: the family's
    default linear layers of every component that is not frozen."""
    use_dora: bool = False
    """Weight-decomposed LoRA (DoRA)."""
    use_rslora: bool = False
    """Rank-stabilised scaling alpha / sqrt(r)."""


@dataclass
class TuningConfig:
    method: Literal["full", "lora", "qlora"] = "lora"
    """``full`` trains all unfrozen weights; ``lora`` adds adapters; ``qlora`` adds adapters to a
    4-bit NF4 base (bitsandbytes, CUDA only)."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """Adapter settings for ``lora`` and ``qlora``."""
    freeze_vision: bool = True
    """Keep the vision encoder fixed (no gradient, no adapters)."""
    freeze_projector: bool = False
    """Keep the vision-to-language projector fixed."""
    freeze_language: bool = False
    """Keep the language model fixed."""
    freeze_parameters: str | None = None
    """Regex (``re.search``) over parameter names as the loaded model names them, e.g.
    ``vision_model\\.embeddings\\.position_embedding``: those weights stay fixed too, inside components
    that are trained (``method: full`` only; LoRA already keeps every base weight fixed). The demo
    keeps the tiny Idefics2's perceiver routing fixed this way (see docvlm/demo.py)."""
    scope: Literal["language_attention", "language_mlp_gate_up", "language", "projector", "all"] | None = None
    """What is trained, as a preset mapped through the family spec (no module lists):
    ``language_attention`` (the language model's attention projections), ``language_mlp_gate_up``
    (its MLP gate/up projections), ``language``, ``projector`` or ``all``. Tuning only attention or
    only gate/up keeps held-out abilities best (Zhu et al. 2025). When set, it replaces the
    ``freeze_*`` flags and LoRA's default targets (``lora.target_modules`` must stay empty)."""


@dataclass
class DatasetConfig:
    name: str = "data"
    """Short label used in file names and tables."""
    source: str = ""
    """Hub dataset id, a local ``datasets`` folder, a JSONL manifest, or a folder of
    ``<split>.jsonl`` manifests."""
    format: Literal["auto", "hf", "jsonl", "csv", "page", "alto", "lines", "llamafactory"] = "auto"
    """How to read ``source``: ``hf`` (hub id or ``datasets`` folder), ``jsonl``/``csv`` manifests,
    ``page``/``alto`` (a folder of PAGE-XML or ALTO files, ``.xml``/``.alto``, beside their page
    images; only files of that format are read), ``lines`` (a
    folder of ``name.png`` + ``name.gt.txt``), ``llamafactory`` (a ``dataset_info.json``). ``auto``
    decides from the file suffix or the folder's content, and asks when that is ambiguous."""
    task: Literal["transcription", "vqa", "chart", "vqav2", "caption", "exact"] = "transcription"
    """What the target is; decides the metric: transcription -> CER/WER, vqa -> ANLS, chart ->
    relaxed accuracy, vqav2 -> VQA accuracy, caption -> BLEU-4/CIDEr-D, exact -> exact match."""
    prompt: str = "Transcribe the text in this image."
    """User instruction sent with every image of this dataset."""
    task_token: str | None = None
    """Florence-2 task token put before the prompt, e.g. ``<OCR>`` (then set ``prompt: ""``) or
    ``<DocVQA>`` (the prompt or question follows it); chat families reject task tokens."""
    image_column: str = "image"
    """Column (or JSONL key) holding the image; a path relative to the manifest for JSONL."""
    text_column: str = "text"
    """Column (or JSONL key) holding the target text; empty only for label-free retention probes."""
    id_column: str | None = None
    """Column holding a sample id; empty: ``<split>-<row>``."""
    group_column: str | None = None
    """Column used to group samples in reports (document, hand, manuscript...)."""
    language_column: str | None = None
    """Column holding the sample language."""
    train_split: str | None = "train"
    """Split used for training; empty: this dataset is not trained on."""
    eval_split: str | None = "validation"
    """Split used for evaluation during training; empty: none. A source without splits of its own
    (PAGE/ALTO/line folders without split subfolders, tags or ``split_ratios``) has an empty one."""
    test_split: str | None = "test"
    """Held-out split scored by ``docvlm evaluate``; empty: none."""
    train_select: str | None = None
    """Row range ``start:end`` taken from the training split (after shuffling)."""
    eval_select: str | None = None
    """Row range taken from the evaluation split."""
    test_select: str | None = None
    """Row range taken from the test split."""
    shuffle_seed: int | None = None
    """Shuffle every split with this seed before selecting rows; empty: keep the file order."""
    min_pixels: int | None = None
    """Smallest image area (pixels) after resizing; empty: the processor's default."""
    max_pixels: int | None = None
    """Largest image area (pixels) after resizing; empty: the processor's default (Qwen: ~1 MP).
    This is the visual-token budget: tokens = pixels / (patch * merge)^2."""
    weight: float = 1.0
    """Sampling weight of this dataset in the training mixture (see ``data.mixture``)."""
    question_column: str | None = None
    """VQA: column holding the question; the sample prompt is ``prompt_template`` filled with it. A
    question stored as a per-language dict (DocVQA variants) is read in ``question_language``."""
    question_language: str | None = None
    """VQA: key chosen when a question is a per-language dict (e.g. ``en``)."""
    prompt_template: str = "{question}"
    """VQA: how a question becomes the user text; ``{question}`` is replaced by it."""
    answers_column: str | None = None
    """VQA: column holding a list of acceptable answers (strings, or records with an ``answer`` key
    as in VQAv2 on the hub); the first one is the training target and metrics use all of them.
    Empty: ``text_column`` holds the (single) answer."""
    options_column: str | None = None
    """Multiple choice: column holding the list of options; the answer (``text_column``) is an
    option's text, its letter (A, B, ...) or its 0-based index."""
    extra_columns: list[str] = field(default_factory=list)
    """Further columns kept as the sample group (joined with ``/``), e.g. a document type."""
    split_ratios: list[float] | None = None
    """Sources without their own splits (PAGE/ALTO/line folders): ``[train, validation, test]``
    fractions of *pages* (never lines) drawn with ``split_seed``, e.g. ``[0.8, 0.1, 0.1]``."""
    split_seed: int = 0
    """Seed of the page-level random split."""
    line_padding: int = 0
    """PAGE/ALTO: pixels added on every side of a line's bounding box when cropping."""
    mask_polygon: bool = False
    """PAGE/ALTO: paint everything outside the line polygon white in the crop."""
    llamafactory_dataset: str | None = None
    """LLaMA-Factory: the entry of ``dataset_info.json`` to read (empty: the only one)."""
    allow_outside_root: bool = False
    """Accept image paths that point outside the dataset's folder (``..``, absolute paths)."""
    role: str = "task"
    """``task``: the data the run is for; its evaluation split scores checkpoints. ``replay``:
    general data mixed into training to limit forgetting; never used to choose a checkpoint."""

    def prompt_for(self, question: str | None = None) -> str:
        """The model prompt of a sample: the task token (if any), then ``prompt_template`` filled
        with the sample's question, or the dataset's ``prompt`` when there is none."""
        text = self.prompt if question is None else self.prompt_template.replace("{question}", question)
        return (self.task_token or "") + text


@dataclass
class DataConfig:
    datasets: list[DatasetConfig] = field(default_factory=lambda: [DatasetConfig()])
    """The datasets of this run, each with its own prompt and pixel budget."""
    on_bad_sample: Literal["error", "skip"] = "error"
    """``error`` stops at the first unusable sample; ``skip`` drops it and counts it in the run's
    ``data_report.json``."""
    warn_visual_tokens: int = 2048
    """Warn when one image produces more visual tokens than this."""
    max_length: int | None = None
    """Longest allowed sequence in tokens; a longer sample is reported (error or counted skip),
    never truncated, because cutting image placeholders breaks the model."""
    mixture: Literal["concat", "weighted"] = "concat"
    """How several training datasets are combined: ``concat`` visits every sample once per epoch;
    ``weighted`` draws an epoch of ``mixture_size`` samples, each dataset in proportion to its
    ``weight``, interleaved with ``train.seed`` (small datasets repeat, large ones are subsampled)."""
    mixture_size: int | None = None
    """Samples per epoch of a ``weighted`` mixture; empty: the total of all training datasets."""
    mixture_seed: int = 0
    """Seed of the ``weighted`` mixture's draw and interleaving."""
    max_target_length: int = 1000
    """``data check`` reports targets longer than this (in tokens of the model's tokenizer when it
    loads, else characters)."""
    min_image_side: int = 8
    """Images (or line crops) narrower or lower than this many pixels are bad samples (an error, or
    a counted skip): a 1x1 image holds no text a model could learn from."""
    max_aspect_ratio: float = 200.0
    """Longest side / shortest side above which an image is a bad sample: Qwen-VL's processor
    refuses images beyond 200, and other families squash such a line to nothing readable."""
    wide_images: Literal["reject", "pad"] = "reject"
    """An image beyond ``max_aspect_ratio``: ``reject`` (bad sample) or ``pad`` (white margins on its
    short side until the ratio is allowed; the text is not rescaled)."""


@dataclass
class TrainConfig:
    learning_rate: float = 1e-4
    """Peak learning rate (AdamW)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    num_epochs: float = 1.0
    """Epochs over the training split (ignored when ``max_steps`` > 0)."""
    max_steps: int = -1
    """Optimizer steps to run; -1: use ``num_epochs``."""
    batch_size: int = 1
    """Samples per device per forward pass."""
    gradient_accumulation_steps: int = 8
    """Forward passes per optimizer step."""
    warmup: float = 0.03
    """Warmup: a fraction of all steps when below 1, else a number of steps."""
    lr_scheduler: str = "cosine"
    """transformers scheduler name (cosine, linear, constant_with_warmup, ...)."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory."""
    logging_steps: int = 10
    """Log loss and learning rate every N steps."""
    eval_steps: int = 200
    """Evaluate (loss and generation CER) every N steps; 0 disables evaluation."""
    eval_max_samples: int = 64
    """Cap on evaluation samples used for the generation-based CER during training."""
    save_steps: int = 200
    """Write a checkpoint every N steps (a multiple of ``eval_steps`` when evaluating)."""
    save_total_limit: int = 3
    """Keep at most this many checkpoints (the best one is always kept)."""
    seed: int = 42
    """Seed for shuffling, dropout and initialisation of adapters."""
    dataloader_workers: int | Literal["auto"] = "auto"
    """Worker processes that decode images and run the processor while the model computes
    (0: in the training process). ``auto``: up to 4 per process on a GPU (half its share of the
    cores), none on a CPU, where torch's threads already use every core (docvlm/train/workers.py
    says what was measured). Skips made in workers are counted in the run's data report."""
    dataloader_prefetch: int = 2
    """Batches each worker prepares ahead (used when ``dataloader_workers`` > 0)."""
    group_by_length: bool = False
    """Draw batches of similar length (visual tokens + answer tokens, estimated without decoding):
    less padding, same samples per epoch; the padding fraction is logged either way."""
    torch_compile: bool = False
    """Compile the model with ``torch.compile`` (the Trainer's option); pays off on long runs on a GPU."""
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    """Trainer loggers (tensorboard, wandb, none)."""
    kl_to_base: float = 0.0
    """beta of a ``beta * KL(base || tuned)`` loss term on the answer tokens (replay samples
    included), base logits from the model with adapters disabled (LoRA) or from a frozen copy of
    the starting weights (full tuning: one more model in memory); 0 disables it."""
    l2_to_init: float = 0.0
    """lambda of an L2-SP term ``lambda * sum (w - w0)^2`` over the trainable weights, pulling them
    towards their starting values (a copy of the trainable weights is kept); 0 disables it."""
    answer_only_logits: bool = True
    """Compute the output head and the loss only at labelled (answer) positions instead of over the
    whole sequence; the same loss and gradients, far less memory with a large vocabulary. ``false``
    takes the model's own full-logits loss."""
    selection_metric: str | None = None
    """Evaluation metric that chooses the best checkpoint, e.g. ``anls`` or ``cer``; empty: the
    task metric of the first evaluated task dataset (CER for transcription, ANLS for vqa ...)."""
    trainer_args: dict[str, Any] = field(default_factory=dict)
    """Further ``transformers.TrainingArguments`` passed as given, e.g.
    ``{ddp_find_unused_parameters: false}``; keys docvlm sets itself are refused."""


@dataclass
class GenerationConfig:
    max_new_tokens: int = 256
    """Longest generated answer."""
    batch_size: int = 32
    """Most samples per generation batch (left-padded, images of similar size together). Measured
    on the demo model (benchmarks/predict_throughput.py): 32 gives ~9x the samples/s of batch 1
    on a CPU, and 64 no more."""
    max_batch_visual_tokens: int | None = 16384
    """A batch closes early when its images' visual tokens (estimated from the image headers at the
    pixel budget) would pass this, so that page images run a few at a time while lines run
    ``batch_size`` at a time; an image above it runs alone. Used by predict, evaluate, evaluation
    during training and the retention suites. 16384 is Qwen2-VL's largest single
    image (max_pixels 12 845 056 / 784). null: only ``batch_size`` limits a batch."""
    num_beams: int = 1
    """1: greedy decoding."""


@dataclass
class TextMetricConfig:
    """How CER/WER see text. The defaults are kraken's ``ketos test`` defaults (checked in its
    source, kraken/ketos/recognition.py and kraken/lib/dataset: ``--normalization`` None,
    ``--normalize-whitespace`` on = every Unicode whitespace character becomes a space and the ends
    are stripped, errors counted on code points, no case folding). kraken applies these to the
    ground truth only (its codec cannot emit anything else); a VLM can emit any code point, so here
    both sides are transformed the same way. kraken also reorders right-to-left ground truth to
    display order (``--reorder``); a VLM writes logical order, so both sides stay in logical order."""

    normalization: Literal["none", "NFC", "NFD", "NFKC", "NFKD", "dinglehopper"] = "none"
    """Unicode normalization of reference and prediction. CATMuS models are trained on NFD, so a
    CER is only comparable with theirs under the same form. ``dinglehopper``: NFC plus
    dinglehopper's character equivalences (ligatures split, ’ -> ', em dash -> en dash ...), as its
    command-line tools apply them."""
    unit: Literal["codepoint", "grapheme"] = "codepoint"
    """CER unit: Unicode code points (kraken, jiwer, torchmetrics) or extended grapheme clusters
    (a letter with its combining marks, an emoji with its modifiers count as one), segmented by
    UAX #29 with Unicode 16.0 properties as ICU, dinglehopper and uniseg do (rule GB9c joins a
    virama to the next consonant only after a consonant)."""
    whitespace: Literal["normalize", "collapse", "strip", "none"] = "normalize"
    """``normalize``: each Unicode whitespace character -> space, ends stripped (kraken);
    ``collapse``: additionally runs of spaces -> one space; ``strip``: only the ends stripped
    (dinglehopper's command-line tools); ``none``: text as given."""
    words: Literal["whitespace", "dinglehopper"] = "whitespace"
    """WER unit: whitespace-separated words (jiwer, torchmetrics, kraken) or ``dinglehopper``'s:
    UAX #29 word boundaries, dropping pieces made only of punctuation, symbols, spaces and marks
    (``Hello, world!`` is 2 words either way; ``犬猫`` is 2 here, 1 for whitespace)."""
    case_fold: bool = False
    """Compare case-insensitively (Unicode case folding)."""
    remove_punctuation: bool = False
    """Drop every Unicode punctuation character (categories P*) before comparing."""


@dataclass
class EvalConfig:
    split: Literal["test", "eval"] = "test"
    """Which split of each dataset ``docvlm evaluate`` scores: its ``test_split`` or ``eval_split``."""
    max_samples: int | None = None
    """Cap on scored samples per dataset; empty: all."""
    text: TextMetricConfig = field(default_factory=TextMetricConfig)
    """Text normalization and unit for CER/WER (stated in every metrics file)."""
    anls_threshold: float = 0.5
    """ANLS: a similarity below this scores 0 (DocVQA/InfoVQA use 0.5)."""
    anls_denominator: Literal["raw", "normalized"] = "raw"
    """ANLS length normaliser: ``raw`` divides by the longer *raw* string (lmms-eval, the DocVQA
    RRC script); ``normalized`` by the longer stripped/lower-cased/whitespace-collapsed string
    (VLMEvalKit). The edit distance is on the normalized strings in both."""
    relaxed_tolerance: float = 0.05
    """ChartQA relaxed accuracy: largest accepted relative error of a numeric answer."""
    relaxed_strip: bool | Literal["prediction"] = False
    """ChartQA relaxed accuracy: ``false`` strips nothing, as pix2struct's ``relaxed_correctness``
    and lmms-eval (``"Yes\\n"`` is not ``"Yes"``); ``prediction`` strips the prediction only, as
    VLMEvalKit; ``true`` strips prediction and target."""
    vqa_normalization: Literal["official", "always", "lmms-eval"] = "official"
    """VQAv2 accuracy: ``official`` = GT-Vision-Lab vqaEval.py (answers and prediction normalized
    only when the human answers disagree); ``always`` = both sides always normalized (VLMEvalKit);
    ``lmms-eval`` = the prediction always normalized (after lower-casing, removing commas and "?",
    splitting off "'s"), the answers only when they disagree."""
    caption_tokenizer: Literal["ptb", "whitespace", "simple"] = "ptb"
    """BLEU-4, CIDEr-D and METEOR tokens: ``ptb`` = coco-caption's PTBTokenizer (reproduced in pure
    Python); ``whitespace`` = text already tokenized, split on whitespace only (what coco-caption's
    scorers do after its tokenizer); ``simple`` = lower-case, punctuation removed (not coco-caption's)."""
    vqa_single_reference: Literal["exact", "leave_one_out"] = "exact"
    """VQAv2 accuracy of a question with one human answer, where the leave-one-out formula is always
    0: ``exact`` = (normalized) exact match (docvlm's choice); ``leave_one_out`` = 0 as vqaEval.py,
    lmms-eval and VLMEvalKit give."""
    multi_reference: Literal["first", "best"] = "first"
    """CER/WER of a row that gives only ``references`` (no ``reference``): score against the first
    one, or the ``best`` one (per sample and per metric the reference with the fewest edits: the
    fewest character edits for CER, word edits for WER; ties: the first)."""
    bootstrap_resamples: int = 1000
    """Bootstrap resamples for confidence intervals and the paired p-value; 0 disables them."""
    confidence: float = 0.95
    """Confidence level of the bootstrap percentile intervals."""
    seed: int = 0
    """Seed of the bootstrap resampling (same seed, same intervals)."""
    group_by: list[str] = field(default_factory=lambda: ["group", "language"])
    """Sample fields to break every metric down by (any prediction-row field, e.g. group,
    language, dataset)."""
    worst: int = 10
    """Worst samples kept, with aligned reference/prediction, in the error analysis."""
    top_confusions: int = 20
    """Most frequent ``expected -> got`` confusions kept in the error analysis."""
    price_per_hour: float | None = None
    """Hourly price (USD) of the machine; with it the latency figures of evaluate and predict give
    the cost per 1000 images (``--price-per-hour`` overrides it)."""


@dataclass
class RetentionSuiteConfig:
    """A general-ability suite scored on the base and the tuned model by ``docvlm retention``."""

    kind: Literal["vqa", "docvqa", "multiple_choice", "caption", "retrieval", "probes"] = "vqa"
    """``vqa``: several human answers, VQAv2 accuracy; ``docvqa``: ANLS (reported apart from the
    non-OCR suites); ``multiple_choice``: accuracy; ``caption``: BLEU-4, CIDEr-D, METEOR;
    ``retrieval``: image<->text Recall@1/5/10 by the model's mean log-likelihood of each caption given
    each image; ``probes``: label-free drift, KL(base || tuned) and the tuned model's cross-entropy on
    the base model's greedy answers."""
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    """The suite's data, read by the same sources as training data, from its ``test_split``. The
    answers (``answers_column`` or ``text_column``) are the references; a retrieval suite's
    ``answers_column`` holds each image's captions; probes need no answers (``text_column`` empty)."""
    max_samples: int | None = None
    """Cap on scored samples; empty: ``retention.max_samples``."""
    choice_mode: Literal["likelihood", "generate"] = "likelihood"
    """multiple_choice: ``likelihood`` picks the option with the highest mean log-likelihood as the
    answer; ``generate`` lists the options as ``A. ...`` lines and reads the generated letter."""
    choice_parser: Literal["vlmevalkit", "first_letter"] = "vlmevalkit"
    """multiple_choice, ``generate``: how the chosen option is read from the answer.
    ``vlmevalkit``: VLMEvalKit's rule-based ``can_infer`` as of 2026-08 (the one option letter
    standing alone among the answer's last five words once ``.()[],:;!*#{}`` are spaces, as in
    "The answer is (B)."; else "answer is X"; else the one option whose text the answer contains,
    case-folded, unless the answer is longer than twice the options' text; a refusal or ambiguity
    is wrong), without its LLM judge; ``first_letter``: the answer must start with the letter
    (``B``, ``b.``, ``(B)``)."""
    max_candidates: int = 100
    """retrieval: images (with all their captions) ranked against each other; the cost is
    images x captions forward passes per model."""


@dataclass
class RetentionConfig:
    suites: list[RetentionSuiteConfig] = field(default_factory=list)
    """General suites scored by ``docvlm retention`` (none: only the task metrics)."""
    floor: float = 0.95
    """Lowest accepted retention (tuned / base) per general metric: 0.95 allows a 5% relative drop."""
    max_samples: int | None = 500
    """Default cap on scored samples per suite; empty: all."""
    max_new_tokens: int = 32
    """Longest generated answer or caption in the suites and probes."""


@dataclass
class Config:
    run_name: str = "run"
    """Name of the run folder."""
    output_root: str = "runs"
    """Folder that holds run folders."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Base model."""
    tuning: TuningConfig = field(default_factory=TuningConfig)
    """What is trained and how."""
    data: DataConfig = field(default_factory=DataConfig)
    """Datasets and sample checks."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Optimisation, evaluation and checkpointing."""
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    """Decoding for evaluation and prediction."""
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    """What ``docvlm evaluate`` scores."""
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    """General-ability suites and the retention floor (``docvlm retention``)."""

    @property
    def run_dir(self) -> Path:
        return Path(self.output_root) / self.run_name


# --------------------------------------------------------------------------------------------
# Building a config from plain data, with errors that name the key


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Build dataclass ``cls`` from nested dicts, checking every key and type."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {_describe(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = _join(where, unknown[0])
        raise ConfigError(f"unknown config key '{key}' (valid keys here: {', '.join(fields)})")
    values = {name: _convert(hints[name], value, _join(where, name)) for name, value in data.items()}
    return cls(**values)


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, key)
            except ConfigError as error:
                errors.append(error)
        raise ConfigError(f"config key '{key}': expected {_type_name(tp)}, got {_describe(value)}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            choices = ", ".join(repr(a) for a in allowed)
            raise ConfigError(f"config key '{key}': {value!r} is not one of {choices}")
        return value
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"config key '{key}': expected a mapping of names to values, got {_describe(value)}")
        return value
    if origin is list:
        (item_type,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"config key '{key}': expected a list, got {_describe(value)}")
        return [_convert(item_type, item, f"{key}.{i}") for i, item in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        # PyYAML reads "1e-4" as a string (YAML 1.1 wants "1.0e-4"); accept what Python accepts.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Any:
        return value
    raise ConfigError(f"config key '{key}': expected {_type_name(tp)}, got {_describe(value)}")


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(map(str, typing.get_args(tp)))
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(t) for t in typing.get_args(tp) if t is not type(None))
    if typing.get_origin(tp) is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if typing.get_origin(tp) is dict:
        return "a mapping"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if value is not None else "nothing"


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


# --------------------------------------------------------------------------------------------
# YAML files and command-line overrides


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, check: bool = True) -> Config:
    """Read a YAML config (or the defaults), apply ``--dotted.key value`` overrides and
    :func:`validate` it (``check=False`` only to show a config as written)."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if path.is_dir():  # a run folder given where its config goes: say which file is meant
            saved = path / "config.yaml"
            raise ConfigError(f"{path} is a folder, not a config file" + (
                f"; a run's config is {saved} (e.g. docvlm train {saved} --resume)" if saved.is_file() else ""))
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        data = read_yaml(path) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
    for key, value in parse_overrides(overrides or []):
        set_dotted(data, key, value)
    try:
        config = from_dict(Config, data)
        if check:
            validate(config)
        return config
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}" if path else str(error)) from None


def read_yaml(path: Path) -> Any:
    """A YAML file's content; a file that is not UTF-8 or not YAML is a one-line ``ConfigError``
    naming the file, line and column (PyYAML's own message spans several lines)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[error.start]:02x} at offset "
                          f"{error.start}); save the file as UTF-8") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(yaml_error(path, error)) from None


def yaml_error(path: Path, error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    context = getattr(error, "context", None)
    return f"{where}: not valid YAML ({problem}{'; ' + context if context else ''})"


# --------------------------------------------------------------------------------------------
# Cross-field rules, checked in one place so that ``docvlm config check`` tells the truth

DATASET_ROLES = ("task", "replay")
# TrainingArguments that docvlm derives from its own config keys; ``train.trainer_args`` may not
# set them (two sources for one value would silently disagree).
TRAINER_ARGS_SET_BY_DOCVLM = {
    "output_dir": "output_root/run_name", "per_device_train_batch_size": "train.batch_size",
    "per_device_eval_batch_size": "train.batch_size",
    "gradient_accumulation_steps": "train.gradient_accumulation_steps",
    "learning_rate": "train.learning_rate", "weight_decay": "train.weight_decay",
    "num_train_epochs": "train.num_epochs", "max_steps": "train.max_steps", "warmup_steps": "train.warmup",
    "lr_scheduler_type": "train.lr_scheduler", "max_grad_norm": "train.max_grad_norm",
    "gradient_checkpointing": "train.gradient_checkpointing", "logging_steps": "train.logging_steps",
    "eval_strategy": "train.eval_steps", "eval_steps": "train.eval_steps", "save_strategy": "train.save_steps",
    "save_steps": "train.save_steps", "save_total_limit": "train.save_total_limit",
    "load_best_model_at_end": "train.eval_steps", "metric_for_best_model": "train.selection_metric",
    "greater_is_better": "train.selection_metric", "report_to": "train.report_to",
    "remove_unused_columns": "(the collator needs every column)", "label_names": "(always labels)",
    "seed": "train.seed", "data_seed": "train.seed", "dataloader_num_workers": "train.dataloader_workers",
    "bf16": "model.dtype", "fp16": "model.dtype", "use_cpu": "(chosen from the hardware)",
    "prediction_loss_only": "(evaluation scores generated answers)",
    "save_only_model": "(checkpoints keep the optimizer state so --resume works)",
    "dataloader_prefetch_factor": "train.dataloader_prefetch",
    "dataloader_persistent_workers": "train.dataloader_workers", "torch_compile": "train.torch_compile",
}


def _validate_roles_seams_retention(config: Config) -> None:
    """The rules of dataset roles, extra Trainer arguments, checkpoint selection, tuning scope,
    regularizers and retention suites (part of :func:`validate`)."""
    problems = [*_role_problems(config.data), *_trainer_args_problems(config.train.trainer_args),
                *_selection_problems(config), *_loader_problems(config.train)]
    if problems:
        key, message = problems[0]
        raise ConfigError(f"config key '{key}': {message}")
    _validate_tuning(config)
    _validate_datasets(config)
    _validate_retention(config.retention)


def _loader_problems(train: TrainConfig) -> list[tuple[str, str]]:
    problems = []
    if train.dataloader_workers != "auto" and train.dataloader_workers < 0:
        problems.append(("train.dataloader_workers", f"{train.dataloader_workers} is below 0"))
    if train.dataloader_prefetch < 1:
        problems.append(("train.dataloader_prefetch", f"{train.dataloader_prefetch} is below 1 (batches per worker)"))
    return problems


def _role_problems(data: DataConfig) -> list[tuple[str, str]]:
    return [(f"data.datasets.{i}.role", f"{d.role!r} is not one of {', '.join(map(repr, DATASET_ROLES))}")
            for i, d in enumerate(data.datasets) if d.role not in DATASET_ROLES]


def _selection_problems(config: Config) -> list[tuple[str, str]]:
    """``train.selection_metric`` must be a metric that some task dataset's evaluation produces."""
    metric = config.train.selection_metric
    if metric is None:
        return []
    from docvlm.evaluate.scoring import TASK_METRICS  # pure module; imported late (it imports this one)

    produced = {"loss"} | {m for d in config.data.datasets if d.role == "task" and d.eval_split
                           for m in TASK_METRICS[d.task]}
    if metric.removeprefix("eval_") not in produced:
        return [("train.selection_metric", f"'{metric}' is not computed for any task dataset's evaluation split "
                                           f"(available: {', '.join(sorted(produced))})")]
    return []


def _trainer_args_problems(extra: dict[str, Any]) -> list[tuple[str, str]]:
    if not extra:
        return []
    from transformers import TrainingArguments  # only when used: config checks stay light

    known = {f.name for f in dataclasses.fields(TrainingArguments) if f.init}
    problems = []
    for key in extra:
        if key in TRAINER_ARGS_SET_BY_DOCVLM:
            problems.append((f"train.trainer_args.{key}",
                             f"set by docvlm from {TRAINER_ARGS_SET_BY_DOCVLM[key]}; use that instead"))
        elif key not in known:
            problems.append((f"train.trainer_args.{key}", "not a transformers TrainingArguments field "
                                                          "(see transformers.TrainingArguments)"))
    return problems


def _validate_tuning(config: Config) -> None:
    if config.tuning.scope is not None and config.tuning.lora.target_modules:
        raise ConfigError("config keys 'tuning.scope' and 'tuning.lora.target_modules' exclude each other: "
                          "the scope preset chooses the adapted layers")
    for key in ("kl_to_base", "l2_to_init"):
        if getattr(config.train, key) < 0:
            raise ConfigError(f"config key 'train.{key}' must be >= 0")


def _validate_datasets(config: Config) -> None:
    for i, dataset in enumerate(config.data.datasets):
        if not dataset.text_column and not dataset.answers_column:
            raise ConfigError(f"config key 'data.datasets.{i}.text_column' is empty: a training or evaluation "
                              "dataset needs its targets (only retention probes go without)")


def _validate_retention(retention: RetentionConfig) -> None:
    if not 0 < retention.floor <= 1:
        raise ConfigError(f"config key 'retention.floor' must be in (0, 1], got {retention.floor}")
    if retention.max_samples is not None and retention.max_samples < 1:
        raise ConfigError("config key 'retention.max_samples' must be >= 1")
    names: set[str] = set()
    for i, suite in enumerate(retention.suites):
        key = f"retention.suites.{i}"
        if suite.dataset.name in names:
            raise ConfigError(f"config key '{key}.dataset.name': '{suite.dataset.name}' names two suites")
        names.add(suite.dataset.name)
        if not suite.dataset.test_split:
            raise ConfigError(f"config key '{key}.dataset.test_split': a suite is scored on its test split; set it")
        if suite.max_samples is not None and suite.max_samples < 1:
            raise ConfigError(f"config key '{key}.max_samples' must be >= 1")
        if suite.kind == "multiple_choice" and not suite.dataset.options_column:
            raise ConfigError(f"config key '{key}.dataset.options_column': a multiple_choice suite needs the column "
                              "holding its options")
        if suite.kind != "probes" and not (suite.dataset.answers_column or suite.dataset.text_column):
            raise ConfigError(f"config key '{key}.dataset.text_column' is empty: a {suite.kind} suite needs answers "
                              "(only probes go without)")
        if suite.kind == "retrieval" and suite.max_candidates < 2:
            raise ConfigError(f"config key '{key}.max_candidates' must be >= 2 (images ranked against each other)")


def parse_overrides(args: list[str]) -> list[tuple[str, Any]]:
    """``['--train.learning_rate', '1e-4', '--a.b=c']`` -> ``[('train.learning_rate', '1e-4'), ...]``.

    Values are read as YAML scalars or flow collections (``true``, ``3``, ``[q_proj, v_proj]``).
    """
    pairs, i = [], 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ConfigError(f"expected a --section.key override, got '{arg}'")
        if "=" in arg:
            key, raw = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args):
                raise ConfigError(f"override '{arg}' has no value")
            key, raw = arg[2:], args[i + 1]
            i += 2
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        pairs.append((key.replace("-", "_"), value))
    return pairs


def set_dotted(data: dict, key: str, value: Any) -> None:
    """Set ``a.b.0.c`` in nested dicts/lists, creating mappings on the way; lists must exist."""
    parts = key.split(".")
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        here = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            node = _list_item(node, part, here)
            continue
        if node.get(part) is None:
            if part == "datasets":
                # Overriding a dataset field without a YAML file: start from one default dataset.
                node[part] = [{}]
            else:
                node[part] = {}
        node = node[part]
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"override '{key}': '{here}' is a value, not a section")
    last = parts[-1]
    if isinstance(node, list):
        index = _index(node, last, key)
        node[index] = value
    else:
        node[last] = value


def _list_item(node: list, part: str, here: str) -> Any:
    index = _index(node, part, here)
    if node[index] is None:
        node[index] = {}
    return node[index]


def _index(node: list, part: str, key: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"override '{key}': '{part}' is not an index of a list of {len(node)}")
    return int(part)


def config_yaml(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True)


def save_config(config: Config, path: str | Path) -> None:
    """Write ``config.yaml`` through a temporary file and a rename: every later command reads it,
    so a kill must not leave half of it."""
    write_text_atomic(path, config_yaml(config))


# --------------------------------------------------------------------------------------------
# Validation: every rule on values and their combinations, in one place, so that
# ``docvlm config check`` is true and every command stops before any work starts.


def validate(config: Config) -> None:
    """Raise ``ConfigError`` naming the first key whose value (alone or with others) cannot work."""
    problems = [*_run_name_problems(config.run_name), *_model_problems(config.model), *_tuning_problems(config.tuning),
                *_data_problems(config.data), *_train_problems(config), *_generation_problems(config.generation),
                *_evaluate_problems(config.evaluate)]
    if problems:
        key, message = problems[0]
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        raise ConfigError(f"config key '{key}': {message}{more}")
    _validate_roles_seams_retention(config)


HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
"""A Hugging Face repo id: ``name`` or ``owner/name`` (letters, digits, ``._-``)."""


def _run_name_problems(name: str) -> list[tuple[str, str]]:
    """The run folder is ``output_root/run_name``: a name with a path in it (``../x``, ``a/b``) would
    put the run outside ``output_root`` or in a folder the other commands do not look in."""
    if not name.strip() or name in (".", "..") or "/" in name or "\\" in name:
        return [("run_name", f"must be a folder name (no '/', not '.' or '..'), got '{name}'; "
                             "output_root says where runs go")]
    return []


def _model_problems(model: ModelConfig) -> list[tuple[str, str]]:
    path = model.name_or_path
    if not path.strip():
        return [("model.name_or_path", "is empty (a hub id such as Qwen/Qwen2-VL-2B-Instruct, or a folder)")]
    if Path(path).is_dir():
        return []
    first = Path(path).parts[0]
    # "runs/x" is a hub id in form, but when ./runs exists the user means the local folder.
    looks_local = path.startswith(("/", ".", "~")) or "\\" in path or Path(first).is_dir()
    if looks_local or not HUB_ID.match(path) or ".." in path or "--" in path:
        return [("model.name_or_path", f"'{path}' is neither an existing folder nor a hub id (owner/name)")]
    return []


def _tuning_problems(tuning: TuningConfig) -> list[tuple[str, str]]:
    lora, problems = tuning.lora, []
    if tuning.method in ("lora", "qlora"):
        if lora.r < 1:
            problems.append(("tuning.lora.r", f"must be >= 1, got {lora.r}"))
        if lora.alpha <= 0:
            problems.append(("tuning.lora.alpha", f"must be > 0, got {lora.alpha}"))
        if not 0 <= lora.dropout < 1:
            problems.append(("tuning.lora.dropout", f"must be in [0, 1), got {lora.dropout}"))
    if tuning.freeze_vision and tuning.freeze_projector and tuning.freeze_language:
        problems.append(("tuning.freeze_language", "every component is frozen: nothing would be trained"))
    if tuning.freeze_parameters is not None:
        if tuning.method != "full":
            problems.append(("tuning.freeze_parameters", f"applies to method full only (method is "
                             f"'{tuning.method}': LoRA already keeps every base weight fixed)"))
        try:
            re.compile(tuning.freeze_parameters)
        except re.error as error:
            problems.append(("tuning.freeze_parameters", f"is not a valid regex: {error}"))
    return problems


def _data_problems(data: DataConfig) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if not data.datasets:
        return [("data.datasets", "is empty: give at least one dataset")]
    names = [d.name for d in data.datasets]
    for index, dataset in enumerate(data.datasets):
        problems += _dataset_problems(dataset, f"data.datasets.{index}")
        if names.count(dataset.name) > 1:
            problems.append((f"data.datasets.{index}.name", f"'{dataset.name}' is used by two datasets "
                                                            "(names label files and tables)"))
    positive = {"max_length": data.max_length, "mixture_size": data.mixture_size,
                "warn_visual_tokens": data.warn_visual_tokens, "max_target_length": data.max_target_length,
                "min_image_side": data.min_image_side}
    problems += [(f"data.{key}", f"must be >= 1, got {value}") for key, value in positive.items()
                 if value is not None and value < 1]
    if data.max_aspect_ratio < 1:
        problems.append(("data.max_aspect_ratio", f"must be >= 1, got {data.max_aspect_ratio}"))
    weights = [d.weight for d in data.datasets]
    if data.mixture == "weighted" and (any(w < 0 for w in weights) or sum(weights) <= 0):
        problems.append(("data.datasets.N.weight", f"a weighted mixture needs weights >= 0, not all 0; got {weights}"))
    return problems


def _dataset_problems(dataset: DatasetConfig, key: str) -> list[tuple[str, str]]:
    problems = []
    if dataset.weight < 0:
        problems.append((f"{key}.weight", f"must be >= 0, got {dataset.weight}"))
    for name in ("min_pixels", "max_pixels"):
        value = getattr(dataset, name)
        if value is not None and value < 1:
            problems.append((f"{key}.{name}", f"must be >= 1, got {value}"))
    if dataset.min_pixels and dataset.max_pixels and dataset.min_pixels > dataset.max_pixels:
        problems.append((f"{key}.min_pixels", f"{dataset.min_pixels} is above max_pixels ({dataset.max_pixels})"))
    if dataset.line_padding < 0:
        problems.append((f"{key}.line_padding", f"must be >= 0, got {dataset.line_padding}"))
    ratios = dataset.split_ratios
    if ratios is not None and (len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0):
        problems.append((f"{key}.split_ratios", f"must be three non-negative numbers [train, validation, test], "
                                                f"got {ratios}"))
    for role in ("train", "eval", "test"):
        select = getattr(dataset, f"{role}_select")
        if select and not re.fullmatch(r"\s*\d*\s*:\s*\d*\s*|\s*\d+\s*", select):
            problems.append((f"{key}.{role}_select", f"'{select}' is not a row range like '0:1000', ':100' or '100'"))
        elif select and ":" in select and all(p.strip() for p in select.split(":")) and \
                int(select.split(":")[0]) > int(select.split(":")[1]):
            problems.append((f"{key}.{role}_select", f"'{select}' ends before it starts"))
    return problems


def _train_problems(config: Config) -> list[tuple[str, str]]:
    t, problems = config.train, []
    if not t.learning_rate > 0:
        problems.append(("train.learning_rate", f"must be > 0, got {t.learning_rate:g}"))
    at_least_one = {"batch_size": t.batch_size, "gradient_accumulation_steps": t.gradient_accumulation_steps,
                    "logging_steps": t.logging_steps, "save_steps": t.save_steps,
                    "save_total_limit": t.save_total_limit, "eval_max_samples": t.eval_max_samples}
    problems += [(f"train.{key}", f"must be >= 1, got {value}") for key, value in at_least_one.items() if value < 1]
    if t.max_steps == 0 or t.max_steps < -1:
        problems.append(("train.max_steps", f"must be >= 1, or -1 to train num_epochs; got {t.max_steps}"))
    if t.max_steps == -1 and not t.num_epochs > 0:
        problems.append(("train.num_epochs", f"must be > 0 when max_steps is -1, got {t.num_epochs:g}"))
    non_negative = {"weight_decay": t.weight_decay, "warmup": t.warmup, "max_grad_norm": t.max_grad_norm,
                    "eval_steps": t.eval_steps}
    problems += [(f"train.{key}", f"must be >= 0, got {value}") for key, value in non_negative.items() if value < 0]
    evaluating = t.eval_steps > 0 and any(d.eval_split for d in config.data.datasets)
    if evaluating and t.save_steps >= 1 and t.save_steps % t.eval_steps:
        problems.append(("train.save_steps", f"({t.save_steps}) must be a multiple of train.eval_steps "
                                             f"({t.eval_steps}) so that every checkpoint has a score to rank it by"))
    return problems


def _generation_problems(generation: GenerationConfig) -> list[tuple[str, str]]:
    values = {"max_new_tokens": generation.max_new_tokens, "batch_size": generation.batch_size,
              "num_beams": generation.num_beams}
    if generation.max_batch_visual_tokens is not None:
        values["max_batch_visual_tokens"] = generation.max_batch_visual_tokens
    return [(f"generation.{key}", f"must be >= 1, got {value}") for key, value in values.items() if value < 1]


def _evaluate_problems(evaluate: EvalConfig) -> list[tuple[str, str]]:
    problems = []
    if evaluate.max_samples is not None and evaluate.max_samples < 1:
        problems.append(("evaluate.max_samples", f"must be >= 1, got {evaluate.max_samples}"))
    if evaluate.bootstrap_resamples < 0:
        problems.append(("evaluate.bootstrap_resamples", "must be >= 0"))
    if not 0 < evaluate.confidence < 1:
        problems.append(("evaluate.confidence", "must be between 0 and 1"))
    if evaluate.relaxed_tolerance < 0:
        problems.append(("evaluate.relaxed_tolerance", "must be >= 0"))
    if not 0 <= evaluate.anls_threshold <= 1:
        problems.append(("evaluate.anls_threshold", "must be between 0 and 1"))
    problems += [(f"evaluate.{key}", "must be >= 0") for key in ("worst", "top_confusions")
                 if getattr(evaluate, key) < 0]
    return problems


# --------------------------------------------------------------------------------------------
# Field documentation, read from the attribute docstrings above


def field_docs(cls: type = Config, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """``(dotted key, type, default, doc)`` for every leaf field, in declaration order."""
    docs = _attribute_docstrings(cls)
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = _join(prefix, f.name)
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(field_docs(tp, key))
            continue
        if typing.get_origin(tp) is list and dataclasses.is_dataclass(typing.get_args(tp)[0]):
            rows.extend(field_docs(typing.get_args(tp)[0], f"{key}.N"))
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        rows.append((key, _type_name(tp) if not typing.get_origin(tp) is Literal else
                     " | ".join(map(str, typing.get_args(tp))), default, docs.get(f.name, "")))
    return rows


def _attribute_docstrings(cls: type) -> dict[str, str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, following in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            docs[node.target.id] = re.sub(r"\s+", " ", following.value.value).strip()
    return docs
