"""Shared fixtures: tiny models and synthetic lines, built once per test session, never downloaded."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from docvlm.config import Config, load_config  # noqa: E402
from docvlm.data.synthetic import LineStyle, write_synthetic_lines  # noqa: E402
from docvlm.models.tiny import BUILDERS, TinySize, build_tiny_model  # noqa: E402

FAMILIES = sorted(BUILDERS)
SMALL = TinySize(layers=2, hidden=64, heads=4, kv_heads=2, vision_layers=1, vision_hidden=32, vision_heads=2)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict:
    """family -> folder of a saved tiny random-weight model."""
    root = tmp_path_factory.mktemp("models")
    return {family: build_tiny_model(family, root / family, SMALL, seed=0) for family in FAMILIES}


@pytest.fixture(scope="session")
def lines_dir(tmp_path_factory):
    """A synthetic line dataset: train/validation/test JSONL manifests with PNG lines."""
    root = tmp_path_factory.mktemp("lines")
    return write_synthetic_lines(root, {"train": 24, "validation": 6, "test": 6}, LineStyle(width=112), seed=1)


# What a run of each family needs beyond the shared test config: families without a pixel-area
# budget drop min/max_pixels, and Florence-2 is prompted with a task token.
_NO_BUDGET = ("--data.datasets.0.min_pixels", "null", "--data.datasets.0.max_pixels", "null")
FAMILY_ARGS: dict[str, tuple[str, ...]] = {
    "idefics2": _NO_BUDGET,
    "idefics3": _NO_BUDGET,
    "smolvlm": _NO_BUDGET,
    "florence2": _NO_BUDGET + ("--data.datasets.0.task_token", "<OCR>", "--data.datasets.0.prompt", ""),
}


def family_args(family: str) -> tuple[str, ...]:
    return FAMILY_ARGS.get(family, ())


def make_config(tmp_path, model_dir, data_dir, *overrides: str) -> Config:
    """A small, fast config for a tiny model; ``overrides`` use the CLI syntax."""
    return load_config(None, [
        "--output_root", str(tmp_path / "runs"), "--run_name", "test",
        "--model.name_or_path", str(model_dir), "--model.dtype", "fp32",
        "--data.datasets.0.name", "lines", "--data.datasets.0.source", str(data_dir),
        "--data.datasets.0.max_pixels", "3136", "--data.datasets.0.min_pixels", "784",
        "--train.batch_size", "4", "--train.gradient_accumulation_steps", "1", "--train.max_steps", "4",
        "--train.learning_rate", "1e-3", "--train.warmup", "0", "--train.logging_steps", "1",
        "--train.eval_steps", "2", "--train.save_steps", "2", "--train.eval_max_samples", "4",
        "--train.report_to", "[tensorboard]",
        "--generation.max_new_tokens", "6", "--generation.batch_size", "3",
        *overrides,
    ])


def one_error_line(capsys) -> str:
    """The one ``error:`` line a CLI command printed to stderr (and no traceback)."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]
