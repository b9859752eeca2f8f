"""Record a meter while a duration passes or a command runs, and write the run files.

The command-line `ebedge meters record` is a thin shell over `record()`; `write_energy()` is
shared with `meters replay`. samples.csv is appended and flushed as samples arrive, so a crash
loses at most the last drain period; energy.csv is written at the end.
"""
import csv
import os
import subprocess
import time

from ebedge.measure import energy
from ebedge.measure.accounting import write_energy_csv
from ebedge.config.formats import PHASE_COLUMNS, SAMPLE_COLUMNS
from ebedge.util.safeio import CsvLog
from meters.base import TOTAL, MeterError, now


class Recording(object):
    """What `record()` did: window, command exit code, samples, energy rows, and `meter_error`:
    why the meter stopped and/or the failed reads it survived (None when it read cleanly)."""

    def __init__(self, run_id, out_dir, t_start, t_end, exit_code, samples, rows, meter_info,
                 meter_error):
        self.run_id = run_id
        self.out_dir = out_dir
        self.t_start = t_start
        self.t_end = t_end
        self.exit_code = exit_code
        self.samples = samples
        self.rows = rows
        self.meter_info = meter_info
        self.meter_error = meter_error

    def total_row(self):
        """The energy row of the `total` rail, or None when the board total is unknown."""
        for row in self.rows:
            if row["rail"] == TOTAL:
                return row
        return None


def _cell(v):
    return "" if v is None else v


class SampleWriter(object):
    """samples.csv, started afresh, appended and flushed by the caller's rhythm."""

    def __init__(self, path, run_id):
        self.run_id = run_id
        if os.path.exists(path):
            os.remove(path)
        self._log = CsvLog(path, SAMPLE_COLUMNS)

    def write(self, samples):
        self._log.write([[self.run_id] + [_cell(v) for v in s.as_row()] for s in samples])

    def close(self):
        self._log.close()


def write_energy(out_dir, samples, phases, run_id, idle_power_w=None, nominal_interval_s=None):
    """energy.csv (and phases.csv) for `phases` = [(phase, epoch, t0, t1, wall0, wall1)];
    `nominal_interval_s` (default: the median spacing) sets what counts as a gap."""
    rows = energy.by_phase(samples, [p[:4] for p in phases], idle_power_w=idle_power_w,
                           run_id=run_id, nominal_interval_s=nominal_interval_s)
    write_energy_csv(os.path.join(out_dir, "energy.csv"), rows)
    with open(os.path.join(out_dir, "phases.csv"), "w") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(PHASE_COLUMNS)
        for p in phases:
            w.writerow([run_id] + [_cell(v) for v in p])
    return rows


def _wait_for_sample_after(meter, t, timeout_s, keep):
    """Drain into `keep` until a sample newer than `t` arrives (edges then interpolate)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = meter.samples()
        keep(got)
        if any(s.t_mono > t for s in got):
            return True
        if meter.error is not None:
            raise MeterError("%s stopped: %s" % (meter.name, meter.error))
        time.sleep(min(0.02, meter.interval_s / 4))
    return False


def record(meter, out_dir, duration_s=None, command=None, run_id=None, drain_s=0.5, also=None):
    """Sample `meter` for `duration_s` seconds or while `command` (argv list) runs; `also`, a
    callable, gets every batch of samples too (the Prometheus exporter).

    The window opens once the meter has delivered its first sample and closes when the command
    ends or the time is up; one more sample after it is awaited so both edges interpolate.
    Returns a Recording; the command's exit code is in `exit_code` (130 after Ctrl-C).
    """
    if (duration_s is None) == (not command):
        raise ValueError("give exactly one of a duration or a command")
    if duration_s is not None and duration_s <= 0:
        raise ValueError("duration must be positive, got %r" % duration_s)
    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    run_id = run_id or os.path.basename(os.path.normpath(os.path.abspath(out_dir)))
    writer = SampleWriter(os.path.join(out_dir, "samples.csv"), run_id)
    kept = []

    def keep(samples):
        kept.extend(samples)
        writer.write(samples)
        if also is not None:
            also(samples)

    settle_s = max(2.0, 10 * meter.interval_s)
    exit_code = None
    try:
        with meter:
            _wait_for_sample_after(meter, float("-inf"), settle_s, keep)
            t_start, wall_start = now()
            try:
                if command:
                    exit_code = _run_command(command, lambda: keep(meter.samples()), drain_s)
                else:
                    end = t_start + duration_s
                    while time.monotonic() < end:
                        time.sleep(min(drain_s, max(0.0, end - time.monotonic())))
                        keep(meter.samples())
            except KeyboardInterrupt:
                exit_code = 130
            t_end, wall_end = now()
            _wait_for_sample_after(meter, t_end, settle_s, keep)
        keep(meter.samples())
    finally:
        writer.close()
    phases = [("record", 0, t_start, t_end, wall_start, wall_end)]
    rows = write_energy(out_dir, kept, phases, run_id)
    err = "; ".join(str(e) for e in (meter.error, meter.fault_summary()) if e is not None) or None
    return Recording(run_id, out_dir, t_start, t_end, exit_code, kept, rows, meter.describe(), err)


def _run_command(command, drain, drain_s):
    try:
        proc = subprocess.Popen(command)
    except OSError as exc:
        raise ValueError("cannot run %s: %s" % (command[0], exc))
    try:
        while True:
            try:
                return proc.wait(timeout=drain_s)
            except subprocess.TimeoutExpired:
                drain()
    except KeyboardInterrupt:  # the child got the same SIGINT; let it finish
        proc.wait()
        raise
