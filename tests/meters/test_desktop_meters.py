"""RAPL (fake powercap tree), NVML (fake pynvml) and the modelled estimate."""
import sys
import time

import pytest

import meters
from ebedge.measure import energy
from meters import model as model_meter
from meters import rapl as rapl_meter
from support.desktop_fakes import Clock, fake_pynvml, set_uj
from support.desktop_fakes import rapl_zone as zone


def test_rapl_power_from_counter_deltas_with_wraparound(tmp_path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(rapl_meter, "now", clock)
    pkg = zone(tmp_path, "package-0", "intel-rapl:0", 1000000, max_uj=10000000)
    core = zone(tmp_path, "core", "intel-rapl:0:0", 500000)
    dram = zone(tmp_path, "dram", "intel-rapl:0:1", 0)
    meter = meters.create("rapl", root=str(tmp_path))
    meter.open()
    assert meter.total_rails == ["package-0", "package-0:dram"]  # core is inside the package
    clock.t += 0.5
    set_uj(pkg, 6000000)    # +5 J in 0.5 s
    set_uj(core, 2500000)   # +2 J
    set_uj(dram, 1000000)   # +1 J
    got = {s.rail: s for s in meter.read()}
    assert got["package-0"].power_w == pytest.approx(10.0)
    assert got["package-0:core"].power_w == pytest.approx(4.0)
    assert got["total"].power_w == pytest.approx(12.0)
    assert got["total"].meter_energy_j == pytest.approx(6.0)
    clock.t += 1.0
    set_uj(pkg, 1000000)    # wrapped at 10 J: 6 -> 10 -> 1 is +5 J
    set_uj(dram, 1000000)
    got = {s.rail: s for s in meter.read()}
    assert got["package-0"].power_w == pytest.approx(5.0)
    assert got["package-0"].meter_energy_j == pytest.approx(10.0)


def test_rapl_counter_energy_flows_into_energy_csv(tmp_path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(rapl_meter, "now", clock)
    pkg = zone(tmp_path, "package-0", "intel-rapl:0", 0)
    meter = meters.create("rapl", root=str(tmp_path))
    meter.open()
    samples = []
    for k in range(1, 11):
        clock.t += 0.1
        set_uj(pkg, k * 300000)  # 3 W
        samples.extend(meter.read())
    rows = energy.by_phase(samples, [("run", 0, 100.25, 100.85)])
    row = [r for r in rows if r["rail"] == "total"][0]
    assert row["energy_j"] == pytest.approx(1.8)
    assert row["avg_power_w"] == pytest.approx(3.0)


def test_rapl_prefers_psys(tmp_path):
    zone(tmp_path, "package-0", "intel-rapl:0", 0)
    zone(tmp_path, "psys", "intel-rapl:1", 0)
    meter = meters.create("rapl", root=str(tmp_path))
    meter.open()
    assert meter.total_rails == ["psys"]


def test_rapl_without_zones(tmp_path):
    with pytest.raises(meters.MeterError, match="rapl: no zones"):
        meters.create("rapl", root=str(tmp_path)).open()


def test_nvml_power_and_energy_counter(monkeypatch):
    powers, energies = [150000, 70000], [1000000, 2000000]
    mod = fake_pynvml(powers, energies)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    meter = meters.create("nvml")
    meter.open()
    energies[0] += 1500
    energies[1] += 700
    got = {s.rail: s for s in meter.read()}
    assert got["gpu0"].power_w == 150.0 and got["gpu1"].power_w == 70.0
    assert got["total"].power_w == 220.0
    assert got["total"].meter_energy_j == pytest.approx(2.2)
    meter.close()
    assert mod.state["init"] == 0
    assert meters.get("nvml").probe() == (True, "2 NVIDIA GPU(s)")


def test_nvml_without_energy_counter(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([50000], [None]))
    meter = meters.create("nvml", devices="0")
    meter.open()
    got = meter.read()
    assert [s.meter_energy_j for s in got] == [None, None]
    assert got[-1].power_w == 50.0


def test_nvml_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(meters.MeterError, match="pynvml not installed"):
        meters.create("nvml").open()
    assert meters.get("nvml").probe()[0] is False


def test_model_is_modelled_and_follows_cpu_time(monkeypatch):
    clock = Clock()
    cpu = [10.0]
    monkeypatch.setattr(model_meter, "now", clock)
    monkeypatch.setattr(model_meter, "_cpu_seconds", lambda: cpu[0])
    meter = meters.create("model", idle_w=2.0, busy_core_w=1.5)
    meter.open()
    clock.t += 2.0
    cpu[0] += 3.0  # 1.5 cores busy
    (s,) = meter.read()
    assert s.power_w == pytest.approx(2.0 + 1.5 * 1.5) and s.rail == "total"
    assert meter.method == meters.MODELLED
    assert dict((n, ok) for n, ok, _ in meters.detect())["model"] is True
    assert meter.trust <= min(meters.get(n).trust for n in meters.names())  # least trusted
    row = energy.by_phase([s], [("run", 0, 0.0, 1.0)])[0]
    assert row["method"] == "modelled" and row["uncertainty_pct"] >= 50.0


def test_model_runs_in_the_background():
    with meters.create("model", interval_s=0.05) as meter:
        sum(i * i for i in range(200000))
        time.sleep(0.2)
    got = meter.samples()
    assert len(got) >= 3 and all(s.power_w >= 2.0 for s in got)
