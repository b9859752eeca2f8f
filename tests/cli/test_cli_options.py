"""The command line explains itself: choices, help on every option, validation before torch
loads, the hidden agent group, and measuring by default (`--meter none` opts out)."""
import json
import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

import meters
from ebedge.cli import main

TINY = ["--method", "dense", "--model", "vgg11", "--width", "0.0625", "--limit-train", "64",
        "--limit-test", "32", "--batch-size", "32", "--epochs", "1", "--device", "cpu", "--quiet"]


def _parse_in_fresh_python(args):
    """(exit code, output, torch imported?) of `ebedge ARGS` in a new interpreter."""
    code = ("import json, sys\n"
            "from click.testing import CliRunner\n"
            "from ebedge.cli import main\n"
            "r = CliRunner().invoke(main, json.loads(sys.argv[1]))\n"
            "print(json.dumps([r.exit_code, r.output, 'torch' in sys.modules]))\n")
    out = subprocess.check_output([sys.executable, "-c", code, json.dumps(args)],
                                  universal_newlines=True)
    return json.loads(out.strip().splitlines()[-1])


def test_a_typo_is_refused_before_torch_is_imported(tmp_path):
    code, output, torch_loaded = _parse_in_fresh_python(["train", "--method", "ebb"])
    assert code == 2 and "'ebb' is not one of" in output and not torch_loaded
    code, output, torch_loaded = _parse_in_fresh_python(["train", "--meter", "watsup"])
    assert code == 2 and "watsup" in output and not torch_loaded
    settings = tmp_path / "s.json"
    settings.write_text(json.dumps({"epochs": 0}))
    code, output, torch_loaded = _parse_in_fresh_python(["train", "--settings", str(settings)])
    assert code == 1 and "epochs must be at least 1" in output and not torch_loaded
    assert len(output.strip().splitlines()) == 1
    settings.write_text(json.dumps({"meters": ["none", "model"]}))
    code, output, torch_loaded = _parse_in_fresh_python(["train", "--settings", str(settings)])
    assert code == 1 and "cannot be combined" in output and not torch_loaded


def _commands(command, path):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            for item in _commands(sub, path + [name]):
                yield item


def test_every_option_has_help_and_the_choices_are_the_known_names():
    missing = ["%s %s" % (" ".join(path), p.opts[0]) for path, cmd in _commands(main, ["ebedge"])
               for p in cmd.params if isinstance(p, click.Option) and not p.help]
    assert missing == []
    train = main.commands["train"]
    choices = {p.name: list(p.type.choices) for p in train.params
               if isinstance(p.type, click.Choice)}
    assert set(meters.names()) | {"auto", "none"} == set(choices["meters"])
    assert {"eb", "dense", "sfp"} <= set(choices["method"])
    assert "resnet50" in choices["model"] and "cifar10" in choices["dataset"]


def test_agent_is_hidden_and_remote_run_lists_the_train_options():
    runner = CliRunner()
    top = runner.invoke(main, ["--help"]).output
    assert "remote" in top and "agent" not in top
    assert runner.invoke(main, ["agent", "--help"]).exit_code == 0
    help_text = runner.invoke(main, ["remote", "run", "--help"]).output
    section = help_text.split("Train options")[1]
    for option in ("--method", "--epochs", "--width", "--meter [auto|none"):
        assert option in section, option
    assert "--out" not in section and "--repeats" not in section


def test_energy_is_measured_by_default_and_none_says_so(tmp_path):
    runner = CliRunner()
    auto = str(tmp_path / "auto")
    result = runner.invoke(main, ["train", "--out", auto] + TINY, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.load(open(os.path.join(auto, "summary.json")))
    config = json.load(open(os.path.join(auto, "config.json")))
    best = meters.best_available()
    assert summary["energy"]["meter"] == best == config["meters"][0]["name"]
    assert summary["energy"]["method"] == meters.get(best).method
    off = str(tmp_path / "off")
    result = runner.invoke(main, ["train", "--out", off, "--meter", "none"] + TINY,
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.load(open(os.path.join(off, "summary.json")))
    assert summary["energy"] is None
    assert any(f.startswith("no energy measured") for f in summary["flags"])
    assert os.path.getsize(os.path.join(off, "samples.csv")) < 200  # the header only


def test_meter_interval_auto_is_the_meters_own_choice():
    from ebedge.cli.options import MeterInterval
    assert MeterInterval().convert("auto", None, None) is None  # the driver decides
    assert MeterInterval().convert("0.05", None, None) == 0.05
    with pytest.raises(click.BadParameter):
        MeterInterval().convert("soon", None, None)
    # its bounds are the setting's: refused in one line before anything is written
    # (tests/faults/test_resume_settings.py)
