"""Each serial driver against its pty simulator: joules measured vs the profile's exact integral.

Profiles have steps and ramps whose segment lengths are whole multiples of the meter's sample
period and whose up and down steps (and ramps) balance over one period. Over exactly one
period the trapezoid rule's step and kink errors then cancel, so what is left is the driver's
own error (scaling, timestamps, lost or doubled records): 0.5% is a tight bound for that.
Faults on: dribbled bytes and leading garbage. Wall time: about 30 s in all.
"""
import os
import time

import pytest

import meters
from ebedge.measure.energy import integrate
from meters.sim import registry
from meters.sim.lines_sim import LinesSimulator
from meters.sim.profile import PowerProfile
from meters.sim.scpi_sim import KeysightSimulator, YokogawaSimulator
from meters.sim.um_sim import UMSimulator
from meters.sim.wattsup_sim import WattsupSimulator

FAST = "2:0.3, 5:0.3, 5-7:0.6, 4-2:0.6"  # 1.8 s: for meters at 10 Hz and faster
SCPI_GARBAGE = b"\xff\x00line noise\n"


def record(sim, seconds, driver, **options):
    """Samples of `seconds` of recording with a fresh driver on the simulator's port."""
    meter = meters.create(driver, port=sim.path, **options)
    with meter:
        time.sleep(seconds)
    assert meter.error is None
    return meter, meter.samples()


def one_period(sim, samples):
    """(measured WindowEnergy, true joules) over one profile period from the first sample."""
    a = samples[0].t_mono
    b = a + sim.profile.period
    assert samples[-1].t_mono >= b - 0.01, "recording shorter than one period"
    return integrate(samples, a, b), sim.energy_between(a, b)


def assert_close(measured, truth, rel):
    assert truth > 0
    assert abs(measured.energy_j - truth) <= rel * truth, (measured, truth)
    assert measured.covered_frac > 0.99


@pytest.mark.slow
def test_wattsup_one_hz_records_integrate_to_the_truth():
    profile = PowerProfile.parse("5:2, 11:2, 11-15:2, 9-5:2")  # seconds-long: 1 s records
    with WattsupSimulator(profile, dribble=True, garbage=b"\x00\xffjunk#d,-,18,1") as sim:
        meter, samples = record(sim, profile.period + 1.6, "wattsup")
    assert meter.identity.startswith("Watts up?")
    gaps = [b.t_mono - a.t_mono for a, b in zip(samples, samples[1:])]
    assert all(0.9 < g < 1.1 for g in gaps)  # one record per logging second
    assert all(s.voltage_v == pytest.approx(230.0) for s in samples)
    measured, truth = one_period(sim, samples)
    assert_close(measured, truth, 0.005)


@pytest.mark.slow
def test_um25c_polled_at_2hz_with_its_mwh_counter():
    profile = PowerProfile.parse("2:1, 5:0.5, 5-7:1, 4-2:1")
    with UMSimulator(profile, model="UM25C", dribble=True,
                     garbage=b"\x09\xc9\x00\x13junk\xff\xf1") as sim:
        meter, samples = record(sim, profile.period + 0.8, "um")
    assert meter.model == "UM25C"
    measured, truth = one_period(sim, samples)
    assert_close(measured, truth, 0.005)
    assert samples[0].voltage_v == pytest.approx(5.1)
    # the meter's own counter steps in 1 mWh = 3.6 J: within two steps of the truth
    assert abs(measured.meter_energy_j - truth) <= 2 * 3.6


def test_yokogawa_reads_every_update_once_and_reports_its_integrator():
    profile = PowerProfile.parse(FAST)
    with YokogawaSimulator(profile, dribble=True, garbage=SCPI_GARBAGE) as sim:
        meter, samples = record(sim, profile.period + 0.6, "scpi", interval_s=0.1)
    assert meter.identity.startswith("YOKOGAWA,WT310E")
    counters = [s.meter_energy_j for s in samples]
    assert all(b > a for a, b in zip(counters, counters[1:]))  # a new update every time
    gaps = [b.t_mono - a.t_mono for a, b in zip(samples, samples[1:])]
    assert all(0.05 < g < 0.15 for g in gaps)
    measured, truth = one_period(sim, samples)
    assert_close(measured, truth, 0.005)
    assert measured.meter_energy_j == pytest.approx(truth, rel=0.005)


@pytest.mark.parametrize("has_power", [True, False], ids=["MEAS:POW", "V-times-I"])
def test_keysight_power_or_volts_times_amps(has_power):
    profile = PowerProfile.parse(FAST)
    with KeysightSimulator(profile, has_power=has_power, dribble=True,
                           garbage=SCPI_GARBAGE) as sim:
        meter, samples = record(sim, profile.period + 0.5, "scpi", profile="keysight")
    assert meter.profile.has_power is has_power
    assert all((s.voltage_v is None) is has_power for s in samples)
    measured, truth = one_period(sim, samples)
    assert_close(measured, truth, 0.005)


@pytest.mark.parametrize("style,options", [
    ("csv", {}),
    ("text", {"pattern": r"Power:\s*(?P<power_mw>[-\d.]+)\s*mW"}),
])
def test_line_device_at_50hz(style, options):
    profile = PowerProfile.parse(FAST)
    with LinesSimulator(profile, style=style, interval_s=0.02, dribble=True) as sim:
        meter, samples = record(sim, profile.period + 0.3, "lines", interval_s=0.02, **options)
    measured, truth = one_period(sim, samples)
    assert_close(measured, truth, 0.005)


def test_registry_starts_every_serial_kind_behind_a_symlink():
    for kind in ("wattsup", "yokogawa", "keysight", "um", "lines"):
        handle = registry.start(kind, PowerProfile.parse(FAST))
        try:
            info = dict(handle.info)
            assert os.path.islink(info["port"]) and repr(info["port"]) in info["read it with"]
        finally:
            handle.stop()
        assert not os.path.exists(info["port"])
