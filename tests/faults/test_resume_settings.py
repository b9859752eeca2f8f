"""Impossible settings and broken run directories end in one line,
before anything is written."""
import json
import os

import pytest
from click.testing import CliRunner

from ebedge.cli import main

BAD = [("--lr", "nan"), ("--lr", "inf"), ("--lr", "-0.1"), ("--width", "nan"),
       ("--width", "9"), ("--meter-interval", "0"), ("--meter-interval", "-1"),
       ("--epsilon", "0"), ("--epsilon", "1.5"), ("--prune-ratio", "1"),
       ("--prune-ratio", "nan"), ("--sparsity", "inf"), ("--idle-seconds", "nan"),
       ("--epochs", "0"), ("--batch-size", "0")]


def _invoke(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _one_line_error(result):
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("option,value", BAD)
def test_bad_value_is_refused_before_the_run_directory_exists(tmp_path, option, value):
    out = tmp_path / "run"
    line = _one_line_error(_invoke(["train", "--out", str(out), "--quiet", option, value]))
    name = option.lstrip("-").replace("-", "_").replace("prune_ratio", "prune ratio")
    assert name in line
    assert not out.exists()


@pytest.mark.parametrize("settings", [{"momentum": 5}, {"weight_decay": -1e-4},
                                      {"momentum": float("nan")}, {"min_coverage": 1.5},
                                      {"epochs": 2.5}, {"keep_searching": "yes"}])
def test_bad_values_in_a_settings_file_are_refused(tmp_path, settings):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(settings))
    out = tmp_path / "run"
    line = _one_line_error(_invoke(["train", "--settings", str(path), "--out", str(out)]))
    assert list(settings)[0] in line
    assert not out.exists()


def _run_dir(tmp_path, config_text):
    out = tmp_path / "run"
    out.mkdir()
    if config_text is not None:
        (out / "config.json").write_text(config_text)
    return str(out)


@pytest.mark.parametrize("config_text,expected", [
    (json.dumps({"run_id": "run"}), "no settings"),
    (json.dumps({"settings": ["eb"]}), "no settings"),
    (json.dumps([1, 2]), "no settings"),
    ("{not json", "unreadable"),
    ("\xff\xfe garbage", "unreadable"),
    (json.dumps({"settings": {"lr": "nan"}}), "lr must be a finite number"),
    (json.dumps({"settings": {"bogus": 1}}), "unknown setting"),
    (None, "no config.json"),
])
def test_resume_of_a_broken_run_directory_is_one_line(tmp_path, config_text, expected):
    out = _run_dir(tmp_path, config_text)
    before = sorted(os.listdir(out))
    line = _one_line_error(_invoke(["train", "--resume", out]))
    assert expected in line
    assert sorted(os.listdir(out)) == before  # nothing was written


def test_resume_of_a_missing_directory_is_one_line(tmp_path):
    line = _one_line_error(_invoke(["train", "--resume", str(tmp_path / "absent")]))
    assert "nothing to resume" in line
    assert not (tmp_path / "absent").exists()
