"""What metrics files say about the options used, checked against the code that used them."""

from __future__ import annotations

from docvlm.config import EvalConfig, TextMetricConfig
from docvlm.evaluate.scoring import metric_options


def test_metrics_file_states_the_wer_unit_that_was_used():
    # The CER/WER options block said "whitespace-separated word" even
    # when WER was computed on dinglehopper's UAX #29 words.
    plain = metric_options(EvalConfig(), ("wer",))["cer_wer"]
    assert plain["unit_wer"] == "whitespace-separated word"
    ding = metric_options(EvalConfig(text=TextMetricConfig(words="dinglehopper")), ("wer",))["cer_wer"]
    assert "whitespace" not in ding["unit_wer"] and "UAX #29" in ding["unit_wer"]


def test_retention_suite_options_state_choice_reading_and_caption_tokenizer():
    # retention.json recorded neither how a generated multiple-choice answer was read
    # (choice_parser) nor the caption tokenizer and VQA conventions its scores depend on.
    from docvlm.config import RetentionSuiteConfig
    from docvlm.retention.suites import suite_options

    generate = RetentionSuiteConfig(kind="multiple_choice", choice_mode="generate", choice_parser="first_letter")
    assert suite_options(generate, EvalConfig()) == {"choice_mode": "generate", "choice_parser": "first_letter"}
    assert suite_options(RetentionSuiteConfig(kind="multiple_choice"), EvalConfig()) == \
        {"choice_mode": "likelihood"}
    caption = suite_options(RetentionSuiteConfig(kind="caption"), EvalConfig(caption_tokenizer="simple"))
    assert caption["caption"]["tokenizer"].startswith("simple")
    vqa = suite_options(RetentionSuiteConfig(kind="vqa"), EvalConfig(vqa_normalization="lmms-eval"))
    assert vqa["vqa_accuracy"]["normalization"] == "lmms-eval"
