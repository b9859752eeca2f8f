"""`ebedge remote sweep` over three loopback boards, one of them broken, killed and resumed."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from support.remote_sshd import LoopbackBoard, keygen, needs_sshd, write_ssh_config

EBEDGE = os.path.join(os.path.dirname(sys.executable), "ebedge")
SUITE = """name = "fleet"
[defaults]
model = "vgg16"
width = 0.0625
dataset = "synthetic"
epochs = 1
batch_size = 64
limit_train = 64
limit_test = 32
[grid]
methods = ["eb", "dense"]
repeats = 2
"""
# board3's ebedge answers everything but cannot start a run
BROKEN = """#!/bin/sh
if [ "$1" = agent ] && [ "$2" = start ]; then echo "broken board: cannot start" >&2; exit 1; fi
exec %s "$@"
"""

pytestmark = [needs_sshd, pytest.mark.slow, pytest.mark.host, pytest.mark.timeout(300)]


@pytest.fixture
def fleet(tmp_path):
    work = str(tmp_path)
    pub = keygen(os.path.join(work, "id"))
    boards = [LoopbackBoard(work, "board%d" % i, pub).start() for i in (1, 2, 3)]
    config = write_ssh_config(os.path.join(work, "ssh_config"), boards, os.path.join(work, "id"),
                              os.path.join(work, "known_hosts"))
    broken = os.path.join(work, "broken-ebedge")
    with open(broken, "w") as f:
        f.write(BROKEN % EBEDGE)
    os.chmod(broken, 0o755)
    hosts = os.path.join(work, "hosts")
    with open(hosts, "w") as f:
        f.write("board1 root=%s\nboard2 root=%s  # comment\nboard3 root=%s remote_ebedge=%s\n" % (
            boards[0].runs_root, boards[1].runs_root, boards[2].runs_root, broken))
    suite_dir = os.path.join(work, "s p;$(touch canary)")  # a hostile suite path
    os.makedirs(suite_dir)
    suite = os.path.join(suite_dir, "suite 'x'.toml")
    with open(suite, "w") as f:
        f.write(SUITE)
    yield {"work": work, "config": config, "hosts": hosts, "suite": suite, "boards": boards}
    for b in boards:
        b.stop()


def sweep_argv(fleet):
    return [EBEDGE, "remote", "sweep", fleet["suite"], "--hosts-file", fleet["hosts"],
            "--ssh-config", fleet["config"], "--remote-ebedge", EBEDGE,
            "--results", os.path.join(fleet["work"], "results")]


def read_ledger(fleet):
    path = os.path.join(fleet["work"], "results", "sweep-fleet.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (IOError, ValueError):
        return None


def test_sweep_retries_failures_elsewhere_and_resumes_after_kill(fleet):
    first = subprocess.Popen(sweep_argv(fleet), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, cwd=fleet["work"])
    deadline = time.monotonic() + 200
    done_before = {}
    while time.monotonic() < deadline and first.poll() is None:
        ledger = read_ledger(fleet)
        if ledger:
            done_before = {c: v for c, v in ledger["cells"].items() if v["state"] == "done"}
            if done_before:
                break
        time.sleep(0.5)
    assert done_before, "no cell finished before the deadline"
    first.send_signal(signal.SIGKILL)  # the laptop side dies mid-sweep
    first.wait()
    runs = {c: os.path.join(fleet["work"], "results", v["board"], c, "summary.json")
            for c, v in done_before.items()}
    stamps = {c: os.path.getmtime(p) for c, p in runs.items()}

    second = subprocess.run(sweep_argv(fleet), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, cwd=fleet["work"], timeout=240)
    assert second.returncode == 0, second.stdout
    ledger = read_ledger(fleet)
    assert sorted(ledger["cells"]) == sorted(
        ["vgg16-synthetic-eb-p0.5-r0", "vgg16-synthetic-eb-p0.5-r1",
         "vgg16-synthetic-dense-r0", "vgg16-synthetic-dense-r1"])
    for cell_id, cell in ledger["cells"].items():
        assert cell["state"] == "done", (cell_id, cell)
        assert cell["board"] in ("board1", "board2")
        summary = json.load(open(os.path.join(fleet["work"], "results", cell["board"], cell_id,
                                              "summary.json")))
        assert summary["status"] == "complete" and summary["board_id"] == cell["board"]
    for cell_id, before in done_before.items():  # done cells were not run again
        assert ledger["cells"][cell_id]["attempts"] == before["attempts"]
        assert os.path.getmtime(runs[cell_id]) == stamps[cell_id]
    failed = [a for c in ledger["cells"].values() for a in c["attempts"]
              if a["outcome"] == "failed"]
    assert failed and all(a["board"] == "board3" for a in failed)
    assert "cannot start" in failed[0]["detail"]
    assert not os.path.exists(os.path.join(fleet["work"], "canary"))
    for b in fleet["boards"]:  # every lock released
        assert not os.path.exists(os.path.join(b.runs_root, ".lock"))
