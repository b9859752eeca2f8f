"""The jtop meter reads jetson-stats as each version really shapes `jetson.power`
(tests/support/jtop_fake.py, from its source at 3.1.4, 4.0.0, 4.1.5, 4.2.12, 4.3.1), stops with a
message when the service dies, and does not stamp a slower service's repeats as new readings."""
import itertools
import sys
import time

import pytest

from support import jtop_fake
import meters
from meters.base import TOTAL

TX2 = [("VDD_SYS_GPU", 152), ("VDD_SYS_SOC", 687), ("VDD_4V0_WIFI", 0), ("VDD_IN", 3056),
       ("VDD_SYS_CPU", 152), ("VDD_SYS_DDR", 883)]  # fixtures/tegrastats/tx2-jp4-l4t32.txt
AGX_ORIN = [("VDD_GPU_SOC", 2399), ("VDD_CPU_CV", 400), ("VIN_SYS_5V0", 4032), ("NC", 0),
            ("VDDQ_VDD2_1V8AO", 301), ("NC", 0)]  # fixtures/tegrastats/agx-orin-jp5.txt


def one_read(monkeypatch, sock, version, rails, **options):
    power = jtop_fake.power_of(version, rails)
    monkeypatch.setitem(sys.modules, "jtop", jtop_fake.module(version, lambda: power))
    meter = meters.create("jtop", socket_path=sock, **options)
    meter.open()
    try:
        return {s.rail: s.power_w for s in meter.read()}, meter
    finally:
        meter.close()


@pytest.mark.parametrize("version", ["3.1.4", "4.0.0"])
def test_tx2_on_old_jetson_stats_gets_its_vdd_in_total(monkeypatch, sock, version):
    got, meter = one_read(monkeypatch, sock, version, TX2)
    assert got[TOTAL] == pytest.approx(3.056) and meter.total_rails == ["VDD_IN"]
    assert set(got) == {n for n, _ in TX2} | {TOTAL}


@pytest.mark.parametrize("version", ["4.0.0", "4.1.5"])
def test_agx_orin_on_jetson_stats_4_0_and_4_1_gets_the_documented_sum(monkeypatch, sock, version):
    got, meter = one_read(monkeypatch, sock, version, AGX_ORIN)
    assert "VDDQ_VDD2_1V8AO" in got and "VIN_SYS_5V0" in got  # names as tegrastats prints them
    assert got[TOTAL] == pytest.approx(6.831)
    assert meter.total_rails == ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"]


def test_total_rails_override_sees_the_input_rail_on_4_2(monkeypatch, sock):
    got, meter = one_read(monkeypatch, sock, "4.2.12", TX2, total_rails="VDD_IN+VDD_SYS_CPU")
    assert got[TOTAL] == pytest.approx(3.056 + 0.152, abs=0.01)
    assert meter.total_rails == ["VDD_IN", "VDD_SYS_CPU"]


def test_a_dead_service_stops_the_meter_with_a_message(monkeypatch, sock):
    mod = jtop_fake.module("4.3.1", lambda: jtop_fake.power_of("4.3.1", TX2))
    monkeypatch.setitem(sys.modules, "jtop", mod)
    meter = meters.create("jtop", interval_s=0.05, socket_path=sock)
    with meter:
        time.sleep(0.4)
        before = len(meter.samples())
        mod.service_dead = True
        time.sleep(0.4)
        after = meter.samples()
    assert before > 0
    assert len(after) <= 2 * (len(TX2) + 1)  # the poll in flight at most, no repeated reading
    assert "service stopped" in str(meter.error)


def test_repeats_of_a_slower_service_are_not_new_readings(monkeypatch, sock):
    ticks = itertools.count()
    t0 = time.monotonic()

    def power():  # the service updates once every 0.5 s; the power changes each time
        tick = int((time.monotonic() - t0) / 0.5)
        next(ticks)
        return jtop_fake.power_of("4.3.1", [("VDD_IN", 3000 + 100 * tick), ("VDD_SOC", 500)])
    mod = jtop_fake.module("4.3.1", power, service_interval=0.5)
    monkeypatch.setitem(sys.modules, "jtop", mod)
    meter = meters.create("jtop", interval_s=0.05, socket_path=sock)
    with meter:
        time.sleep(1.6)
    totals = [s for s in meter.samples() if s.rail == TOTAL]
    assert next(ticks) > 15  # polled often
    values = [s.power_w for s in totals]
    assert len(values) == len(set(values)) and 3 <= len(values) <= 5  # one per service tick
    assert meter.repeats_dropped > 10
