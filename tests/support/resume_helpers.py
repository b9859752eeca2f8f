"""Real runs for the resume fault tests: subprocesses of `ebedge train`, killed for real, on a
fake INA3221 sysfs tree whose power has an exact integral."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from meters.sim.profile import PowerProfile
from meters.sim.sysfs import FakeIna3221Tree

# epochs of about a second (device-resident data is fast): long enough to be killed inside one
TINY = ["--model", "vgg11", "--width", "0.0625", "--limit-train", "1024", "--limit-test", "32",
        "--batch-size", "4", "--device", "cpu", "--quiet", "--epsilon", "0.5",
        "--meter-interval", "0.05"]
PROFILE = "6:0.7,11:0.9,4-9:0.6"  # watts: steps and a ramp, so timing errors show
PROFILE_SWING_W = 11.0 - 4.0  # the most the profile's power differs between two instants


def fake_tree(root):
    """A TX2 tree rewritten at 200 Hz (its total is VDD_IN = the profile)."""
    return FakeIna3221Tree(str(root), "tx2", PowerProfile.parse(PROFILE)).start(200.0)


def meter_args(tree):
    return ["--meter", "ina3221", "--meter-option", "ina3221.root=%s" % tree.root,
            "--meter-interval", "0.02"]


def train_cmd(args):
    return [sys.executable, "-m", "ebedge.cli", "train"] + list(args)


def start(args, env=None, **kwargs):
    return subprocess.Popen(train_cmd(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env, **kwargs)


def run(args, env=None, timeout=300, **kwargs):
    return subprocess.run(train_cmd(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env=env, timeout=timeout, **kwargs)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def summary(out):
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


def wait_for_epochs(out, n, proc, timeout=240):
    """Block until epochs.csv holds n rows (written with the epoch's checkpoint, as the next epoch
    starts), then until the run has left a sign of life inside that next epoch (a flushed sample
    past its last phase row; runs without a meter: a moment), so a kill there loses real work."""
    path = os.path.join(out, "epochs.csv")
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail("run ended early: %s" % proc.stdout.read().decode())
        seen = len(rows(path)) if os.path.exists(path) else 0
        if seen >= n:
            break
        time.sleep(0.01)
    else:
        pytest.fail("no epoch finished in time")
    last_end = max(float(r["t_end_mono"]) for r in rows(os.path.join(out, "phases.csv")))
    samples = os.path.join(out, "samples.csv")
    metered = os.path.exists(samples) and len(rows(samples)) > 0
    flushed = time.time() + (2.0 if metered else 0.1)  # samples reach the file twice a second
    while time.time() < flushed:
        if metered and any(float(r["t_mono"]) > last_end + 0.05 for r in rows(samples)[-20:]):
            break
        time.sleep(0.02)
    if len(rows(path)) > seen:
        pytest.fail("an epoch ended while waiting to kill: epochs too short for this test")


def kill_mid_epoch(args, out, epochs_done=1, env=None):
    """Start a run, SIGKILL it inside epoch `epochs_done`; returns the monotonic kill time."""
    proc = start(args, env=env)
    wait_for_epochs(out, epochs_done, proc)
    proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    proc.wait()
    return killed


def energy_row(out, phase, meter="ina3221", rail="total"):
    for r in rows(os.path.join(out, "energy.csv")):
        if r["phase"] == phase and r["meter"] == meter and r["rail"] == rail:
            return r
    return None


def assert_energy_matches(row, exact, extra_pct=2.0):
    """energy.csv `row` agrees with the exact joules within its own stated uncertainty (meter
    accuracy + uncovered share) plus `extra_pct` for interpolation, plus what no meter can know
    at the window's two edges: a step of the profile between the readings around an edge moves
    the energy by up to the swing times their spacing (which decides on a window of a few
    readings, such as the `lost` tail of a run killed under load)."""
    edges_j = 2 * PROFILE_SWING_W * float(row["max_gap_s"])
    bound = exact * (float(row["uncertainty_pct"]) + extra_pct) / 100.0 + edges_j
    assert abs(float(row["energy_j"]) - exact) <= bound, (row["phase"], row["energy_j"], exact)
    return bound


def truth(tree, phase_rows):
    """Exact joules of the board total over the given phases.csv rows."""
    return sum(tree.truth(float(r["t_start_mono"]), float(r["t_end_mono"])) for r in phase_rows)
