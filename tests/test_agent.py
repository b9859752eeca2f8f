"""The board-side agent on its own: detached start, state, clean stop, the sweep lock."""
import io
import json
import os
import time

import pytest

from ebedge import agent
from ebedge.errors import EbedgeError

SETTINGS = {"model": "vgg16", "width": 0.0625, "dataset": "synthetic", "batch_size": 64,
            "limit_train": 128, "limit_test": 32, "epochs": 50, "idle_seconds": 0}


def wait_for(predicate, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("timed out")


def test_detached_run_stops_cleanly_as_interrupted(tmp_path):
    root = str(tmp_path / "runs")
    started = agent.start(json.dumps(SETTINGS), "r1", root=root)
    assert started["pid"] and started["out"] == os.path.join(root, "r1")
    with pytest.raises(EbedgeError, match="already exists"):
        agent.start(json.dumps(SETTINGS), "r1", root=root)
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
    # adopting a dead run starts it again from scratch
    again = agent.start(json.dumps(dict(SETTINGS, epochs=1)), "r1", root=root, if_exists="adopt")
    assert again["adopted"] is False
    agent.stop("r1", root=root)
    wait_for(lambda: agent.run_state(root, "r1")["pid"] is None)


def test_bad_settings_fail_with_the_reason(tmp_path):
    root = str(tmp_path / "runs")
    agent.start(json.dumps({"model": "nope"}), "bad", root=root)
    state = wait_for(lambda: (lambda s: s if s["pid"] is None else None)(
        agent.run_state(root, "bad")))
    assert state["state"] == "failed" and "nope" in state["error"]


def test_lock_refuses_other_owners_until_stale(tmp_path):
    root = str(tmp_path)
    agent.lock("sweep-a", root, host="laptop", pid=1)
    agent.lock("sweep-a", root)  # its own lock: refreshed
    with pytest.raises(EbedgeError, match="locked by sweep-a"):
        agent.lock("sweep-b", root)
    with pytest.raises(EbedgeError):
        agent.lock("sweep-b", root, steal_stale_s=3600)
    taken = agent.lock("sweep-b", root, steal_stale_s=0)
    assert taken["stolen_from"]["owner"] == "sweep-a"
    with pytest.raises(EbedgeError):
        agent.unlock("sweep-a", root)
    assert agent.unlock("sweep-b", root) is True
    assert agent.lock_holder(root) is None


def test_clock_answers_each_line_with_shifted_wall_time(monkeypatch):
    monkeypatch.setenv("EBEDGE_CLOCK_SHIFT_S", "100")
    stdin, stdout = io.BytesIO(b"a\nb\n"), io.BytesIO()
    before = time.time()
    agent.clock_loop(stdin, stdout)
    answers = [float(x) for x in stdout.getvalue().split()]
    assert len(answers) == 2 and all(before + 99 < a < time.time() + 101 for a in answers)
