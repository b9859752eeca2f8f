"""Board state travels as one typed object: `agent info` on a board whose nvpmodel says MAXN
sends it in BoardState's serialisation, and `remote doctor` (over a real loopback sshd) shows
that power mode; a sweep pools the board by model and power mode."""
import json
import os
import stat
import subprocess
import sys

import pytest

import ebedge
from ebedge.measure.board_state import BoardState
from support.remote_sshd import LoopbackBoard, keygen, write_ssh_config

EBEDGE = os.path.join(os.path.dirname(sys.executable), "ebedge")
SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(ebedge.__file__)))  # this checkout
NVPMODEL_MAXN = "NV Fan Mode:quiet\nNV Power Mode: MAXN\n0\n"

pytestmark = [pytest.mark.host, pytest.mark.timeout(240)]


def fake_nvpmodel(directory):
    """A bin directory whose `nvpmodel -q` prints the TX2's MAXN answer."""
    os.makedirs(directory)
    path = os.path.join(directory, "nvpmodel")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nprintf '%s' '" + NVPMODEL_MAXN + "'\n")
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return directory


@pytest.mark.slow
def test_agent_info_sends_the_power_mode_in_board_state_form(tmp_path):
    bin_dir = fake_nvpmodel(str(tmp_path / "bin"))
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ["PATH"])
    out = subprocess.check_output([EBEDGE, "agent", "info", "--root", str(tmp_path / "runs")],
                                  env=env, universal_newlines=True)
    state = BoardState.from_json(json.loads(out)["board"])
    assert state.power_mode_label == "MAXN (0)" and state.power_mode.fan_mode == "quiet"
    assert state.hostname and state.pool == [state.model, "MAXN (0)"]


@pytest.fixture(scope="module")
def board1(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("boardstate"))
    bin_dir = fake_nvpmodel(os.path.join(work, "bin"))
    ebedge = os.path.join(work, "board-ebedge")  # the board's ebedge, its PATH led by nvpmodel
    with open(ebedge, "w") as f:
        f.write('#!/bin/sh\nPATH="%s:$PATH" PYTHONPATH="%s" exec "%s" "$@"\n'
                % (bin_dir, SOURCE, EBEDGE))
    os.chmod(ebedge, 0o755)
    pub = keygen(os.path.join(work, "id"))
    board = LoopbackBoard(work, "board1", pub).start()
    config = write_ssh_config(os.path.join(work, "ssh_config"), [board], os.path.join(work, "id"),
                              os.path.join(work, "known_hosts"))
    yield {"work": work, "board": board, "config": config, "ebedge": ebedge}
    board.stop()


def _doctor(lab, *extra):
    return subprocess.run([EBEDGE, "remote", "doctor", "board1", "--ssh-config", lab["config"],
                           "--remote-ebedge", lab["ebedge"], "--root", lab["board"].runs_root]
                          + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, cwd=lab["work"])


@pytest.mark.slow
def test_remote_doctor_shows_the_power_mode(board1):
    done = _doctor(board1)
    assert done.returncode == 0, done.stderr
    line = [l for l in done.stdout.splitlines() if l.strip().startswith("board ") and "L4T" in l]
    assert len(line) == 1 and "power mode MAXN (0)" in line[0], done.stdout
    report = json.loads(_doctor(board1, "--json").stdout)
    assert BoardState.from_json(report["info"]["board"]).power_mode_label == "MAXN (0)"


@pytest.mark.slow
def test_sweep_pools_the_board_by_model_and_power_mode(board1):
    from ebedge.remote.board import Board
    from ebedge.remote.sweep import board_pool
    board = Board("board1", ssh_config=board1["config"], remote_ebedge=board1["ebedge"],
                  root=board1["board"].runs_root)
    try:
        board.conn.connect()
        assert board_pool(board)[1] == "MAXN (0)"
    finally:
        board.close()
