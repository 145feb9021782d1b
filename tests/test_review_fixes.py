"""Defects found by a review of the merged training, predict and sweep paths (each failed before)."""

from __future__ import annotations

import pickle

import pytest
from PIL import Image

from docvlm.cli import main
from docvlm.data.schema import PixelBudget, Record, Sample
from docvlm.data.skips import Skipped
from docvlm.data.sources import SampleSet, SubstitutingSampleSet
from docvlm.train.evaluation import EvalPart, loss_set


def _record(i: int) -> Record:
    return Record(id=f"s{i}", target="x", image_ref="unused.png", prompt="p", dataset="d", task="transcription",
                  budget=PixelBudget(784, 6272), where=f"row {i}")


def test_eval_loss_set_falls_back_to_replay_parts_when_no_task_part_has_an_eval_split():
    replay = SampleSet([_record(0)])
    # Without a loss set the Trainer refuses eval_strategy=steps with a raw ValueError.
    assert loss_set([EvalPart("general", "vqa", "replay", replay)]) is replay
    task = SampleSet([_record(1)])
    assert loss_set([EvalPart("general", "vqa", "replay", replay), EvalPart("lines", "transcription", "task", task)]) \
        is task


class _WorkerView:
    """Stands in for WorkerSafeSamples inside a data-loader worker: index 0 was skipped there."""

    records = [_record(0), _record(1)]

    def __len__(self):
        return 2

    def __getitem__(self, index):
        if index == 0:
            return Skipped("train:d/train", "unreadable_image", "row 0: cannot be read", ("d", "s0", "row 0"))
        return Sample(self.records[1], Image.new("RGB", (8, 8)))


def test_substitution_replaces_a_worker_skip_marker_and_hands_it_on():
    sample = SubstitutingSampleSet(_WorkerView())[0]
    assert isinstance(sample, Sample) and sample.record.id == "s1"
    assert [marker.reason for marker in sample.skips] == ["unreadable_image"]


def test_substituting_sample_set_pickles_for_spawned_workers():
    view = pickle.loads(pickle.dumps(SubstitutingSampleSet(SampleSet([_record(0)]))))
    assert len(view) == 1 and view.records[0].id == "s0"


def test_collator_counts_markers_carried_by_a_replacement(tiny_models):
    from docvlm.config import ModelConfig
    from docvlm.data.skips import SKIPS_KEY
    from docvlm.models.loading import load_base
    from docvlm.models.prompting import ChatFormat, TrainingCollator

    loaded = load_base(ModelConfig(name_or_path=str(tiny_models["qwen2_vl"]), dtype="fp32"))
    sample = SubstitutingSampleSet(_WorkerView())[0]
    batch = TrainingCollator(ChatFormat(loaded.processor, loaded.spec))([sample])
    assert batch[SKIPS_KEY] == [("train:d/train", "unreadable_image", "row 0: cannot be read", ("d", "s0", "row 0"))]


def test_evaluate_predictions_refuses_a_price_it_cannot_use(tmp_path, capsys):
    rows = tmp_path / "p.jsonl"
    rows.write_text('{"id": "a", "prediction": "x", "reference": "x"}\n', encoding="utf-8")
    assert main(["evaluate", "--predictions", str(rows), "--metric", "cer", "--price-per-hour", "2"]) == 2
    assert "--price-per-hour goes with a run" in capsys.readouterr().err


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
