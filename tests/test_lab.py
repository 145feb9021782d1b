"""A reduced ``docvlm lab``: the files it writes and the orderings a few training steps can show."""

import json

import pytest

from docvlm.retention.lab import run_lab

pytestmark = pytest.mark.slow

REQUIRED = {"strategy", "task_cer", "general_score", "retention", "task_gain_fraction", "trainable_parameters",
            "seconds"}


def test_quick_lab_writes_table_json_and_plot(tmp_path, capsys):
    rows = run_lab(tmp_path, quick=True, only=["full", "scope projector", "kl"])
    out = capsys.readouterr().out
    saved = json.loads((tmp_path / "lab.json").read_text())
    assert [r["strategy"] for r in saved] == ["general model (base)", "full", "scope projector", "kl", "wise-ft a=0.5"]
    assert all(REQUIRED <= set(r) for r in saved)
    assert (tmp_path / "lab.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    by_name = {r["strategy"]: r for r in rows}
    # A frozen language model (projector scope) changes no language weight; full tuning does.
    assert by_name["scope projector"]["language_weights_changed"] is False
    assert by_name["full"]["language_weights_changed"] is True
    assert by_name["scope projector"]["trainable_parameters"] < by_name["full"]["trainable_parameters"]
    # The KL term keeps the tuned model's answers closer to the general model's.
    assert by_name["kl"]["drift_kl"] < by_name["full"]["drift_kl"]
    # Halfway interpolation drifts less than the fully tuned weights it starts from.
    assert by_name["wise-ft a=0.5"]["drift_kl"] < by_name["full"]["drift_kl"]
    assert "strategy" in out and "task CER" in out
