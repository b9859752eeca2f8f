"""One transient read error must not stop a meter; the readings it cost are a flagged gap
that energy.csv's covered_frac shows. Real parts: a fake INA3221 tree laid out as on a TX2 whose
VDD_IN files vanish for a moment, and the fake tegrastats executable killed with SIGKILL."""
import csv
import os
import signal
import threading
import time

import pytest

import meters
from ebedge.measure import recording
from meters.base import GAP
from meters.sim import tegrastats as sim_tegrastats
from meters.sim.profile import PowerProfile
from meters.sim.sysfs import FakeIna3221Tree

WATTS = 5.0
DURATION_S = 2.0


def total_row(out):
    with open(os.path.join(out, "energy.csv"), newline="") as f:
        return [r for r in csv.DictReader(f) if r["rail"] == "total"][0]


def check_gap_is_flagged_and_uncovered(rec, out, fault_t, lost_s):
    assert rec.meter_error and "failed read" in rec.meter_error  # reported, not fatal
    totals = [s for s in rec.samples if s.rail == "total"]
    assert any(s.t_mono > fault_t + 0.5 for s in totals)  # it kept measuring
    flagged = [s for s in totals if GAP in s.flags]
    assert flagged and all(s.t_mono > fault_t for s in flagged)
    row = total_row(out)
    uncovered = float(row["duration_s"]) * (1 - float(row["covered_frac"]))
    assert uncovered >= lost_s * 0.9  # the missed readings are not bridged
    assert "gap:" in row["flags"]
    covered = float(row["duration_s"]) * float(row["covered_frac"])
    assert float(row["energy_j"]) == pytest.approx(WATTS * covered, rel=0.01)


def test_ina3221_survives_a_vanished_rail(tmp_path):
    tree = FakeIna3221Tree(str(tmp_path / "sys"), "tx2", PowerProfile.parse("%g:100" % WATTS))
    tree.start(rate_hz=200.0)
    meter = meters.create("ina3221", interval_s=0.05, root=tree.root)
    out = str(tmp_path / "rec")
    fault = {}

    def vanish():
        fault["t"] = time.monotonic()
        fault["timer"] = tree.vanish("VDD_IN", 0.1)  # ENOENT for 0.1 s, then back
    threading.Timer(0.7, vanish).start()
    try:
        rec = recording.record(meter, out, duration_s=DURATION_S)
    finally:
        tree.close()
    assert meter.error is None and meter.read_errors >= 1
    check_gap_is_flagged_and_uncovered(rec, out, fault["t"], 0.1)
    vdd_in = [s for s in rec.samples if s.rail == "VDD_IN"]
    cpu = [s for s in rec.samples if s.rail == "VDD_SYS_CPU"]
    assert len(cpu) > len(vdd_in)  # the other rails were read all along


@pytest.mark.slow
def test_tegrastats_killed_mid_run_is_restarted(tmp_path, monkeypatch):
    for k, v in sim_tegrastats.sim_env(PowerProfile.parse("%g:100" % WATTS), "tx2").items():
        monkeypatch.setenv(k, v)
    meter = meters.create("tegrastats", interval_s=0.05, executable=sim_tegrastats.BIN)
    out = str(tmp_path / "rec")
    fault = {}

    def kill():
        fault["t"] = time.monotonic()
        fault["pid"] = meter._proc.pid
        os.kill(fault["pid"], signal.SIGKILL)
    threading.Timer(0.8, kill).start()
    rec = recording.record(meter, out, duration_s=DURATION_S + 0.5)
    assert meter.error is None and meter.restarts >= 1
    assert "exited with code -9" in meter.last_read_error
    check_gap_is_flagged_and_uncovered(rec, out, fault["t"], 0.1)


def test_the_run_is_told_what_the_meter_survived(tmp_path):
    from ebedge.measure.sampling import MeterSampler
    tree = FakeIna3221Tree(str(tmp_path / "sys"), "orin-nx", PowerProfile.parse("%g:100" % WATTS))
    tree.start(rate_hz=200.0)
    written = []
    sampler = MeterSampler(["ina3221"], written.extend, {"ina3221": {"root": tree.root}}, 0.05)
    try:
        sampler.start()
        time.sleep(0.4)
        tree.vanish("VDD_IN", 0.15).join()
        time.sleep(0.4)
        lines = sampler.stop()
    finally:
        tree.close()
    assert len(lines) == 1 and lines[0].startswith("ina3221: ")
    assert "failed read(s) retried, 1 gap(s) flagged" in lines[0]
    assert [s for s in written if s.rail == "total" and GAP in s.flags]
