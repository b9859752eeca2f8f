"""The sampler reads its meters in a process of its own: work that holds this process's
interpreter lock does not stop it, and the samples arrive with their own timestamps."""
import sys
import threading
import time

import pytest

import meters
from ebedge.errors import EbedgeError
from ebedge.measure import energy
from ebedge.measure.sampling import MeterSampler
from meters.sim.profile import PowerProfile
from meters.sim.sysfs import FakeIna3221Tree

INTERVAL = 0.02


def hold_the_lock(seconds):
    """Pure-Python work that keeps the interpreter lock for `seconds`: no other thread of this
    process runs meanwhile (the switch interval is longer than the work)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(10.0 * seconds)
    try:
        a = time.monotonic()
        n = 0
        while time.monotonic() - a < seconds:
            n += 1
        return a, time.monotonic()
    finally:
        sys.setswitchinterval(old)


def test_a_phase_holding_the_interpreter_lock_is_covered_at_the_configured_rate(tmp_path):
    profile = PowerProfile([(4.0, 4.0, 0.7), (4.0, 12.0, 1.0), (12.0, 5.0, 1.3)])
    tree = FakeIna3221Tree(str(tmp_path / "sys"), "tx2", profile).start(1000.0, process=True)
    got = []
    ticks = []  # a thread of this process: it stops while the lock is held
    stop = threading.Event()

    def tick():
        while not stop.wait(0.005):
            ticks.append(time.monotonic())
    sampler = MeterSampler(["ina3221"], got.extend, {"ina3221": {"root": tree.root}}, INTERVAL)
    try:
        sampler.start()
        threading.Thread(target=tick, daemon=True).start()
        time.sleep(0.5)
        a, b = hold_the_lock(1.0)
        sampler.settle(b)
    finally:
        stop.set()
        errors = sampler.stop()
        tree.close()
    assert errors == []
    assert not [t for t in ticks if a + 0.05 < t < b - 0.05]  # the lock really was held
    total = [s for s in got if s.rail == "total"]
    inside = [s for s in total if a <= s.t_mono < b]
    # the configured rate, less what a loaded CI machine's scheduler takes (a sampler thread
    # in this process would have read nothing at all in [a, b])
    assert len(inside) >= 0.6 * (b - a) / INTERVAL
    times = [a] + [s.t_mono for s in inside] + [b]
    assert max(y - x for x, y in zip(times, times[1:])) < 0.25
    # each reading is the power at its own timestamp (taken when read, not when delivered a
    # second later): on the 8 W/s ramp, within 0.1 s of it (the simulator's writer lags too)
    for s in inside:
        assert s.power_w == pytest.approx(profile.power(s.t_mono - tree.t0), abs=0.8)
    w = energy.integrate(total, a, b, nominal_interval_s=INTERVAL)
    assert w.covered_frac > 0.7 and w.n_samples == len(inside)


def test_a_meter_that_cannot_open_is_one_line_from_the_process(tmp_path):
    with pytest.raises(EbedgeError, match="^ina3221: no INA3221 rails under"):
        MeterSampler(["ina3221"], list.extend, {"ina3221": {"root": str(tmp_path)}})
    with pytest.raises(EbedgeError, match="^meter model: .*unexpected keyword"):
        MeterSampler(["model"], list.extend, {"model": {"bogus": 1}})


def test_a_meter_error_is_named_once(monkeypatch, tmp_path):
    """A driver's message that already names its meter is not prefixed again ("jtop: jtop:")."""
    tree = FakeIna3221Tree(str(tmp_path / "sys"), "tx2", PowerProfile([(5.0, 5.0, 1.0)]))
    sampler = MeterSampler(["ina3221"], list, {"ina3221": {"root": tree.root}}, 0.05)
    sampler.meters[0].error = "ina3221: gone"
    monkeypatch.setattr(sampler._process, "stop", lambda: None)
    assert sampler.stop() == ["ina3221: gone"]
    sampler.meters[0].error = meters.MeterError("no device")
    assert sampler.stop() == ["ina3221: no device"]
    sampler._process.__class__.stop(sampler._process)
    tree.close()
