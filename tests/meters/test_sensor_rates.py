"""The sensor's truth: its update rate (stated and measured), held readings integrated as held,
and a sensor that stops updating while still answering flagged `stale`, a gap."""
import os
import random
import sys
import time

import pytest
from click.testing import CliRunner

import meters
from ebedge.cli.meters import meters_group
from ebedge.measure import energy, series
from meters import base, ina3221, nvml, rapl
from meters.base import TOTAL
from meters.sim import tegrastats as sim_tegrastats
from meters.sim.profile import PowerProfile
from meters.sim.lines_sim import LinesSimulator
from meters.sim.sysfs import FakeIna3221Tree
from meters.sim.um_sim import UMSimulator
from support.desktop_fakes import Clock, fake_pynvml, rapl_zone, set_uj


def poll(monkeypatch, tree, meter, until_s, every_s=0.01, frozen=None, seed=1, update_s=0.05):
    """Poll `meter` on a virtual clock every ~`every_s` until `until_s`, the tree showing what
    its sensor shows at each moment (with one LSB of noise, new at each `update_s`), except
    in `frozen` = (a, b)."""
    rng = random.Random(seed)
    clock = [0.0]
    monkeypatch.setattr(ina3221, "now", lambda: (clock[0], 1e9 + clock[0]))
    out = []
    k = 0
    while clock[0] < until_s:
        k += 1
        clock[0] = k * every_s + rng.uniform(-0.2, 0.2) * every_s
        if frozen is None or not frozen[0] <= clock[0] < frozen[1]:
            tree.show(clock[0], lsb=(-1) ** int(clock[0] / update_s))
        out.extend(s for s in meter.read() if s.rail == TOTAL)
    return out


@pytest.mark.parametrize("board", ["orin-nx", "tx2"])
def test_a_held_stream_is_integrated_as_held_and_its_update_rate_measured(monkeypatch,
                                                                           tmp_path, board):
    prof = PowerProfile.default()
    tree = FakeIna3221Tree(str(tmp_path), board, prof, t0=0.0, update_interval_ms=50)
    meter = meters.create("ina3221", root=str(tmp_path), interval_s=0.01)
    meter.open()
    samples = poll(monkeypatch, tree, meter, 20.3)
    rows = energy.by_phase(samples, [("all", 0, 0.1, 20.1)], nominal_interval_s=0.01)
    row, = rows
    assert row["rate_hz"] == pytest.approx(100, rel=0.02)
    assert row["sensor_update_hz"] == pytest.approx(20, rel=0.05)  # distinct readings per second
    assert row["covered_frac"] == pytest.approx(1.0)
    truth = prof.energy(0.1, 20.1)
    assert row["energy_j"] == pytest.approx(truth, rel=0.002)
    assert series.Series(samples, 0.01).held  # most values were read again at later polls
    if board == "orin-nx":  # JetPack 5 hwmon states the interval; JetPack 4's IIO does not
        assert meter.sensor_interval_s == 0.05 and meter.describe()["sensor_samples"] == 4
    else:
        assert meter.sensor_interval_s is None


def test_polling_follows_a_slow_sensor_when_no_interval_is_asked(tmp_path):
    FakeIna3221Tree(str(tmp_path / "slow"), "orin-nx", update_interval_ms=200)
    FakeIna3221Tree(str(tmp_path / "fast"), "orin-nx", update_interval_ms=20)
    slow = meters.create("ina3221", root=str(tmp_path / "slow"))
    fast = meters.create("ina3221", root=str(tmp_path / "fast"))
    asked = meters.create("ina3221", root=str(tmp_path / "slow"), interval_s=0.01)
    for m in (slow, fast, asked):
        m.open()
    assert slow.interval_s == 0.2  # no faster than the sensor updates
    assert fast.interval_s == ina3221.Ina3221Meter.default_interval_s
    assert asked.interval_s == 0.01  # what the user asks for, they get


@pytest.mark.parametrize("board", ["orin-nx", "tx2"])
def test_a_frozen_ina3221_is_flagged_stale_and_left_out(monkeypatch, tmp_path, board):
    prof = PowerProfile([(5.0, 9.0, 4.0), (9.0, 5.0, 4.0)])
    tree = FakeIna3221Tree(str(tmp_path), board, prof, t0=0.0)
    meter = meters.create("ina3221", root=str(tmp_path), interval_s=0.05)
    meter.open()
    samples = poll(monkeypatch, tree, meter, 10.0, every_s=0.05, frozen=(3.0, 7.0))
    stale = [s.t_mono for s in samples if base.STALE in s.flags]
    # unchanged for longer than max(20 periods, 2 s) after the last update before 3.0
    assert stale and 4.9 < min(stale) < 5.2 and max(stale) < 7.0
    assert meter.stale_readings >= len(stale) and "stale" in meter.fault_summary()
    w = energy.integrate(samples, 1.0, 9.0, nominal_interval_s=0.05)
    assert w.flags["stale"] == len(stale)
    # covered: up to the last reading accepted before the stale ones, and again from 7.0 on
    assert w.covered_frac == pytest.approx((5.0 - 1.0 + 9.0 - 7.05) / 8.0, abs=0.03)


