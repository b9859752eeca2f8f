"""The jtop meter reads jetson-stats as each version really shapes `jetson.power`
(meters/sim/jtop_client.py, from its source at 3.1.4, 4.0.0, 4.1.5, 4.2.12, 4.3.1), stops with a
message when the service dies, and does not stamp a slower service's repeats as new readings."""
import itertools
import sys
import time

import pytest

from meters.sim import jtop_client as jtop_fake
import meters
from meters import base
from meters import jtop as jtop_meter
from meters.base import TOTAL
from ebedge.measure import energy

TX2 = [("VDD_SYS_GPU", 152), ("VDD_SYS_SOC", 687), ("VDD_4V0_WIFI", 0), ("VDD_IN", 3056),
       ("VDD_SYS_CPU", 152), ("VDD_SYS_DDR", 883)]  # fixtures/tegrastats/tx2-jp4-l4t32.txt
AGX_ORIN = [("VDD_GPU_SOC", 2399), ("VDD_CPU_CV", 400), ("VIN_SYS_5V0", 4032), ("NC", 0),
            ("VDDQ_VDD2_1V8AO", 301), ("NC", 0)]  # fixtures/tegrastats/agx-orin-jp5.txt


def one_read(monkeypatch, version, rails, **options):
    power = jtop_fake.power_of(version, rails)
    monkeypatch.setitem(sys.modules, "jtop", jtop_fake.module(version, lambda: power))
    meter = meters.create("jtop", **options)
    meter.open()
    try:
        return {s.rail: s.power_w for s in meter.read()}, meter
    finally:
        meter.close()


@pytest.mark.parametrize("version", ["3.1.4", "4.0.0"])
def test_tx2_on_old_jetson_stats_gets_its_vdd_in_total(monkeypatch, version):
    got, meter = one_read(monkeypatch, version, TX2)
    assert got[TOTAL] == pytest.approx(3.056) and meter.total_rails == ["VDD_IN"]
    assert set(got) == {n for n, _ in TX2} | {TOTAL}


@pytest.mark.parametrize("version", ["4.0.0", "4.1.5"])
def test_agx_orin_on_jetson_stats_4_0_and_4_1_gets_the_documented_sum(monkeypatch, version):
    got, meter = one_read(monkeypatch, version, AGX_ORIN)
    assert "VDDQ_VDD2_1V8AO" in got and "VIN_SYS_5V0" in got  # names as tegrastats prints them
    assert got[TOTAL] == pytest.approx(6.831)
    assert meter.total_rails == ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"]


def test_total_rails_override_sees_the_input_rail_on_4_2(monkeypatch):
    got, meter = one_read(monkeypatch, "4.2.12", TX2, total_rails="VDD_IN+VDD_SYS_CPU")
    assert got[TOTAL] == pytest.approx(3.056 + 0.152, abs=0.01)
    assert meter.total_rails == ["VDD_IN", "VDD_SYS_CPU"]


def test_a_dead_service_stops_the_meter_with_a_message(monkeypatch):
    mod = jtop_fake.module("4.3.1", lambda: jtop_fake.power_of("4.3.1", TX2))
    monkeypatch.setitem(sys.modules, "jtop", mod)
    meter = meters.create("jtop", interval_s=0.05)
    with meter:
        time.sleep(0.4)
        before = len(meter.samples())
        mod.service_dead = jtop_fake.FakeJtopException("Lost connection with jtop server")
        time.sleep(0.4)
        after = meter.samples()
    assert before > 0
    assert len(after) <= 2 * (len(TX2) + 1)  # the poll in flight at most, no repeated reading
    assert "service failed" in str(meter.error) and "Lost connection" in str(meter.error)


def test_repeats_of_a_slower_service_are_not_new_readings(monkeypatch):
    ticks = itertools.count()

    def power():  # the service sends a reading every 0.5 s; the power changes each time
        return jtop_fake.power_of("4.3.1", [("VDD_IN", 3000 + 100 * next(ticks)), ("VDD_SOC", 500)])
    mod = jtop_fake.module("4.3.1", power, service_interval=0.5)
    monkeypatch.setitem(sys.modules, "jtop", mod)
    meter = meters.create("jtop", interval_s=0.05)
    with meter:
        time.sleep(1.6)
    totals = [s for s in meter.samples() if s.rail == TOTAL]
    values = [s.power_w for s in totals]
    assert len(values) == len(set(values)) and 3 <= len(values) <= 5  # one per service reading
    assert meter.repeats_dropped > 15  # polled often: the polls between readings were dropped
    assert not any(s.flags for s in totals)


@pytest.mark.slow
@pytest.mark.parametrize("version", jtop_fake.VERSIONS)
def test_a_frozen_service_is_a_flagged_gap_and_closing_does_not_hang(monkeypatch, version):
    """SIGSTOP on the service (or, on 3.x-4.1, its tegrastats child killed): the client still
    answers ok() with its last reading; the meter drops the repeats, then flags them `stale` once
    no reading came for STALE_PERIODS service intervals (2 s floor), and close() returns."""
    monkeypatch.setattr(base, "STALE_MIN_S", 0.5)
    ticks = itertools.count()
    mod = jtop_fake.module(version, lambda: jtop_fake.power_of(
        version, [(n, mw + next(ticks) % 2) for n, mw in TX2]), service_interval=0.02)
    monkeypatch.setitem(sys.modules, "jtop", mod)
    meter = meters.create("jtop", interval_s=0.02)
    meter.open()
    meter.start()
    time.sleep(0.5)
    mod.freeze()
    t_frozen = time.monotonic()
    time.sleep(1.5)
    meter.stop()
    t0 = time.monotonic()
    meter.close()
    assert time.monotonic() - t0 < jtop_meter.CLOSE_WAIT_S + 1.0 and meter.close_hung
    mod.thaw()
    totals = [s for s in meter.samples() if s.rail == TOTAL]
    fresh = [s for s in totals if "stale" not in s.flags]
    stale = [s for s in totals if "stale" in s.flags]
    assert fresh and stale and meter.stale_readings >= len(stale)
    assert max(s.t_mono for s in fresh) < t_frozen + 0.5 + 0.1  # nothing new after the limit
    assert min(s.t_mono for s in stale) > t_frozen + 0.5 - 0.05
    # the energy code leaves the frozen stretch out: covered only up to the last fresh reading
    w = energy.integrate(totals, t_frozen - 0.3, t_frozen + 1.4)
    assert w.covered_frac < 0.6 and w.flags.get("stale", 0) == len(
        [s for s in stale if s.t_mono < t_frozen + 1.4])


def test_jetson_stats_3_on_jetpack_5_is_refused_with_the_reason(monkeypatch):
    power = jtop_fake.power_of("3.1.4", AGX_ORIN, jetpack=5)
    monkeypatch.setitem(sys.modules, "jtop", jtop_fake.module("3.1.4", lambda: power))
    with pytest.raises(meters.MeterError, match="^jtop: jetson-stats 3.1.4 gives no power rails.*"
                                                "cannot parse JetPack 5"):
        meters.create("jtop").open()
    assert sys.modules["jtop"].opened[0].closed
