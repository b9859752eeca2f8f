"""`ebedge remote run` and `collect`: settings out, a detached run on the board, its directory back.

A run: resolve the settings here (bad input fails before anything reaches the board), open the
connection, start the laptop meter and the clock channel when an external meter is used, start
the run detached through the agent, stream its log while connected, then pull the run directory
into `<results>/<host>/<run_id>/` and fold in the laptop's samples. If the connection drops the
run goes on; `collect` fetches it (finished or partial) any time later.
"""
import os
import re
import threading
import time

from ebedge.agent import check_run_id
from ebedge.errors import EbedgeError
from ebedge.remote import align
from ebedge.remote.clock import ClockChannel, PeriodicProbe
from ebedge.settings import resolve

CLOCK_PERIOD_S = 30.0


def local_run_dir(results, host, run_id):
    """`<results>/<host>/<run_id>`, with the host alias made safe as a directory name."""
    return os.path.join(results, re.sub(r"[^A-Za-z0-9._@-]", "_", host), run_id)


def default_run_id(settings):
    return "%s-%s-%s-%s" % (time.strftime("%Y%m%d-%H%M%S"), settings["method"], settings["model"],
                            settings["dataset"])


class LocalMeterSpec(object):
    """What `--meter-local NAME --port DEV --meter-option K=V` asked for."""

    def __init__(self, name, port=None, options=None):
        self.name = name
        self.port = port
        self.options = dict(options or {})


def run_remote(board, settings, results, run_id=None, local_meter=None, progress=None,
               if_exists="refuse", clock_period_s=CLOCK_PERIOD_S):
    """Run `settings` on `board` (a remote.board.Board); returns (final state, local run dir).

    Raises ConnectionLost when the connection drops mid-run (what was recorded is kept locally)."""
    progress = progress or (lambda text: None)
    connecting = _in_background(board.conn.connect)  # resolving imports torch: seconds
    try:
        settings = resolve(settings)
        run_id = check_run_id(run_id or default_run_id(settings))
    except EbedgeError:
        try:
            connecting()  # so that closing the connection finds it complete
        except EbedgeError:
            pass
        raise
    local = local_run_dir(results, board.host, run_id)
    connecting()
    progress("%s: connected (ssh master pid %s)" % (board.host, board.conn.master_pid()))
    meter = channel = probe = None
    estimates = []
    final = None
    try:
        if local_meter is not None:
            channel = ClockChannel(board.conn, board.remote_ebedge)
            estimates.append(channel.burst())
            meter = align.LaptopMeter(local_meter.name, os.path.join(local, align.LAPTOP,
                                                                     "samples.csv"),
                                      port=local_meter.port, options=local_meter.options)
            align.write_clock(local, estimates)
            meter.start()
            align.write_clock(local, estimates, meter.describe())
            probe = PeriodicProbe(channel, estimates, clock_period_s,
                                  lambda: align.write_clock(local, estimates, meter.describe()))
            probe.start()
        started = board.start(settings, run_id, if_exists=if_exists)
        progress("%s: run %s %s (pid %s) in %s" % (
            board.host, run_id, "adopted" if started.get("adopted") else "started",
            started.get("pid"), started["out"]))
        final = board.watch(run_id, lambda line: progress("%s| %s" % (board.host, line)))
        ended = time.monotonic()
    finally:
        if probe is not None:
            probe.stop()
        if channel is not None:
            if final is not None:
                try:
                    estimates.append(channel.burst())
                except EbedgeError:
                    pass
            channel.close()
        if meter is not None:
            if final is not None:  # let the last phase's end fall between two laptop samples
                time.sleep(max(0.0, meter.tail_s - (time.monotonic() - ended)))
            error = meter.stop()
            align.write_clock(local, estimates, meter.describe())
            if error is not None:
                progress("%s: laptop meter error: %s" % (board.host, error))
    collect(board, run_id, local, remote_out=started["out"])
    progress("%s: run %s %s -> %s" % (board.host, run_id, final["state"], local))
    return final, local


def _in_background(fn):
    """Start fn() in a thread; the returned callable waits for it and re-raises its error."""
    outcome = {}

    def target():
        try:
            fn()
        except Exception as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="background")
    thread.daemon = True
    thread.start()

    def wait():
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
    return wait


def collect(board, run_id, local, remote_out=None):
    """Pull the run (any state) into `local` and fold in laptop samples; returns the summary."""
    board.pull(run_id, local, remote_out=remote_out)
    return align.merge_laptop(local, host_alias=board.host)


def collect_all(board, results, run_id=None, progress=None):
    """Collect one run, or every run the board has; [(run_id, state, local dir)]."""
    progress = progress or (lambda text: None)
    states = [board.status(run_id)] if run_id else board.status()
    out = []
    for state in states:
        if state["state"] == "unknown":
            raise EbedgeError("%s has no run %s" % (board.host, state["run_id"]))
        local = local_run_dir(results, board.host, state["run_id"])
        collect(board, state["run_id"], local, remote_out=state["out"])
        progress("%s: %s (%s) -> %s" % (board.host, state["run_id"], state["state"], local))
        out.append((state["run_id"], state["state"], local))
    return out
