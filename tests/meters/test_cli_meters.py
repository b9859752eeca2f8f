"""`ebedge meters record|replay|list|simulate` end to end against the simulators."""
import csv
import os
import sys
import time

import pytest
from click.testing import CliRunner

from conftest import FIXTURES, SEPARATE_STDERR
from ebedge.cli.meters import meters_group
from meters.sim import tegrastats as sim_tegrastats
from meters.sim.profile import PowerProfile
from meters.sim.sysfs import FakeIna3221Tree

# The default 20 s profile compressed 5x, read at 5x the usual 10 Hz: same samples per feature.
FAST = PowerProfile([(a, b, d / 5.0) for a, b, d in PowerProfile.default().segments])
TEGRA = os.path.join(FIXTURES, "tegrastats")


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def run_window(out):
    phase = read_csv(os.path.join(out, "phases.csv"))[0]
    return float(phase["t_start_mono"]), float(phase["t_end_mono"])


def total_row(out):
    return [r for r in read_csv(os.path.join(out, "energy.csv")) if r["rail"] == "total"][0]


def invoke(args):
    return CliRunner().invoke(meters_group, args, catch_exceptions=False)


def record_fake_tegrastats(monkeypatch, out, board, **faults):
    t0 = time.monotonic()
    for k, v in sim_tegrastats.sim_env(FAST, board, t0=t0, **faults).items():
        monkeypatch.setenv(k, v)
    res = invoke(["record", "--meter", "tegrastats", "--interval", "0.02",
                  "--option", "executable=%s" % sim_tegrastats.BIN,
                  "--duration", str(FAST.period), "--out", out])
    assert res.exit_code == 0, res.output
    a, b = run_window(out)
    return res, total_row(out), FAST.energy(a - t0, b - t0)


@pytest.mark.slow
def test_record_fake_tegrastats_matches_the_profile(monkeypatch, tmp_path):
    out = str(tmp_path / "run")
    res, row, truth = record_fake_tegrastats(monkeypatch, out, "tx2")
    assert float(row["energy_j"]) == pytest.approx(truth, rel=0.005)
    assert "%.3f J" % float(row["energy_j"]) in res.stdout
    assert float(row["covered_frac"]) > 0.99
    assert row["run_id"] == "run" and row["method"] == "measured"
    samples = read_csv(os.path.join(out, "samples.csv"))
    assert {s["rail"] for s in samples} >= {"VDD_IN", "total"}
    assert list(samples[0])[:4] == ["run_id", "meter", "rail", "t_mono"]


@pytest.mark.slow
def test_record_with_lost_and_garbled_lines_stays_within_2pct(monkeypatch, tmp_path):
    out = str(tmp_path / "run")
    _, row, truth = record_fake_tegrastats(monkeypatch, out, "agx-orin", drop=0.05, garbage=0.02,
                                           seed=7)
    assert float(row["energy_j"]) == pytest.approx(truth, rel=0.02)
    assert float(row["max_gap_s"]) >= 2 * 0.02  # a lost line shows as a longer interval
    assert float(row["rate_hz"]) < 0.97 / 0.02


def test_record_a_sysfs_tree_while_a_command_runs(tmp_path):
    tree = FakeIna3221Tree(str(tmp_path / "root"), "orin-nx", PowerProfile.parse("5:10"))
    out = str(tmp_path / "run")
    with tree.start(rate_hz=50):
        res = invoke(["record", "--meter", "ina3221", "--option", "root=%s" % tree.root,
                      "--interval", "0.05", "--out", out, "--",
                      sys.executable, "-c", "import sys, time; time.sleep(0.6); sys.exit(3)"])
    assert res.exit_code == 3
    a, b = run_window(out)
    assert b - a >= 0.6
    assert float(total_row(out)["energy_j"]) == pytest.approx(5.0 * (b - a), rel=0.01)


