"""A run killed mid-epoch keeps what it wrote and resumes to the same epoch count."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

# 12 epochs of ~0.3 s each: a signal sent after the first still finds seconds of work to stop
ARGS = ["--model", "vgg11", "--width", "0.125", "--limit-train", "1536", "--limit-test", "64",
        "--batch-size", "32", "--device", "cpu", "--epochs", "12", "--quiet", "--keep-searching"]


def _default_sigint():
    """A shell's background job starts with SIGINT ignored, and Python then leaves it ignored;
    the run under test must get SIGINT as a terminal's Ctrl-C gives it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(out, method="eb"):
    return subprocess.Popen([sys.executable, "-m", "ebedge.cli", "train", "--method", method,
                             "--out", out] + ARGS, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, preexec_fn=_default_sigint)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _wait_for_epochs(out, n, proc, timeout=240):
    """Block until epochs.csv holds n rows, then return while the next epoch is under way."""
    path = os.path.join(out, "epochs.csv")
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail("run ended early: %s" % proc.stdout.read().decode())
        if os.path.exists(path) and len(_rows(path)) >= n:
            time.sleep(0.3)  # into the next epoch
            return
        time.sleep(0.1)
    pytest.fail("no epoch finished in time")


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_finishes_the_schedule(tmp_path):
    out = str(tmp_path / "run")
    proc = _start(out)
    _wait_for_epochs(out, 1, proc)
    proc.kill()
    proc.wait()
    with open(os.path.join(out, "phases.csv")) as f:
        phases_before = f.read()
    epochs_before = _rows(os.path.join(out, "epochs.csv"))
    assert json.load(open(os.path.join(out, "summary.json")))["status"] == "running"

    done = subprocess.run([sys.executable, "-m", "ebedge.cli", "train", "--resume", out],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert done.returncode == 0, done.stdout.decode()
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["status"] == "complete"
    with open(os.path.join(out, "phases.csv")) as f:
        assert f.read().startswith(phases_before)  # nothing already written was lost
    epochs = _rows(os.path.join(out, "epochs.csv"))
    assert epochs[:len(epochs_before)] == epochs_before
    trained = [(r["phase"], int(r["epoch"])) for r in epochs]
    assert len(trained) == len(set(trained))  # no epoch trained twice
    # --keep-searching: the search runs the whole schedule, then the retrain has none left
    assert sorted(e for p, e in trained if p == "search") == list(range(12))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_leave_status_interrupted(tmp_path, sig):
    out = str(tmp_path / "run")
    proc = _start(out, method="dense")
    _wait_for_epochs(out, 1, proc)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == (130 if sig == signal.SIGINT else 128 + sig)
    said = proc.stdout.read().decode()
    assert "Traceback" not in said and said.rstrip().endswith("interrupted" if sig ==
                                                              signal.SIGINT else
                                                              "terminated by signal %d" % sig)
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["status"] == "interrupted"
    phases = _rows(os.path.join(out, "phases.csv"))
    assert all(float(r["t_end_mono"]) >= float(r["t_start_mono"]) for r in phases)
    assert os.path.exists(os.path.join(out, "energy.csv"))
    # and it resumes to completion
    done = subprocess.run([sys.executable, "-m", "ebedge.cli", "train", "--resume", out],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert done.returncode == 0, done.stdout.decode()
    epochs = _rows(os.path.join(out, "epochs.csv"))
    assert sorted(int(r["epoch"]) for r in epochs if r["phase"] == "search") == list(range(12))
