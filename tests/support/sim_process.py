"""A fake sysfs power tree played by its own process (`ebedge meters simulate`), so a training
loop in the test process cannot starve the simulator's writer thread of the GIL (which the
meter would rightly report as a gap: a source that stops updating)."""
import contextlib
import os
import subprocess
import sys

from meters.sim.profile import PowerProfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class SimTree(object):
    def __init__(self, root, profile, t0):
        self.root = root
        self.profile = profile
        self.t0 = t0

    def truth(self, t0_mono, t1_mono):
        """Exact joules between two monotonic times (the clock is system-wide)."""
        return self.profile.energy(t0_mono - self.t0, t1_mono - self.t0)


@contextlib.contextmanager
def ina3221_process(root, spec, board="tx2", rate_hz=500):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "ebedge", "meters", "simulate",
                             "ina3221-" + board, "--power-profile", spec, "--duration", "900",
                             "--option", "root=" + root, "--option", "rate_hz=%d" % rate_hz],
                            stdout=subprocess.PIPE, universal_newlines=True, env=env)
    try:
        info = {}
        for line in proc.stdout:
            key, _, value = line.strip().partition("=")
            info[key] = value
            if key == "t0_mono":
                break
        assert "t0_mono" in info, "the simulator did not start"
        yield SimTree(info["root"], PowerProfile.parse(spec), float(info["t0_mono"]))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def check_against_truth(measurements, tree, meter="ina3221", at_least=3):
    """Every fully covered window matches the exact integral (2%); a window a loaded machine
    stalled the meter in is flagged as a gap, not wrong; at least `at_least` are fully covered."""
    import pytest
    for m in measurements:
        assert (m.meter, m.method) == (meter, "measured")
        if m.covered_frac < 0.999:
            assert any(f.startswith("gap: ") for f in m.flags), m
            continue
        assert m.energy_j == pytest.approx(tree.truth(m.t_start, m.t_end), rel=0.02), m
    assert sum(m.covered_frac >= 0.999 for m in measurements) >= at_least
