"""A dropped SSH connection is not the end of a run.

The connection is dropped for real (SIGKILL of the ssh ControlMaster mid-run); the laptop keeps
its meter recording and re-attaches, a sweep keeps the cell with its board instead of queueing it
again. The laptop meter is a simulated UM25C on a pty that follows the same power profile as the
board's fake tegrastats, so the two meters must agree wherever both covered a phase.
"""
import csv
import json
import os

import pytest

from support.remote_fixtures import EBEDGE, Lab
from support.remote_sshd import drop_connection_mid_run, needs_sshd
from meters.sim.profile import PowerProfile
from meters.sim.tegrastats import BIN as FAKE_TEGRASTATS, profile_spec
from meters.sim.um_sim import UMSimulator

pytestmark = [needs_sshd, pytest.mark.slow, pytest.mark.host, pytest.mark.timeout(300)]  # the laptop side
PROFILE = PowerProfile.parse("4-12:5,12-4:5")
TINY = ["--model", "vgg16", "--width", "0.0625", "--dataset", "synthetic", "--batch-size", "64",
        "--limit-train", "256", "--limit-test", "64"]


def test_laptop_meter_records_through_a_drop_and_partial_cover_gives_no_ratio(tmp_path):
    sim = UMSimulator(PROFILE).start()
    lab = Lab(str(tmp_path / "lab"), env={"EBEDGE_SIM_PROFILE": profile_spec(PROFILE),
                                          "EBEDGE_SIM_T0": repr(sim.t0)})
    try:
        argv = [EBEDGE, "remote", "run", "board1", "--ssh-config", lab.config, "--remote-ebedge",
                EBEDGE, "--root", lab.root(), "--results", lab.results, "--name", "drop11",
                "--meter-local", "um", "--port", sim.path, "--clock-period", "5",
                "--meter-option", "tegrastats.executable=%s" % FAKE_TEGRASTATS,
                "--meter", "tegrastats", "--epochs", "4", "--idle-seconds", "2"] + TINY
        rc, rest = drop_connection_mid_run(argv, "run drop11 started")
        assert rc == 0, rest
        assert "laptop meter keeps recording" in rest and "re-attached" in rest
        run = os.path.join(lab.results, "board1", "drop11")
        summary = json.load(open(os.path.join(run, "summary.json")))
        phases = summary["energy_compare"]["phases"]
        for phase in ("idle_before", "search", "idle_after"):
            row = phases[phase]
            assert row["laptop_covered_frac"] >= 0.95, (phase, row)
            assert row["ratio_laptop_to_board"] == pytest.approx(1.0, rel=0.1), (phase, row)

        # the laptop meter saw only the first part of the run: no ratio there, and a flag
        laptop_csv = os.path.join(run, "laptop", "samples.csv")
        with open(laptop_csv, newline="") as f:
            rows = list(csv.reader(f))
        with open(laptop_csv, "w", newline="") as f:
            csv.writer(f).writerows(rows[:len(rows) // 3])
        again = lab.remote("collect", "board1", "drop11", "--results", lab.results)
        assert again.returncode == 0, again.stderr
        summary = json.load(open(os.path.join(run, "summary.json")))
        late = summary["energy_compare"]["phases"]["idle_after"]
        assert late["laptop_covered_frac"] < 0.95 and late["ratio_laptop_to_board"] is None
        assert late["laptop_kj"] is None and late["board_kj"] > 0
        assert any(f.startswith("laptop_meter_partial_coverage") and "idle_after" in f
                   for f in summary["flags"])
    finally:
        lab.stop()
        sim.stop()


def test_sweep_reattaches_a_dropped_cell_instead_of_queueing_it(tmp_path):
    lab = Lab(str(tmp_path / "lab"))
    try:
        suite = tmp_path / "s.toml"
        suite.write_text('name = "drop"\n[defaults]\nmodel = "vgg16"\nwidth = 0.0625\n'
                         'epochs = 4\nbatch_size = 64\nlimit_train = 256\nlimit_test = 64\n'
                         '[grid]\nmethods = ["dense"]\n')
        argv = [EBEDGE, "remote", "sweep", str(suite), "--hosts", "board1", "--ssh-config",
                lab.config, "--remote-ebedge", EBEDGE, "--root", lab.root(), "--results",
                lab.results]
        rc, rest = drop_connection_mid_run(argv, "started (pid")
        assert rc == 0, rest
        assert "re-attached" in rest
        ledger = json.load(open(os.path.join(lab.results, "sweep-drop.json")))
        (cell_id, cell), = ledger["cells"].items()
        assert cell["state"] == "done" and cell["board"] == "board1"
        assert [a["outcome"] for a in cell["attempts"]] == ["done"]  # one run, never queued again
        starts = json.load(open(os.path.join(lab.root(), ".agent", cell_id, "pid.json")))["starts"]
        assert len(starts) == 1
    finally:
        lab.stop()
