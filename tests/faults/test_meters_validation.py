"""Impossible readings are flagged and left out of the energy (never integrated), and a
meter's own energy counter that goes backwards is a reset, not a loss. A 5 GW line with a valid
checksum comes from the line-printing sensor simulator through the real `lines` driver."""
import time

import numpy as np
import pytest

import meters
from ebedge.measure import energy
from meters.base import OVERRANGE, Sample
from meters.sim.lines_sim import LinesSimulator
from meters.sim.profile import PowerProfile


def test_a_5gw_line_with_a_valid_checksum_is_flagged_and_left_out():
    profile = PowerProfile.parse("2:0.8, 5000000000:0.05, 2:3")
    with LinesSimulator(profile, interval_s=0.02) as sim:
        meter = meters.create("lines", port=sim.path)
        with meter:
            time.sleep(2.0)
    samples = meter.samples()
    assert meter.error is None
    bad = [s for s in samples if OVERRANGE in s.flags]
    assert bad and all(s.power_w > 1e9 for s in bad)  # the glitch arrived, checksum and all
    a, b = samples[0].t_mono, samples[-1].t_mono
    row = energy.by_phase(samples, [("run", 0, a, b)])[0]
    assert "overrange:%d" % len(bad) in row["flags"] and "gap:" in row["flags"]
    covered = row["duration_s"] * row["covered_frac"]
    assert row["energy_j"] == pytest.approx(2.0 * covered, rel=0.01)  # not 2.5e8 J
    assert covered < row["duration_s"] - 0.05  # the glitch's interval is a gap, not bridged


def series(powers, dt=0.1, counter=None):
    return [Sample(k * dt, 1e9 + k * dt, "ina3221", "total", p,
                   meter_energy_j=None if counter is None else counter[k])
            for k, p in enumerate(powers)]


def test_numpy_nan_inf_and_negative_readings_are_left_out():
    powers = [4.0] * 30
    powers[5] = np.float32("nan")
    powers[12] = np.float32("inf")
    powers[20] = -3.0
    row = energy.by_phase(series(powers), [("run", 0, 0.0, 2.9)])[0]
    assert row["flags"] == "gap:3|nan:2|negative:1"
    # each bad reading takes its two intervals out: 2.9 s - 3 x 0.2 s covered, at 4 W
    assert row["covered_frac"] == pytest.approx(2.3 / 2.9)
    assert row["energy_j"] == pytest.approx(4.0 * 2.3)


def test_a_counter_that_goes_backwards_was_reset():
    powers = [5.0] * 41
    counter = [5.0 * 0.1 * k for k in range(21)] + [5.0 * 0.1 * k for k in range(1, 21)]
    row = energy.integrate(series(powers, counter=counter), 0.0, 4.0)
    assert row.energy_j == pytest.approx(20.0)
    # 0.5 J is lost between the last reading before the reset and the reset itself, not 10 J
    assert row.meter_energy_j == pytest.approx(20.0, abs=0.5 + 1e-9)
    assert row.flags["counter_reset"] == 1
