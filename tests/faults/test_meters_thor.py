"""The INA3221 meter gives AGX Thor a total from the carrier's INA238 (VIN, outside the
ina3221 driver), and keeps going when a read fails, on a fake Thor tree laid out as on the board."""
import os
import time

import pytest

import meters
from ebedge.measure import energy
from meters.base import GAP, TOTAL
from meters.sim.profile import PowerProfile
from meters.sim.sysfs import FakeIna3221Tree


def test_thor_total_is_the_ina238_vin(tmp_path):
    prof = PowerProfile.parse("18-30:10")
    tree = FakeIna3221Tree(str(tmp_path), "thor", prof, t0=0.0)
    tree.write(4.0)
    dev = tmp_path / "sys/bus/i2c/drivers/ina238/2-0044/hwmon/hwmon2"
    assert (dev / "name").read_text().strip() == "ina238"
    assert int((dev / "power1_input").read_text()) == pytest.approx(prof.power(4.0) * 1e6, rel=1e-6)
    meter = meters.create("ina3221", root=str(tmp_path))
    meter.open()
    by = {s.rail: s for s in meter.read()}
    assert meter.total_rails == ["VIN"]
    assert by[TOTAL].power_w == pytest.approx(prof.power(4.0), abs=0.001)  # uW -> W
    assert by["VIN"].voltage_v == pytest.approx(19.0)
    assert by["VIN_SYS_5V0"].power_w < by[TOTAL].power_w  # a branch, never the total


def test_thor_keeps_measuring_through_failed_vin_reads(tmp_path):
    prof = PowerProfile.parse("25:100")
    tree = FakeIna3221Tree(str(tmp_path), "thor", prof)
    tree.start(rate_hz=200.0)
    try:
        with meters.create("ina3221", interval_s=0.05, root=str(tmp_path)) as meter:
            time.sleep(0.5)
            tree.vanish("VIN", 0.2).join()  # a conversion that timed out, twice over
            # and an empty read, as a driver that gave up returns
            power = os.path.join(str(tmp_path), "sys/bus/i2c/drivers/ina238/2-0044/hwmon/hwmon2",
                                 "power1_input")
            time.sleep(0.3)
            tree.stop()
            with open(power, "w"):
                pass
            time.sleep(0.2)
            tree.start(rate_hz=200.0)
            time.sleep(0.5)
    finally:
        tree.close()
    assert meter.error is None and meter.read_errors >= 2
    totals = [s for s in meter.samples() if s.rail == TOTAL]
    assert sum(GAP in s.flags for s in totals) == 2
    w = energy.integrate(totals, totals[0].t_mono, totals[-1].t_mono)
    assert w.covered_frac < 1 - 0.35 / (totals[-1].t_mono - totals[0].t_mono)
    assert w.energy_j == pytest.approx(25.0 * w.covered_s, rel=1e-3)
