"""Monitor: named measurement windows around any code, measured like a run's phases.

    from ebedge import Monitor
    with Monitor(meters=["auto"]) as mon:
        mon.begin_window("epoch-1"); train_one_epoch(); m = mon.end_window("epoch-1")
        with mon.window("eval") as w:
            evaluate()
        print(m.energy_j, m.power_w, m.method, m.meter, w.result.flags)

A `MeterSampler` reads the meters in the background (as during a run); every window is
integrated by `ebedge.measure.energy.by_phase`, the code that integrates a run's phases, so a window
gets the same trapezoid over real timestamps, gap handling, idle subtraction and uncertainty as
a phase of the same span. Ending a window never waits for a meter: its energy is computed when
first read (after waiting, then, for a sample past its end) or by `close()`. With `log_dir`, samples.csv and windows.csv are appended as they happen
and energy.csv (computed from those files, as the runner does), config.json and summary.json are
written at `close()`, so `ebedge report DIR` reads the directory like a run's. With `log_to`
(`tensorboard:DIR`, `mlflow:URI`, `wandb:PROJECT` or Sink objects, see
ebedge.export.trackers) every window, once computed, and the closing summary also go to
those trackers. Where CUDA is in use, queued GPU work is finished at both edges of a window
(`sync_cuda`), so it is charged to the window that issued it.
Device side: Python 3.6, no torch import (trackers are imported only when asked for).
"""
import functools
import itertools
import os
import socket
import sys
import threading
import time

import ebedge
from ebedge.measure import accounting, energy
from ebedge.errors import EbedgeError
from ebedge.measure.devicesync import sync_cuda
from ebedge.measure.recording import SampleWriter
from ebedge.config.flags import Flag, store
from ebedge.config.formats import PHASE_COLUMNS
from ebedge.util.safeio import CsvLog, write_json_atomic
from ebedge.measure.sampling import MeterSampler
from meters.base import MEASURED, TOTAL, now

IDLE_WINDOW = "idle"
WINDOW_FILE = "windows.csv"  # phases.csv's columns; `phase` holds the window's name
MIN_COVERED_FRAC = 0.999  # below this, part of the window had no samples: flagged


_RESULT_FIELDS = ("rows", "per_rail", "rail", "method", "energy_j", "power_w", "net_energy_j",
                  "idle_power_w", "covered_frac", "uncertainty_pct", "flags")


class Measurement(object):
    """One window as measured.

    `energy_j`, `power_w` (average), `net_energy_j` (less idle power, once `measure_idle` ran)
    and `covered_frac` describe the primary meter's total rail (its `total`, else its first
    rail); `per_rail` is {rail: joules} of that meter; `rows` holds energy.csv rows for every
    meter and rail. `method` is `measured` or `modelled`; `flags` lists what makes the number
    less than a clean measurement (short window, gaps, meter errors).

    The energy fields are computed when first read (or at the latest by `Monitor.close()`), once
    the meters have read past the window's end, so ending a window never waits for a meter.
    """

    def __init__(self, monitor, name, t_start, t_end, extra_flags):
        self._monitor = monitor
        self._resolved = False
        self._extra_flags = extra_flags
        self.name = name
        self.t_start = t_start
        self.t_end = t_end
        self.seconds = t_end - t_start
        self.meter = monitor.meter

    def __getattr__(self, attr):  # only for attributes not set yet: the energy fields
        if attr in _RESULT_FIELDS and not self.__dict__.get("_resolved"):
            self._monitor._resolve(self, wait=True)
            return getattr(self, attr)
        raise AttributeError(attr)

    def _set(self, rows, flags):
        self.rows = rows
        self.flags = self._extra_flags + flags
        mine = [r for r in rows if r["meter"] == self.meter]
        self.per_rail = {r["rail"]: r["energy_j"] for r in mine}
        rails = {r["rail"]: r for r in mine}
        main = rails.get(TOTAL) or (rails[sorted(rails)[0]] if rails else {})
        self.rail = main.get("rail")
        self.method = main.get("method", MEASURED)
        self.energy_j = main.get("energy_j")
        self.power_w = main.get("avg_power_w")
        self.net_energy_j = main.get("net_energy_j")
        self.idle_power_w = main.get("idle_power_w")
        self.covered_frac = main.get("covered_frac", 0.0)
        self.uncertainty_pct = main.get("uncertainty_pct")
        self._resolved = True

    def __repr__(self):
        return "Measurement(%s: %s J over %.3f s, %s by %s%s)" % (
            self.name, "?" if self.energy_j is None else "%.6g" % self.energy_j, self.seconds,
            self.method, self.meter, ", flags: " + "; ".join(self.flags) if self.flags else "")