def test_record_needs_a_duration_or_a_command(tmp_path):
    res = CliRunner().invoke(meters_group, ["record", "--meter", "model", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "--duration" in res.output


def test_record_reports_bad_meter_options(tmp_path):
    res = CliRunner().invoke(meters_group, ["record", "--meter", "ina3221", "--option",
                                            "root=%s" % tmp_path, "--duration", "1",
                                            "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "no INA3221 rails" in res.output


@pytest.mark.skipif(not os.path.isdir(TEGRA), reason="../shared fixtures absent")
def test_replay_writes_files_and_reports_bad_lines(tmp_path):
    log = tmp_path / "log.txt"
    with open(os.path.join(TEGRA, "tx2-jp4-l4t32.txt")) as f:
        lines = f.read().splitlines()
    log.write_text("\n".join([lines[0], "tegrastats: oops", lines[1], lines[2]]) + "\n")
    out = str(tmp_path / "run")
    res = CliRunner(**SEPARATE_STDERR).invoke(meters_group, ["replay", "tegrastats", str(log), "--out", out,
                                                             "--interval", "0.5"], catch_exceptions=False)
    assert res.exit_code == 0
    assert "line 2:" in res.stderr and "not a tegrastats line" in res.stderr
    row = total_row(out)
    # line 1 at 0 s (3.056 W), line 3 at 1.0 s and line 4 at 1.5 s (1.876 W): 1 s gap bridged
    assert float(row["energy_j"]) == pytest.approx((3.056 + 1.876) / 2 * 1.0 + 1.876 * 0.5)


@pytest.mark.skipif(not os.path.isdir(TEGRA), reason="../shared fixtures absent")
def test_replay_csv_to_stdout_has_one_row_per_rail_and_a_total():
    res = invoke(["replay", "tegrastats", os.path.join(TEGRA, "agx-orin-jp5.txt"), "--csv", "-"])
    rows = list(csv.DictReader(res.stdout.splitlines()))
    assert {r["rail"]: float(r["power_w"]) for r in rows} == {
        "VDD_GPU_SOC": 2.399, "VDD_CPU_CV": 0.4, "VIN_SYS_5V0": 4.032, "VDDQ_VDD2_1V8AO": 0.301,
        "total": pytest.approx(6.831)}
    assert {r["line"] for r in rows} == {"1"}


def test_list_names_every_meter_with_a_reason():
    res = invoke(["list"])
    names = [line.split()[0] for line in res.stdout.splitlines()]
    assert {"ina3221", "tegrastats", "jtop", "rapl", "nvml", "model"} <= set(names)
    assert "model        available" in res.stdout


def test_simulate_tegrastats_prints_executable_and_env():
    res = invoke(["simulate", "tegrastats", "--power-profile", "2:1,4:1", "--option", "board=orin"])
    info = dict(line.split("=", 1) for line in res.stdout.splitlines())
    assert info["executable"] == sim_tegrastats.BIN and os.access(info["executable"], os.X_OK)
    assert PowerProfile.parse(info["EBEDGE_SIM_PROFILE"]).energy(0, 2) == 6.0
    assert info["EBEDGE_SIM_BOARD"] == "orin"


def test_simulate_sysfs_serves_a_tree_for_the_duration(tmp_path):
    root = str(tmp_path / "sys-root")
    res = invoke(["simulate", "ina3221-agx-orin", "--duration", "0.3", "--option", "root=" + root])
    assert "root=%s" % root in res.stdout
    assert os.path.exists(os.path.join(root, "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"))


def test_simulate_unknown_kind_lists_the_known_ones():
    res = CliRunner().invoke(meters_group, ["simulate", "nope"])
    assert res.exit_code == 1 and "ina3221-tx2" in res.output


@pytest.mark.slow
def test_record_a_serial_meter_over_the_20s_profile(tmp_path):
    """`meters record` over a real pty: a Yokogawa WT310E at its 10 Hz update rate, 20 s of
    steps and ramps (PowerProfile.default), within 0.5% of the exact energy of the window."""
    from meters.sim.scpi_sim import YokogawaSimulator
    out = str(tmp_path / "run")
    with YokogawaSimulator(PowerProfile.default(), dribble=True) as sim:
        res = invoke(["record", "--meter", "scpi", "--port", sim.path, "--interval", "0.1",
                      "--duration", "20", "--out", out])
        a, b = run_window(out)
        truth = sim.energy_between(a, b)
    assert res.exit_code == 0, res.output
    row = total_row(out)
    assert float(row["energy_j"]) == pytest.approx(truth, rel=0.005)
    assert float(row["covered_frac"]) > 0.99