def test_a_frozen_tegrastats_is_flagged_stale(monkeypatch):
    monkeypatch.setattr(base, "STALE_MIN_S", 0.5)
    env = sim_tegrastats.sim_env(PowerProfile([(5.0, 9.0, 3.0)]), freeze=0.5)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    meter = meters.create("tegrastats", executable=sim_tegrastats.BIN, interval_s=0.05)
    t0 = float(env["EBEDGE_SIM_T0"])
    with meter:
        time.sleep(2.5)
    totals = [s for s in meter.samples() if s.rail == TOTAL]
    stale = [s.t_mono - t0 for s in totals if base.STALE in s.flags]
    fresh = [s.t_mono - t0 for s in totals if base.STALE not in s.flags]
    limit = max(base.STALE_PERIODS * 0.05, 0.5)  # 20 lines
    assert meter.sensor_interval_s == 0.05
    assert stale and min(stale) > 0.5 + limit - 0.1 and max(fresh) < 0.5 + limit + 0.15


def test_simulate_states_its_update_interval(tmp_path):
    root = str(tmp_path / "sys")
    res = CliRunner().invoke(meters_group, [
        "simulate", "ina3221-orin-nx", "--update-interval-ms", "50", "--duration",
        "0.2", "--option", "root=%s" % root])
    assert res.exit_code == 0, res.output
    assert "update_interval_ms=50.0" in res.output
    assert ina3221.sensor_settings(root) == (0.05, 4)
    res = CliRunner().invoke(meters_group, [
        "simulate", "tegrastats", "--update-interval-ms", "50"])
    assert res.exit_code != 0 and "update_interval_ms" in res.output
    assert os.path.isdir(root)


@pytest.mark.parametrize("make_sim,driver,interval_s", [
    (lambda p: LinesSimulator(p, interval_s=0.02), "lines", 0.02),
    (lambda p: UMSimulator(p), "um", 0.5),  # it answers twice a second at most
])
@pytest.mark.slow
def test_a_frozen_serial_meter_is_flagged_stale_and_a_steady_one_is_not(monkeypatch, make_sim,
                                                                       driver, interval_s):
    monkeypatch.setattr(base, "STALE_MIN_S", 0.5)
    monkeypatch.setattr(base, "STALE_PERIODS", 2)  # short, so that a steady load is a real test
    limit = max(2 * interval_s, 0.5)
    with make_sim(PowerProfile([(3.0, 3.0, 60.0)])) as sim:  # one steady load throughout
        meter = meters.create(driver, port=sim.path, interval_s=interval_s)
        with meter:
            time.sleep(limit + 1.0)  # steady for longer than the limit: still measuring
            sim.freeze()
            frozen = time.monotonic()
            time.sleep(limit + 0.8)
            sim.thaw()
            thawed = time.monotonic()
            time.sleep(1.2)
        samples = meter.samples()
    stale = [s.t_mono for s in samples if base.STALE in s.flags]
    # unchanged since the last reading before the freeze (up to one interval before it)
    assert stale and min(stale) > frozen - interval_s + limit - 0.1
    assert max(stale) < thawed + interval_s + 0.1
    assert meter.stale_readings == len(stale)
    assert any(s.t_mono > thawed + 0.3 for s in samples)
    assert not any(base.STALE in s.flags for s in samples if s.t_mono > thawed + 0.3)


def test_frozen_rapl_counters_are_stale_not_zero_watts(tmp_path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(rapl, "now", clock)
    pkg = rapl_zone(tmp_path, "package-0", "intel-rapl:0", 0)
    meter = meters.create("rapl", root=str(tmp_path))
    meter.open()
    uj, stale = 0, []
    for k in range(1, 61):  # 10 Hz: counting until 1.0 s, frozen until 5.0 s, counting again
        clock.t += 0.1
        if not 10 < k <= 50:
            uj += 500000  # 5 W
        set_uj(pkg, uj)
        total, = [s for s in meter.read() if s.rail == TOTAL]
        if base.STALE in total.flags:
            stale.append(k)
    # unchanged since the reading at 1.0 s for longer than max(20 updates, STALE_MIN_S = 2 s)
    assert stale and stale[0] in (30, 31) and stale == list(range(stale[0], 51))
    assert meter.stale_readings == 2 * len(stale)  # the package rail and the total


def test_a_frozen_nvml_driver_is_stale_and_a_steady_gpu_without_a_counter_is_not(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(nvml, "now", clock)
    powers, energies = [150000], [1000000]
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(powers, energies))
    meter = meters.create("nvml")
    meter.open()
    stale = []
    for k in range(1, 41):  # 10 Hz; the driver stops updating after 0.5 s
        clock.t += 0.1
        if k <= 5:
            energies[0] += 15000
        if any(base.STALE in s.flags for s in meter.read()):
            stale.append(k)
    # the energy counter advances while the GPU draws power: 2 s unchanged is a frozen driver
    assert stale and stale[0] in (25, 26) and stale == list(range(stale[0], 41))
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([50000], [None]))
    steady = meters.create("nvml")
    steady.open()
    for k in range(100):  # 10 s of one power figure: within 20 of its ~1 s updates
        clock.t += 0.1
        assert not any(base.STALE in s.flags for s in steady.read())