class _Window(object):
    """`with mon.window(name) as w:` ... `w.result` is the Measurement after the block."""

    def __init__(self, monitor, name):
        self._monitor = monitor
        self.name = name
        self.result = None
        self._key = None

    def __enter__(self):
        self._key = self._monitor._begin(self.name, None)
        return self

    def __exit__(self, *exc):
        self.result = self._monitor._end(self._key)
        return False


class _LogDir(object):
    """The run-directory files a Monitor keeps (see the module docstring)."""

    def __init__(self, path, run_id):
        if not os.path.isdir(path):
            os.makedirs(path)
        self.path = path
        self.run_id = run_id
        for stale in (WINDOW_FILE, "energy.csv", "summary.json"):
            if os.path.exists(self.file(stale)):
                os.remove(self.file(stale))
        self.samples = SampleWriter(self.file("samples.csv"), run_id)
        self.windows = CsvLog(self.file(WINDOW_FILE), PHASE_COLUMNS)

    def file(self, name):
        return os.path.join(self.path, name)

    def close(self):
        self.samples.close()
        self.windows.close()

    def log_window(self, name, start, end):
        self.windows.write([(self.run_id, name, "", "%.6f" % start[0], "%.6f" % end[0],
                             "%.6f" % start[1], "%.6f" % end[1])])

    def finish(self, idle_power_w, meter_names):
        """energy.csv from the files (as the runner computes a run's); the summary's energy."""
        self.close()
        windows = accounting.read_phases(self.file(WINDOW_FILE))
        samples = accounting.read_samples(self.file("samples.csv"))
        rows = energy.by_phase(samples, windows, idle_power_w=idle_power_w, run_id=self.run_id)
        accounting.write_energy_csv(self.file("energy.csv"), rows)
        return accounting.headline(rows, meter_names, None)


