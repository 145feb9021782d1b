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
