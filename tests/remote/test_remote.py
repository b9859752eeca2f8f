"""`ebedge remote` against real OpenSSH servers on loopback playing boards.

The "board" is this machine behind sshd, with its wall clock shifted by SHIFT_S (sshd SetEnv),
the fake tegrastats as its on-board meter, and a simulated UM25C on a pty as the laptop's meter.
Both follow one PowerProfile from one t0, so the laptop meter's joules per phase can be checked
against the exact integral once the board's phase times are mapped back onto laptop time.
These tests need /usr/sbin/sshd: they skip, naming openssh-server, where it is missing, and fail
where it is there but cannot start.
"""
import csv
import json
import os
import subprocess
import sys
import time

import pytest

from support.remote_sshd import (LoopbackBoard, drop_connection_mid_run, keygen, needs_sshd,
                                 write_ssh_config)
from meters.sim.profile import PowerProfile
from meters.sim.tegrastats import BIN as FAKE_TEGRASTATS, profile_spec
from meters.sim.um_sim import UMSimulator

SHIFT_S = 7.0
PROFILE = PowerProfile.parse("4-12:5,12-4:5")  # ramps only: the trapezoid rule is exact on them
EBEDGE = os.path.join(os.path.dirname(sys.executable), "ebedge")
TINY = ["--model", "vgg16", "--width", "0.0625", "--dataset", "synthetic", "--batch-size", "64",
        "--limit-train", "256", "--limit-test", "64"]

