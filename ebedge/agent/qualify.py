"""The board's half of `ebedge remote qualify`: run the qualification protocol's loads here and
sample this board's meter, while the laptop records the reference and the clock.

What it writes, into `<root>/.qualify/<id>/` (hidden, so no run listing takes it for a run):
samples.csv and phases.csv in the run-directory formats (a window is a phase "level/k" with both
monotonic and wall edges, so the laptop can place its samples as it does for `--meter-local`) and
energy.csv (the board meter per window). The runs root's run lock is held throughout: a training
run would disturb the loads, and the loads the run.

Device side: Python 3.6, standard library (plus ebedge and meters).
"""
import multiprocessing
import os
import signal

from ebedge.agent.layout import runs_root
from ebedge.errors import EbedgeError
from ebedge.measure import board, calibration, loads, qualify
from ebedge.measure.recording import SampleWriter, write_energy
from ebedge.run import runlock
from ebedge.run.runid import check_run_id
from meters.base import now

QUALIFY_DIR = ".qualify"


def _stop_on_hangup(signum, frame):
    raise SystemExit("ebedge agent qualify: signal %d, loads stopped" % signum)


def qualify_here(meter, options, windows, window_s, settle_s, qualification_id, root=None):
    """Run the protocol under the runs root's lock; returns what the laptop needs to analyse
    it: {"out", "protocol", "meters", "errors", "board" (the calibration identity)}."""
    root = runs_root(root)
    qualification_id = check_run_id(qualification_id, "--id")
    out = os.path.join(root, QUALIFY_DIR, qualification_id)
    protocol = qualify.Protocol(qualify.default_levels(multiprocessing.cpu_count(),
                                                       loads.cuda_available()),
                                windows, window_s, settle_s)
    lock = runlock.acquire(root, "qualify-" + qualification_id)
    for signum in (signal.SIGHUP, signal.SIGTERM):  # the loads stop with the process
        signal.signal(signum, _stop_on_hangup)
    try:
        if os.path.exists(out):
            raise EbedgeError("qualification %s already exists on this board (%s)"
                              % (qualification_id, out))
        os.makedirs(out)
        samples, got, described, errors = qualify.record([meter], protocol, {meter: options})
        writer = SampleWriter(os.path.join(out, "samples.csv"), qualification_id)
        writer.write(samples)
        writer.close()
        mono, wall = now()
        write_energy(out, samples, qualify.window_phases(got, wall - mono), qualification_id)
    finally:
        lock.release()
    return {"out": out, "protocol": protocol.describe(), "meters": described, "errors": errors,
            "board": calibration.identity(board.snapshot())}


def save_profile(profile):
    """Store a calibration profile the laptop made from a remote qualification; its path."""
    if not isinstance(profile, dict) or not all(
            isinstance(profile.get(k), str) for k in ("name", "meter")):
        raise EbedgeError("not a calibration profile")
    if profile["name"] != calibration.profile_name(profile.get("board") or {}, profile["meter"]):
        raise EbedgeError("calibration profile name %r does not match its board and meter"
                          % profile["name"][:80])
    return calibration.save(profile)
