"""Methodology guards: a power mode that changes mid-run is refused, or flagged with --allow."""
import json
import os
import stat
import threading
import time

import pytest

from ebedge.measure import board
from ebedge.errors import EbedgeError
from ebedge.run.runner import execute

MODE = "NV Power Mode: %s\n%d\n"


@pytest.fixture
def nvpmodel(tmp_path, monkeypatch):
    """A fake `nvpmodel -q` on PATH that prints whatever mode file says."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mode_file = tmp_path / "mode"
    mode_file.write_text(MODE % ("MAXN", 0))
    script = bin_dir / "nvpmodel"
    script.write_text("#!/bin/sh\ncat '%s'\n" % mode_file)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))
    monkeypatch.setattr(board, "COMMAND_INTERVAL_S", 0.0)  # no status file here: ask every mark
    return mode_file


def _switch_after_first_epoch(out, mode_file):
    def watch():
        path = os.path.join(out, "epochs.csv")
        deadline = time.time() + 120
        while time.time() < deadline:
            if os.path.exists(path) and len(open(path).read().splitlines()) >= 2:
                tmp = mode_file.with_name("mode.new")  # atomic, as nvpmodel's own status file
                tmp.write_text(MODE % ("MAXQ", 1))
                os.replace(str(tmp), str(mode_file))
                return
            time.sleep(0.02)
    thread = threading.Thread(target=watch)
    thread.daemon = True
    thread.start()
    return thread


SETTINGS = {"method": "dense", "model": "vgg11", "width": 0.0625, "limit_train": 256,
            "limit_test": 32, "batch_size": 32, "epochs": 4, "device": "cpu"}


def test_power_mode_change_mid_run_is_refused(tmp_path, nvpmodel):
    out = str(tmp_path / "run")
    _switch_after_first_epoch(out, nvpmodel)
    with pytest.raises(EbedgeError, match="power mode or clocks changed mid-run.*MAXN.*MAXQ"):
        execute(SETTINGS, out=out, quiet=True)
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["status"].startswith("failed: power mode or clocks changed")
    assert summary["power_mode"] == "MAXN (0)"


def test_allow_records_the_change_and_finishes(tmp_path, nvpmodel):
    out = str(tmp_path / "run")
    _switch_after_first_epoch(out, nvpmodel)
    summary = execute(dict(SETTINGS, allow=True), out=out, quiet=True)
    assert summary["status"] == "complete"
    changed = [f for f in summary["flags"] if "power mode or clocks changed" in f]
    assert len(changed) == 1 and "MAXQ" in changed[0]
