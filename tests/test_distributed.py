"""Two processes (torchrun, gloo on CPU) train exactly like one process with the same global batch."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from docvlm.config import save_config
from docvlm.train.trainer import run_training

from conftest import make_config

SRC = Path(__file__).resolve().parents[1] / "src"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lines_with_a_broken_image(lines_dir, tmp_path):
    out = tmp_path / "lines"
    shutil.copytree(lines_dir, out)
    row = json.loads((out / "train.jsonl").read_text().splitlines()[5])
    image = out / row["image"]
    # A truncated PNG passes indexing and fails when decoded: a run-time skip, made by whichever
    # process reads it (with this seed, the second one, so only summing brings it to the report).
    image.write_bytes(image.read_bytes()[:200])
    return out


def _config(tmp_path, model, data, name: str, batch: int):
    # One epoch of 24 lines at a global batch of 4 is 6 steps: every line (the broken one too) is
    # read exactly once, by one of the processes.
    return make_config(tmp_path, model, data, "--run_name", name, "--tuning.method", "full",
                       "--train.batch_size", str(batch), "--train.max_steps", "6", "--train.eval_steps", "6",
                       "--train.save_steps", "6", "--data.on_bad_sample", "skip")


def _logged(run_dir: Path) -> list[dict]:
    entries = [json.loads(line) for line in (run_dir / "logs" / "train_log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in e.items() if k.startswith(("loss", "eval_cer", "eval_lines")) or k == "step"}
            for e in entries if "loss" in e or "eval_cer" in e]


def test_two_processes_equal_one_with_the_same_global_batch(tiny_models, lines_with_a_broken_image, tmp_path):
    model = tiny_models["qwen2_vl"]
    single = _config(tmp_path, model, lines_with_a_broken_image, "single", batch=4)
    run_training(single)

    ddp = _config(tmp_path, model, lines_with_a_broken_image, "ddp", batch=2)
    config_file = tmp_path / "ddp.yaml"
    save_config(ddp, config_file)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
                           "-m", "docvlm.cli", "train", str(config_file)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    # The same loss at every step, the same evaluation CER (generation split over both processes
    # and gathered), each step logged once.
    one, two = _logged(single.run_dir), _logged(ddp.run_dir)
    assert [e["step"] for e in two] == [e["step"] for e in one] == [1, 2, 3, 4, 5, 6, 6]
    for a, b in zip(one, two):
        assert a.keys() == b.keys()
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), (a["step"], key)

    # The same final weights.
    weights = [load_file(str(run / "model" / "model.safetensors")) for run in (single.run_dir, ddp.run_dir)]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        torch.testing.assert_close(weights[1][name], weights[0][name], rtol=1e-4, atol=2e-6, msg=name)

    # The run folder is written by one process: one TensorBoard file, one summary, and the skip
    # that happened in whichever process read the broken line counted once.
    assert len(list((ddp.run_dir / "logs" / "tensorboard").iterdir())) == 1
    assert {p.name for p in ddp.run_dir.iterdir()} >= {"config.yaml", "env.json", "train_summary.json",
                                                         "data_report.json", "model", "checkpoints", "logs"}
    reports = [json.loads((run / "data_report.json").read_text()) for run in (single.run_dir, ddp.run_dir)]
    assert reports[0]["train:lines/train"]["skipped_total"] == 1
    assert reports[1] == reports[0]
    summaries = [json.loads((run / "train_summary.json").read_text()) for run in (single.run_dir, ddp.run_dir)]
    assert summaries[1]["best_eval_cer"] == pytest.approx(summaries[0]["best_eval_cer"])
