"""The board-side agent on its own: detached start, state, clean stop, the sweep reservation."""
import io
import json
import os
import time

import pytest

from ebedge import agent
from ebedge.errors import EbedgeError
from conftest import wait_for

SETTINGS = {"model": "vgg16", "width": 0.0625, "dataset": "synthetic", "batch_size": 64,
            "limit_train": 128, "limit_test": 32, "epochs": 50, "idle_seconds": 0}


@pytest.mark.slow
def test_detached_run_stops_cleanly_as_interrupted(tmp_path):
    root = str(tmp_path / "runs")
    started = agent.start(json.dumps(SETTINGS), "r1", root=root)
    assert started["pid"] and started["out"] == os.path.join(root, "r1")
    with pytest.raises(EbedgeError, match="another run is live .*: r1"):
        agent.start(json.dumps(SETTINGS), "r2", root=root)
    wait_for(lambda: os.path.exists(os.path.join(root, "r1", "heartbeat")))
    assert agent.run_state(root, "r1")["state"] == "running"
    assert [s["run_id"] for s in agent.list_runs(root)] == ["r1"]
    agent.stop("r1", root=root)
    state = wait_for(lambda: (lambda s: s if s["pid"] is None else None)(
        agent.run_state(root, "r1")))
    assert state["state"] == "interrupted"
    out = io.StringIO()
    final = agent.watch("r1", root, out=out, poll_s=0.1)
    assert final["state"] == "interrupted"
    assert out.getvalue().splitlines()[-1].startswith(agent.STATE_MARK)
    with pytest.raises(EbedgeError, match="already exists"):
        agent.start(json.dumps(SETTINGS), "r1", root=root)
    # adopting an interrupted run resumes it: nothing it wrote is deleted
    epochs_before = open(os.path.join(root, "r1", "epochs.csv")).read()
    with pytest.raises(EbedgeError, match="other settings"):
        agent.start(json.dumps(dict(SETTINGS, epochs=3)), "r1", root=root, if_exists="adopt")
    again = agent.start(json.dumps(SETTINGS), "r1", root=root, if_exists="adopt")
    assert again["resumed"] is True
    assert open(os.path.join(root, "r1", "epochs.csv")).read().startswith(epochs_before)
    wait_for(lambda: agent.run_state(root, "r1")["status"] == "running")
    stopped = agent.stop("r1", root=root, kill=True)  # SIGKILL: no chance to write a status
    assert stopped["signalled"] == "SIGKILL" and stopped["state"] == "killed"


def test_bad_settings_fail_with_the_reason(tmp_path):
    root = str(tmp_path / "runs")
    agent.start(json.dumps({"model": "nope"}), "bad", root=root)
    state = wait_for(lambda: (lambda s: s if s["pid"] is None else None)(
        agent.run_state(root, "bad")))
    assert state["state"] == "failed" and "nope" in state["error"]


def test_reservation_refuses_other_sweeps_until_released(tmp_path):
    root = str(tmp_path)
    first = agent.lock("sweep-a", root, laptop="laptop", pid=1)
    again = agent.lock("sweep-a", root)  # its own reservation: a resumed sweep takes it back
    assert again["taken_over_from"] == first["session"] != again["session"]
    with pytest.raises(EbedgeError, match="reserved by sweep sweep-a.*ebedge remote unlock"):
        agent.lock("sweep-b", root)
    with pytest.raises(EbedgeError, match="reserved by sweep sweep-a"):
        agent.start(json.dumps(SETTINGS), "r2", root=root)  # a plain run respects it too
    with pytest.raises(EbedgeError):
        agent.unlock("sweep-b", root)
    assert agent.unlock(None, root, force=True)["owner"] == "sweep-a"
    assert agent.lock_holder(root) is None
    assert agent.lock("sweep-b", root)["owner"] == "sweep-b"


def test_clock_answers_each_line_with_shifted_wall_time(monkeypatch):
    monkeypatch.setenv("EBEDGE_CLOCK_SHIFT_S", "100")
    stdin, stdout = io.BytesIO(b"a\nb\n"), io.BytesIO()
    before = time.time()
    agent.clock_loop(stdin, stdout)
    answers = [float(x) for x in stdout.getvalue().split()]
    assert len(answers) == 2 and all(before + 99 < a < time.time() + 101 for a in answers)