pytestmark = [needs_sshd, pytest.mark.host, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One UM simulator (the laptop's meter) and board1 sharing its power profile and t0."""
    work = str(tmp_path_factory.mktemp("lab"))
    sim = UMSimulator(PROFILE).start()
    pub = keygen(os.path.join(work, "id"))
    env = {"EBEDGE_CLOCK_SHIFT_S": repr(SHIFT_S), "EBEDGE_SIM_PROFILE": profile_spec(PROFILE),
           "EBEDGE_SIM_T0": repr(sim.t0)}
    board = LoopbackBoard(work, "board1", pub, env).start()
    bad_known = os.path.join(work, "wrong_known_hosts")
    with open(bad_known, "w") as f:  # board1's port, another machine's key
        f.write("[127.0.0.1]:%d %s\n" % (board.port, " ".join(
            keygen(os.path.join(work, "other_key")).split()[:2])))
    config = write_ssh_config(os.path.join(work, "ssh_config"), [board], os.path.join(work, "id"),
                              os.path.join(work, "known_hosts"),
                              extra_aliases=[("impostor", board, bad_known)])
    yield {"work": work, "sim": sim, "board": board, "config": config}
    board.stop()
    sim.stop()


def ebedge(lab, *args, **kwargs):
    argv = [EBEDGE, "remote"] + list(args[:1]) + list(args[1:2]) + [
        "--ssh-config", lab["config"], "--remote-ebedge", EBEDGE,
        "--root", lab["board"].runs_root] + list(args[2:])
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, cwd=lab["work"], **kwargs)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow  # end to end: a training run on a loopback board
def test_remote_run_aligns_laptop_meter_with_board_phases(lab):
    results = os.path.join(lab["work"], "results")
    done = ebedge(lab, "run", "board1", "--results", results, "--name", "e2e",
                  "--meter-local", "um", "--port", lab["sim"].path, "--clock-period", "5",
                  "--meter-option", "tegrastats.executable=%s" % FAKE_TEGRASTATS,
                  *(TINY + ["--epochs", "3", "--idle-seconds", "2", "--meter", "tegrastats"]))
    assert done.returncode == 0, done.stdout + done.stderr
    run = os.path.join(results, "board1", "e2e")
    config = json.load(open(os.path.join(run, "config.json")))
    summary = json.load(open(os.path.join(run, "summary.json")))
    assert summary["status"] == "complete" and summary["board_id"] == "board1"
    clock = config["clock"]
    assert abs(clock["offset_s"] - SHIFT_S) < 0.05 and clock["bound_s"] < 0.4
    assert "clock_offset_bound_exceeded" not in summary["flags"]

    # truth: the board's wall clock is the laptop's + SHIFT_S (same machine)
    wall_minus_mono = time.time() - time.monotonic()
    windows = {}
    for p in read_csv(os.path.join(run, "phases.csv")):
        a = float(p["t_start_wall"]) - SHIFT_S - wall_minus_mono
        b = float(p["t_end_wall"]) - SHIFT_S - wall_minus_mono
        windows.setdefault(p["phase"], []).append((a, b))
    energy = {(r["phase"], r["meter"]): r for r in read_csv(os.path.join(run, "energy.csv"))
              if r["rail"] == "total"}
    assert ("search", "tegrastats") in energy  # the board's own meter is there too
    for phase in ("idle_before", "search", "idle_after"):
        truth = sum(lab["sim"].energy_between(a, b) for a, b in windows[phase])
        measured = float(energy[(phase, "um@laptop")]["energy_j"])
        assert measured == pytest.approx(truth, rel=0.02), phase
    compare = summary["energy_compare"]
    assert compare["laptop_meter"] == "um@laptop" and compare["board_meter"] == "tegrastats"
    assert compare["phases"]["search"]["ratio_laptop_to_board"] == pytest.approx(1.0, rel=0.05)
    laptop_rows = [r for r in read_csv(os.path.join(run, "samples.csv"))
                   if r["meter"] == "um@laptop"]
    assert laptop_rows and abs(float(laptop_rows[0]["t_wall"]) - SHIFT_S - time.time()) < 120

    again = ebedge(lab, "collect", "board1", "e2e", "--results", results)  # idempotent
    assert again.returncode == 0, again.stderr
    assert len([r for r in read_csv(os.path.join(run, "samples.csv"))
                if r["meter"] == "um@laptop"]) == len(laptop_rows)


@pytest.mark.slow  # end to end: a training run on a loopback board
def test_run_survives_killed_connection_reattaches_and_is_collected_again(lab):
    results = os.path.join(lab["work"], "results")
    argv = [EBEDGE, "remote", "run", "board1", "--ssh-config", lab["config"], "--remote-ebedge",
            EBEDGE, "--root", lab["board"].runs_root, "--results", results, "--name", "dropped",
            "--epochs", "4", "--idle-seconds", "1"] + TINY
    rc, rest = drop_connection_mid_run(argv, "run dropped started", timeout=150)
    assert rc == 0, rest  # re-attached and followed the run to its end
    assert "connection lost" in rest and "re-attached" in rest, rest

    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        status = ebedge(lab, "status", "board1", "dropped", "--json")
        assert status.returncode == 0, status.stderr
        state = json.loads(status.stdout)[0]["state"]
        if state != "running":
            break
        time.sleep(2)
    assert state == "complete"
    got = ebedge(lab, "collect", "board1", "dropped", "--results", results)
    assert got.returncode == 0, got.stderr
    run = os.path.join(results, "board1", "dropped")
    assert json.load(open(os.path.join(run, "summary.json")))["status"] == "complete"
    epochs = read_csv(os.path.join(run, "epochs.csv"))
    assert len([e for e in epochs if e["phase"] == "search"]) >= 1
    assert os.path.exists(os.path.join(run, "energy.csv"))
    assert os.path.exists(os.path.join(run, "log.txt"))


@pytest.mark.slow
def test_hostile_strings_arrive_as_data(lab, tmp_path):
    canary = str(tmp_path / "canary")
    results = os.path.join(lab["work"], "results")
    bad = ebedge(lab, "run", "board1", "--results", results, "--name",
                 "x; $(touch ebedge-canary) `touch ebedge-canary`", "--epochs", "1", *TINY)
    assert bad.returncode != 0 and "bad --name" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    name = "x+y.z_1-2"
    value = "/nonexistent; $(touch %s) \"a b' `touch %s`" % (canary, canary)
    done = ebedge(lab, "run", "board1", "--results", results, "--name", name, "--epochs", "1",
                  "--meter", "tegrastats", "--meter-option", "tegrastats.executable=" + value,
                  *TINY)
    assert done.returncode != 0 and "failed" in done.stderr  # the meter path does not exist
    assert not os.path.exists(canary)
    for home in (os.path.expanduser("~"), lab["work"]):
        assert not os.path.exists(os.path.join(home, "ebedge-canary"))
    pushed = os.path.join(lab["board"].runs_root, ".agent", name, "settings.json")
    assert json.load(open(pushed))["meter_options"]["tegrastats"]["executable"] == value
    assert os.path.isdir(os.path.join(results, "board1", name))


def test_host_key_mismatch_is_refused(lab):
    done = ebedge(lab, "status", "impostor")
    assert done.returncode != 0
    assert "host key" in done.stderr and "impostor" in done.stderr


@pytest.mark.slow
def test_doctor_reports_versions_and_clock_offset(lab):
    done = ebedge(lab, "doctor", "board1", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ebedge_matches"] is True
    assert report["info"]["torch"] and report["info"]["disk_free_bytes"] > 0
    assert abs(report["clock"]["offset_s"] - SHIFT_S) < 0.05
    assert report["clock"]["bound_s"] < 0.4


def test_install_builds_pushes_and_checks_dependencies(lab, tmp_path):
    venv = str(tmp_path / "board venv")
    done = subprocess.run([EBEDGE, "remote", "install", "board1", "--ssh-config", lab["config"],
                           "--python", sys.executable, "--venv", venv],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    missing = [line.split()[1] for line in done.stdout.splitlines()
               if line.split()[:1] == ["MISSING"] and "(optional)" not in line]
    # the board venv sees the base interpreter's packages only: it exits non-zero exactly when
    # a required one is missing, and names it
    assert (done.returncode != 0) == bool(missing), done.stdout + done.stderr
    assert all(m in done.stderr for m in missing)
    imported = subprocess.run([os.path.join(venv, "bin", "python"), "-c",
                               "import ebedge, meters.sim; print(ebedge.__file__)"],
                              stdout=subprocess.PIPE, universal_newlines=True, cwd="/")
    assert imported.returncode == 0 and venv in imported.stdout
    for dist in ("torch", "numpy", "click", "pyserial"):
        assert any(line.split()[:2] in (["ok", dist], ["MISSING", dist])
                   for line in done.stdout.splitlines()), dist
