"""One run per board, and a live run is never touched.

Liveness is the board's run lock (flock held by the run's own process), so a stepped clock
changes nothing and a real SIGKILL frees the board at once. The agent is driven directly (it is
what `ebedge remote` runs on the board) and through real sshd on loopback.
"""
import functools
import io
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from ebedge import agent
from ebedge.run import runlock
from ebedge.errors import EbedgeError
from conftest import wait_for as _wait_for
from support.remote_fixtures import EBEDGE, Lab
from support.remote_sshd import needs_sshd

pytestmark = [pytest.mark.host, pytest.mark.timeout(240)]  # the laptop side
SETTINGS = {"model": "vgg16", "width": 0.0625, "dataset": "synthetic", "batch_size": 64,
            "limit_train": 128, "limit_test": 32, "epochs": 200, "idle_seconds": 0}


wait_for = functools.partial(_wait_for, timeout=120, poll_s=0.2)  # runs here train longer


def running_with_checkpoint(root, run_id):
    """Wait until the run trains and has saved a checkpoint."""
    wait_for(lambda: os.path.exists(os.path.join(root, run_id, "checkpoints", "last.pt")))
    assert agent.run_state(root, run_id)["state"] == "running"


@pytest.fixture
def lab(tmp_path):
    lab = Lab(str(tmp_path / "lab"))
    yield lab
    lab.stop()


@pytest.mark.slow
def test_adopt_and_watch_ignore_a_stepped_clock(tmp_path):
    root = str(tmp_path / "runs")
    started = agent.start(json.dumps(SETTINGS), "live", root=root)
    running_with_checkpoint(root, "live")
    past = time.time() - 3600  # the board's clock stepped: the heartbeat looks an hour old
    os.utime(os.path.join(root, "live", "heartbeat"), (past, past))
    again = agent.start(json.dumps(SETTINGS), "live", root=root, if_exists="adopt")
    assert again["adopted"] is True and again["resumed"] is False
    assert again["pid"] == started["pid"] and again["state"] == "running"
    assert os.path.exists(os.path.join(root, "live", "checkpoints", "last.pt"))
    out = io.StringIO()
    watcher = threading.Thread(target=agent.watch, args=("live", root),
                               kwargs={"out": out, "poll_s": 0.1})
    watcher.start()
    time.sleep(1.0)
    os.utime(os.path.join(root, "live", "heartbeat"), (past, past))
    time.sleep(0.5)
    assert agent.STATE_MARK not in out.getvalue()  # still followed as running
    agent.stop("live", root=root, kill=True)
    watcher.join(30)
    assert '"state": "killed"' in out.getvalue().splitlines()[-1]