class Monitor(object):
    """Measures named windows of any code with the given meters (see the module docstring).

    `meters`: driver names, "auto" for the most trusted one present; `meter_options`:
    {name: {option: value}}, e.g. {"wattsup": {"port": "/dev/ttyUSB0"}}; `interval_s`: the
    sampling interval of every meter (driver default otherwise); `log_dir`: a directory to
    write in the run-directory formats; `log_to`: trackers to send windows and the summary to;
    `sync_cuda`: finish queued CUDA work at window edges (a no-op without CUDA in use). The first
    meter is the one Measurement fields describe.
    """

    def __init__(self, meters=("auto",), meter_options=None, interval_s=None, log_dir=None,
                 run_id=None, log_to=None, sync_cuda=True):
        names = [meters] if isinstance(meters, str) else list(meters)
        if not names or names == ["none"]:
            raise EbedgeError("a Monitor needs at least one meter (e.g. meters=['auto'])")
        self.run_id = run_id or (os.path.basename(os.path.normpath(os.path.abspath(log_dir)))
                                 if log_dir else "monitor")
        self.idle_power_w = None  # {(meter, rail): watts} once measure_idle() has run
        self.measurements = []
        self._lock = threading.RLock()
        self._samples = []
        self._latest = {}  # meter -> t_mono of its newest sample received
        self._open = {}  # key -> (name, (t_mono, t_wall))
        self._pending = []  # ended windows whose energy is not computed yet
        self._keys = itertools.count()
        self._closed = False
        self._started = time.monotonic()
        self._sync = sync_cuda
        self._sinks = None
        self._log = None
        try:
            if log_to:
                from ebedge.export.trackers import Sinks, WindowRecord
                self._sinks = Sinks(log_to, self.run_id)
                self._record = WindowRecord.of
            self._log = _LogDir(log_dir, self.run_id) if log_dir else None
            self._sampler = MeterSampler(names, self._receive, meter_options, interval_s)
        except Exception:
            if self._log:
                self._log.close()
            if self._sinks:
                self._sinks.close()
            raise
        self._sampler.start()
        self._sampler.settle(now()[0])  # a first sample precedes the first window
        self.meter = self._sampler.meters[0].name  # the meter Measurement fields describe
        if self._log:
            write_json_atomic(self._log.file("config.json"), {
                "run_id": self.run_id, "kind": "monitor", "settings": {},
                "versions": {"ebedge": ebedge.__version__}, "host": socket.gethostname(),
                "meters": self._sampler.describe(), "argv": sys.argv})
            write_json_atomic(self._log.file("summary.json"),
                              {"run_id": self.run_id, "kind": "monitor", "status": "running"})

    # -- the window API --------------------------------------------------------------------------
    def begin_window(self, name):
        """Open window `name` (its name must not be open already)."""
        self._begin(name, name)

    def end_window(self, name):
        """Close window `name`; its Measurement."""
        return self._end(name)

    def is_open(self, name):
        """True while window `name` (begun by name) is open."""
        return name in self._open

    def window(self, name):
        """Context manager measuring its block; the Measurement is `.result` afterwards."""
        return _Window(self, name)

    def measure(self, name=None):
        """Decorator: every call of the function is a window (`name`, default the function's)."""
        def wrap(fn):
            label = name or getattr(fn, "__qualname__", fn.__name__)

            @functools.wraps(fn)
            def measured(*args, **kwargs):
                with self.window(label):
                    return fn(*args, **kwargs)
            return measured
        return wrap

    def measure_idle(self, seconds):
        """Sit idle for `seconds` and keep the average power of every rail as its idle power, so
        later windows report `net_energy_j` = energy - idle power x covered time."""
        if seconds <= 0:
            raise EbedgeError("idle seconds must be positive, got %r" % (seconds,))
        key = self._begin(IDLE_WINDOW, None)
        time.sleep(seconds)
        m = self._end(key)
        self._resolve(m, wait=True)
        self.idle_power_w = {(r["meter"], r["rail"]): r["avg_power_w"] for r in m.rows
                             if r["avg_power_w"] is not None}
        return m

    def close(self):
        """End windows still open (flagged), stop the meters and finish log_dir's files."""
        if self._closed:
            return
        for key in list(self._open):
            # no device sync here: after a crash the device may be what failed
            self._end(key, extra_flag="window still open at close(), ended there", sync=False)
        for m in list(self._pending):
            self._resolve(m, wait=True)
        self._closed = True
        errors = self._sampler.stop()
        flags = sorted(set(f for m in self.measurements for f in m.flags))
        flags += [Flag("meter_error", "meter error: %s" % e) for e in errors]
        summary = store({"run_id": self.run_id, "kind": "monitor", "status": "complete",
                         "windows": len(self.measurements), "idle_power_w": self._idle_total(),
                         "runtime_s": time.monotonic() - self._started}, flags)
        if self._log:
            summary["energy"] = self._log.finish(self.idle_power_w,
                                                 [m.name for m in self._sampler.meters])
        if self._sinks:
            self._sinks.summary(summary)
            self._sinks.close()
            store(summary, flags + [Flag("tracker_dropped", f) for f in self._sinks.flags])
        if self._log:
            write_json_atomic(self._log.file("summary.json"), summary)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- inside ------------------------------------------------------------------------------------
    def _receive(self, samples):
        with self._lock:
            self._samples.extend(samples)
            for s in samples:
                self._latest[s.meter] = max(s.t_mono, self._latest.get(s.meter, s.t_mono))
        if self._log:
            self._log.samples.write(samples)

    def _begin(self, name, key):
        if self._closed:
            raise EbedgeError("the monitor is closed")
        if self._sync:
            sync_cuda()  # work queued before the window is not its work
        start = now()
        with self._lock:
            if key is None:
                key = ("_window", next(self._keys))
            elif key in self._open:
                raise EbedgeError("window %r is already open" % (name,))
            self._open[key] = (name, start)
        return key

    def _end(self, key, extra_flag=None, sync=True):
        if self._sync and sync:
            sync_cuda()  # the window's queued work finishes inside it
        end = now()
        with self._lock:
            if key not in self._open:
                raise EbedgeError("window %r is not open" % (key,))
            name, start = self._open.pop(key)
            m = Measurement(self, name, start[0], end[0],
                            [Flag("note", extra_flag, phase=name)] if extra_flag else [])
            self.measurements.append(m)
            self._pending.append(m)
        if self._log:
            self._log.log_window(name, start, end)
        self._resolve_ready()
        return m

    def _resolve_ready(self):
        """Compute the windows every meter has already read past (no waiting), then forget the
        samples no open or pending window needs."""
        with self._lock:
            newest = min(self._latest.get(m.name, float("-inf")) for m in self._sampler.meters)
            ready = [m for m in self._pending if m.t_end < newest]
        for m in ready:
            self._resolve(m, wait=False)
        self._forget_old_samples()

    def _resolve(self, m, wait):
        """Integrate window `m` over the samples, as a run's phase is (energy.by_phase)."""
        if wait:
            self._sampler.settle(m.t_end)  # a sample after the end, so the edge interpolates
        with self._lock:
            if m._resolved:
                return
            rows = energy.by_phase(self._samples, [(m.name, None, m.t_start, m.t_end)],
                                   idle_power_w=self.idle_power_w, run_id=self.run_id)
            m._set(rows, self._flags(m.name, m.seconds, rows))
            self._pending.remove(m)
        if self._sinks:
            self._sinks.window(self._record(m))

    def _flags(self, name, seconds, rows):
        flags = []
        for meter in self._sampler.meters:
            short = accounting.short_window_warning(name, seconds, meter.name, meter.interval_s)
            if short:
                flags.append(Flag("short_window", short, phase=name, meter=meter.name))
            if meter.error is not None:
                flags.append(Flag("meter_error", "meter error: %s: %s" % (meter.name, meter.error),
                                  meter=meter.name))
        for r in rows:
            if r["covered_frac"] < MIN_COVERED_FRAC:
                flags.append(Flag("low_coverage", "gap: %s/%s saw samples over %.1f%% of %s "
                                  "(longest gap %.3gs)" % (r["meter"], r["rail"],
                                                          100 * r["covered_frac"], name,
                                                          r["max_gap_s"]),
                                  phase=name, meter=r["meter"], value=r["covered_frac"]))
        return flags

    def _forget_old_samples(self):
        """Keep what open windows need, plus each rail's last earlier sample (an edge's left
        neighbour), so a long session does not hold every sample in memory."""
        with self._lock:
            cut = min([start[0] for _, start in self._open.values()]
                      + [m.t_start for m in self._pending] or [float("inf")])
            kept, last = [], {}
            for s in self._samples:
                if s.t_mono >= cut:
                    kept.append(s)
                elif (s.meter, s.rail) not in last or s.t_mono >= last[(s.meter, s.rail)].t_mono:
                    last[(s.meter, s.rail)] = s
            self._samples = sorted(last.values(), key=lambda s: s.t_mono) + kept

    def _idle_total(self):
        if not self.idle_power_w:
            return None
        return {"%s/%s" % k: w for k, w in sorted(self.idle_power_w.items())}
