"""A new user's mistakes and kills, through the CLI as typed: one ``error:`` line (exit 2) naming the
file, sample and field, or a counted skip; no half-written output that looks complete."""

from __future__ import annotations

import json
import shutil

import pytest

from docvlm.cli import main


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


# --------------------------------------------------------------------------------------------
# Config files


def test_malformed_yaml_is_one_line_with_file_line_and_column(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("train:\n  learning_rate: [1,\n  batch_size: 2\n")
    assert main(["config", "check", str(config)]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {config}:4:1: not valid YAML (") and "<unicode string>" not in line


def test_config_that_is_not_utf8_is_an_error_not_a_traceback(tmp_path, capsys):
    config = tmp_path / "latin1.yaml"
    config.write_bytes("run_name: ok\nrun_name: caf\u00e9\n".encode("latin-1"))
    assert main(["config", "check", str(config)]) == 2
    assert one_error_line(capsys) == f"error: {config}:2: not UTF-8 text (byte 0xe9 at offset 26); save the file as UTF-8"


def test_config_check_without_a_file_is_refused(capsys):
    assert main(["config", "check"]) == 2
    assert "config check needs a config file" in one_error_line(capsys)