@pytest.mark.slow  # two training runs, one killed
def test_one_run_per_board_whoever_starts_it(tmp_path):
    root = str(tmp_path / "runs")
    first = agent.start(json.dumps(SETTINGS), "first", root=root)
    running_with_checkpoint(root, "first")
    with pytest.raises(runlock.RunBusy, match="another run is live .*: first"):
        agent.start(json.dumps(SETTINGS), "second", root=root)
    by_hand = subprocess.run([EBEDGE, "train", "--out", os.path.join(root, "by-hand"), "--epochs",
                              "1", "--width", "0.0625", "--limit-train", "64", "--limit-test",
                              "32", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True, timeout=120)
    assert by_hand.returncode != 0 and "another run is live" in by_hand.stderr
    assert "first" in by_hand.stderr and "Traceback" not in by_hand.stderr
    assert not os.path.exists(os.path.join(root, "by-hand"))
    os.killpg(first["pid"], signal.SIGKILL)  # a real SIGKILL: the kernel frees the board
    wait_for(lambda: runlock.holder(root) is None, timeout=10)
    second = agent.start(json.dumps(dict(SETTINGS, epochs=1)), "second", root=root)
    assert agent.run_state(root, "first")["state"] == "killed"
    wait_for(lambda: agent.run_state(root, "second")["state"] != "running")
    assert agent.run_state(root, "second")["state"] == "complete", second


@pytest.mark.slow
@needs_sshd
def test_reservations_are_not_guessed_from_hostname_and_pid(lab, tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that is dead here, "on this laptop", as another laptop's sweep would be
    agent.lock("other-sweep", lab.root(), laptop=socket.gethostname(), pid=dead.pid)
    suite = tmp_path / "s.toml"
    suite.write_text('name = "one"\n[defaults]\nmodel = "vgg16"\nwidth = 0.0625\nepochs = 1\n'
                     'limit_train = 64\nlimit_test = 32\n[grid]\nmethods = ["dense"]\n')
    sweep = subprocess.run([EBEDGE, "remote", "sweep", str(suite), "--hosts", "board1",
                            "--ssh-config", lab.config, "--remote-ebedge", EBEDGE, "--root",
                            lab.root(), "--results", lab.results], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert sweep.returncode != 0
    assert "reserved by sweep other-sweep" in sweep.stdout
    assert "ebedge remote unlock board1" in sweep.stdout  # a command that exists
    assert agent.lock_holder(lab.root())["owner"] == "other-sweep"
    plain = lab.remote("run", "board1", "--name", "plain", "--epochs", "1")
    assert plain.returncode != 0 and "reserved by sweep other-sweep" in plain.stderr
    unlocked = lab.remote("unlock", "board1")
    assert unlocked.returncode == 0 and "other-sweep" in unlocked.stdout, unlocked.stderr
    assert agent.lock_holder(lab.root()) is None


@pytest.mark.slow
def test_killed_runs_are_resumed_not_deleted(tmp_path):
    root = str(tmp_path / "runs")
    first = agent.start(json.dumps(SETTINGS), "k", root=root)
    running_with_checkpoint(root, "k")
    os.killpg(first["pid"], signal.SIGKILL)
    wait_for(lambda: agent.run_state(root, "k")["state"] == "killed", timeout=10)
    epochs = open(os.path.join(root, "k", "epochs.csv")).read()
    log = open(os.path.join(root, ".agent", "k", "log.txt"), "rb").read()
    again = agent.start(json.dumps(SETTINGS), "k", root=root, if_exists="adopt")
    assert again["resumed"] is True and again["pid"] != first["pid"]
    assert os.path.exists(os.path.join(root, "k", "checkpoints", "last.pt"))
    assert open(os.path.join(root, "k", "epochs.csv")).read().startswith(epochs)
    assert open(os.path.join(root, ".agent", "k", "log.txt"), "rb").read().startswith(log)
    assert "--resume" in json.load(open(os.path.join(root, ".agent", "k", "pid.json")))["argv"]
    agent.stop("k", root=root, kill=True)


@pytest.mark.slow
@needs_sshd
def test_remote_stop_kill_ends_a_hung_run(lab, tmp_path):
    hung = tmp_path / "hung-python"  # a run that ignores SIGTERM (stuck in a driver, say)
    hung.write_text("#!/bin/sh\ntrap '' TERM\nsleep 300\n")
    os.chmod(str(hung), 0o755)
    agent.start(json.dumps(SETTINGS), "hung", root=lab.root(), python=str(hung))
    assert agent.run_state(lab.root(), "hung")["state"] == "running"
    term = lab.remote("stop", "board1", "hung")
    assert term.returncode == 0 and "SIGTERM" in term.stdout
    time.sleep(1.0)
    assert agent.run_state(lab.root(), "hung")["state"] == "running"  # SIGTERM did nothing
    killed = lab.remote("stop", "board1", "hung", "--kill", "--grace", "1")
    assert killed.returncode == 0 and "SIGTERM+SIGKILL" in killed.stdout, killed.stderr
    assert runlock.holder(lab.root()) is None
    assert agent.run_state(lab.root(), "hung")["state"] != "running"
    with pytest.raises(EbedgeError, match="not running"):
        agent.stop("hung", root=lab.root())
