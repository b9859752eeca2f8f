"""Qualify a meter against a reference: a fixed protocol of loads, both meters integrated per
window by the same code as a run's phases, and a fitted map P_ref = gain x P_meter + offset.

The protocol (after MLPerf Training's power qualification): idle, a busy loop on one core, busy
loops on all cores, a matmul loop on the GPU where CUDA exists, and a step load (idle for the
first half of each window, all cores for the second); each level settles, then holds for
`windows` windows of `window_s` seconds and half a settling time more (so that the last window's
edge does not interpolate towards the next level). Window edges are planned times, so the step falls
mid-window and a simulated board can follow the same schedule.

The fit and the verdict use the steady windows only (a step is only as sharp as the slower
meter's period and latency); every window, step included, is in the table with both energies,
their ratio and error, raw and calibrated, and the step's worst error is reported on its own
(with a warning above the tolerance). Verdict: `pass` when every steady window's raw error is
within the tolerance, `pass after calibration` when every calibrated one is, else `fail`
(also when a window has no usable reading of one meter).
"""
import collections
import json
import math
import os
import re
import time

from ebedge.errors import EbedgeError
from ebedge.measure import loads
from ebedge.measure.accounting import read_phases, short_window_warning
from ebedge.measure.recording import SampleWriter, write_energy
from ebedge.measure.sampling import MeterSampler
from ebedge.util.safeio import write_json_atomic
from ebedge.util import stats
from meters.base import TOTAL

DEFAULT_WINDOWS = 5
DEFAULT_WINDOW_S = 60.0
QUICK_WINDOW_S = 10.0
DEFAULT_TOLERANCE_PCT = 2.0
STEP = "step"

# A level: name, the load of the first and of the second half of each window.
Level = collections.namedtuple("Level", "name first second")
Window = collections.namedtuple("Window", "level index t_start t_end")


def default_levels(cores, gpu):
    """idle, one core, all cores, the GPU (if any), a step from idle to all cores."""
    idle, all_cores = loads.IDLE, loads.LoadSpec(cores, False)
    levels = [Level("idle", idle, idle), Level("cpu_1", loads.LoadSpec(1, False),
                                               loads.LoadSpec(1, False)),
              Level("cpu_all", all_cores, all_cores)]
    if gpu:
        gpu_load = loads.LoadSpec(0, True)
        levels.append(Level("gpu", gpu_load, gpu_load))
    levels.append(Level(STEP, idle, all_cores))
    return levels


class Protocol(object):
    """Levels x windows, with a settling time before each level's first window."""

    def __init__(self, levels, windows=DEFAULT_WINDOWS, window_s=DEFAULT_WINDOW_S, settle_s=None):
        if windows < 3:
            raise EbedgeError("qualification needs at least 3 windows per level, got %d" % windows)
        if not window_s > 0:
            raise EbedgeError("window must be positive, got %r s" % window_s)
        self.levels = list(levels)
        self.windows = int(windows)
        self.window_s = float(window_s)
        self.settle_s = float(settle_s if settle_s is not None else min(5.0, window_s / 2))

    def stretches(self):
        """(offset_s, seconds, load, level, window index or None while settling), in order."""
        out = []
        t = 0.0
        half = self.window_s / 2
        for level in self.levels:
            if self.settle_s > 0:
                out.append((t, self.settle_s, level.first, level, None))
                t += self.settle_s
            for k in range(self.windows):
                out.append((t, half, level.first, level, k))
                out.append((t + half, half, level.second, level, k))
                t += self.window_s
            if self.settle_s > 0:  # the last window's edge must not see the next level
                out.append((t, self.settle_s / 2, level.second, level, None))
                t += self.settle_s / 2
        return out

    def duration_s(self):
        return len(self.levels) * (1.5 * self.settle_s + self.windows * self.window_s)

    def describe(self):
        return {"levels": [{"name": lv.name, "first": lv.first._asdict(),
                            "second": lv.second._asdict()} for lv in self.levels],
                "windows": self.windows, "window_s": self.window_s, "settle_s": self.settle_s}


def run_protocol(protocol, t0, start_load=loads.Load, sleep=time.sleep):
    """Hold each stretch's load from planned time t0 + offset; returns the Windows (host
    monotonic edges). `start_load(spec)` returns an object with `stop()`, or None for idle."""
    windows = {}
    running = None
    current = None
    try:
        for offset, seconds, load, level, k in protocol.stretches():
            if load != current:
                if running is not None:
                    running.stop()
                running = start_load(load) if load != loads.IDLE else None
                current = load
            _sleep_until(t0 + offset + seconds, sleep)
            if k is not None:
                key = (level.name, k)
                start = windows[key].t_start if key in windows else t0 + offset
                windows[key] = Window(level.name, k, start, t0 + offset + seconds)
    finally:
        if running is not None:
            running.stop()
    return sorted(windows.values(), key=lambda w: w.t_start)


def _sleep_until(t, sleep):
    while True:
        left = t - time.monotonic()
        if left <= 0:
            return
        sleep(min(left, 0.5))


def window_name(w):
    return "%s/%d" % (w.level, w.index)


class Fit(object):
    """Least squares P_ref = gain x P_meter + offset_w over per-window average powers."""

    def __init__(self, xs, ys):
        n = len(xs)
        if n < 3:
            raise EbedgeError("a fit needs at least 3 windows with both meters covered, got %d" % n)
        mx, my = sum(xs) / n, sum(ys) / n
        sxx = sum((x - mx) ** 2 for x in xs)
        if sxx <= 0:
            raise EbedgeError("the meter read the same power in every window: no load levels to "
                              "fit a gain to")
        self.gain = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
        self.offset_w = my - self.gain * mx
        res = [y - (self.gain * x + self.offset_w) for x, y in zip(xs, ys)]
        self.n = n
        self.residual_w = math.sqrt(sum(r * r for r in res) / (n - 2)) if n > 2 else 0.0
        t = stats.t_quantile_975(n - 2)
        self.gain_ci95 = t * self.residual_w / math.sqrt(sxx)
        self.offset_ci95 = t * self.residual_w * math.sqrt(1.0 / n + mx * mx / sxx)
        self.max_residual_pct = max(100.0 * abs(r) / y for r, y in zip(res, ys) if y > 0)

    def as_dict(self):
        return {"gain": self.gain, "offset_w": self.offset_w, "gain_ci95": self.gain_ci95,
                "offset_w_ci95": self.offset_ci95, "residual_w": self.residual_w,
                "max_residual_pct": self.max_residual_pct, "n_windows": self.n}


def update_rate_hz(samples):
    """Distinct readings per second: how often the value changed, not how often it was polled."""
    pts = sorted((s.t_mono, s.power_w) for s in samples if s.power_w is not None)
    if len(pts) < 2 or pts[-1][0] <= pts[0][0]:
        return None
    changes = sum(1 for a, b in zip(pts, pts[1:]) if a[1] != b[1])
    return changes / (pts[-1][0] - pts[0][0])


def _pick_rail(rows, meter, rail):
    rails = sorted({r["rail"] for r in rows if r["meter"] == meter})
    if rail is None:
        rail = TOTAL if TOTAL in rails else (rails[0] if len(rails) == 1 else None)
    if rail not in rails:
        raise EbedgeError("meter %s: %s; rails it gave: %s" % (
            meter, "no rail %r" % rail if rail else "no total rail, choose one with --rail",
            ", ".join(rails) or "none"))
    return rail


def analyse(samples, windows, meter, reference, meter_rail=None, reference_rail=None,
            tolerance_pct=DEFAULT_TOLERANCE_PCT, run_id="qualification", out_dir=None):
    """The qualification of `meter` against `reference` from their samples over `windows`:
    a JSON-ready dict (see the module docstring). With `out_dir`, also writes samples.csv,
    phases.csv and energy.csv there, the way a run does. One function: it reads as the page of
    qualification.json it fills, key by key."""
    phases = window_phases(windows)
    if out_dir is not None:
        writer = SampleWriter(os.path.join(out_dir, "samples.csv"), run_id)
        writer.write(samples)
        writer.close()
        rows = write_energy(out_dir, samples, phases, run_id)
    else:
        from ebedge.measure import energy
        rows = energy.by_phase(samples, [p[:4] for p in phases], run_id=run_id)
    rail_m = _pick_rail(rows, meter, meter_rail)
    rail_r = _pick_rail(rows, reference, reference_rail)
    got = {(r["meter"], r["rail"], r["phase"]): r for r in rows}
    table = []
    xs, ys = [], []
    for w in windows:
        m, r = got[(meter, rail_m, window_name(w))], got[(reference, rail_r, window_name(w))]
        entry = {"level": w.level, "window": w.index, "t_start": w.t_start, "t_end": w.t_end,
                 "meter_j": m["energy_j"], "reference_j": r["energy_j"],
                 "meter_w": m["avg_power_w"], "reference_w": r["avg_power_w"],
                 "meter_covered": m["covered_frac"], "reference_covered": r["covered_frac"],
                 "ratio": None, "error_pct": None}
        if m["avg_power_w"] is not None and r["avg_power_w"] and m["energy_j"] is not None:
            entry["ratio"] = m["avg_power_w"] / r["avg_power_w"]
            entry["error_pct"] = 100.0 * (entry["ratio"] - 1.0)
            if w.level != STEP:
                xs.append(m["avg_power_w"])
                ys.append(r["avg_power_w"])
        table.append(entry)
    fit = Fit(xs, ys)
    for e in table:
        e["calibrated_error_pct"] = (
            100.0 * ((fit.gain * e["meter_w"] + fit.offset_w) / e["reference_w"] - 1.0)
            if e["ratio"] is not None else None)
    steady = [e for e in table if e["level"] != STEP]
    raw = _worst(steady, "error_pct")
    cal = _worst(steady, "calibrated_error_pct")
    uncovered = [e for e in table if e["ratio"] is None]
    if uncovered or raw is None:
        verdict = "fail"
    elif raw <= tolerance_pct:
        verdict = "pass"
    elif cal <= tolerance_pct:
        verdict = "pass after calibration"
    else:
        verdict = "fail"
    step_cal = _worst([e for e in table if e["level"] == STEP], "calibrated_error_pct")
    by_meter = {}
    for name, rail in ((meter, rail_m), (reference, rail_r)):
        own = [s for s in samples if s.meter == name and s.rail == rail]
        span = (max(s.t_mono for s in own) - min(s.t_mono for s in own)) if len(own) > 1 else 0
        by_meter[name] = {"rail": rail, "method": next(r["method"] for r in rows if r["meter"] == name),
                          "sample_hz": (len(own) - 1) / span if span > 0 else None,
                          "update_hz": update_rate_hz(own)}
    warnings = [w for w in [_short(windows[0], by_meter)] if w]  # all windows are as long
    if uncovered:
        warnings.append("%d window(s) without a usable reading of one meter" % len(uncovered))
    if step_cal is not None and step_cal > tolerance_pct:
        warnings.append("step windows differ by up to %.2f%% after calibration: the slower meter "
                        "follows a load step late or coarsely (see rates)" % step_cal)
    return {"meter": meter, "reference": reference, "rates": by_meter, "windows": table,
            "fit": fit.as_dict(), "tolerance_pct": tolerance_pct, "verdict": verdict,
            "max_error_pct": raw, "max_calibrated_error_pct": cal,
            "step_max_error_pct": _worst([e for e in table if e["level"] == STEP], "error_pct"),
            "step_max_calibrated_error_pct": step_cal, "warnings": warnings}


def _worst(entries, key):
    """The largest |entry[key]|, or None when no entry has one."""
    values = [abs(e[key]) for e in entries if e[key] is not None]
    return max(values) if values else None


def _short(window, by_meter):
    """A warning when a window holds fewer than 20 periods of either meter."""
    for name, facts in sorted(by_meter.items()):
        if facts["sample_hz"]:
            w = short_window_warning("a window", window.t_end - window.t_start, name,
                                     1.0 / facts["sample_hz"])
            if w:
                return w
    return None


def record(meter_names, protocol, options=None, start_load=loads.Load, lead_in_s=2.0, t0=None):
    """Sample `meter_names` while `protocol` runs; (samples, windows, the meters' descriptions,
    their errors). `t0`: the planned start in host monotonic time (default: `lead_in_s` after the
    meters start)."""
    samples = []
    sampler = MeterSampler(list(meter_names), samples.extend, options or {})
    sampler.start()
    errors = []
    try:
        start = t0 if t0 is not None else time.monotonic() + lead_in_s
        windows = run_protocol(protocol, start, start_load)
        sampler.settle(windows[-1].t_end)
    finally:
        errors = sampler.stop()
    return samples, windows, sampler.describe(), errors


def qualify(meter, reference, protocol, options=None, meter_rail=None, reference_rail=None,
            tolerance_pct=DEFAULT_TOLERANCE_PCT, out_dir=None, start_load=loads.Load,
            lead_in_s=2.0, t0=None):
    """Sample both meters through `protocol` (see `record`) and analyse (see `analyse`)."""
    if meter == reference:
        raise EbedgeError("the meter and its reference must be two meters, got %s twice" % meter)
    samples, windows, described, errors = record([meter, reference], protocol, options,
                                                 start_load, lead_in_s, t0)
    if out_dir is not None and not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    result = analyse(samples, windows, meter, reference, meter_rail, reference_rail,
                     tolerance_pct, out_dir=out_dir)
    result["protocol"] = protocol.describe()
    result["meters"] = described
    result["warnings"] += ["meter error: %s" % e for e in errors]
    if out_dir is not None:
        write_result(out_dir, result)
    return result


def window_phases(windows, wall_minus_mono=None):
    """The windows as a run's phase rows (phase, epoch, t0, t1, wall0, wall1): "level/k"."""
    shift = wall_minus_mono
    return [(window_name(w), w.index, w.t_start, w.t_end,
             None if shift is None else w.t_start + shift,
             None if shift is None else w.t_end + shift) for w in windows]


_WINDOW_NAME = re.compile(r"^([a-z][a-z0-9_]{0,31})/([0-9]{1,4})$")


def read_windows(phases_path):
    """The Windows of a phases.csv written by `window_phases` (another machine's, so checked):
    EbedgeError, one line, when it holds none."""
    windows = []
    for name, _, t0, t1, _ in read_phases(phases_path):
        match = _WINDOW_NAME.match(name)
        if match and math.isfinite(t0) and math.isfinite(t1) and t1 > t0:
            windows.append(Window(match.group(1), int(match.group(2)), t0, t1))
    if len(windows) < 3:
        raise EbedgeError("%s: %d qualification windows (need at least 3)"
                          % (phases_path, len(windows)))
    return sorted(windows, key=lambda w: w.t_start)


def write_result(out_dir, result):
    path = os.path.join(out_dir, "qualification.json")
    write_json_atomic(path, result)
    return path


def read_result(path):
    """qualification.json as a dict; EbedgeError (one line) if it is not one."""
    try:
        with open(path) as f:
            result = json.load(f)
        fit = result["fit"]
        float(fit["gain"]), float(fit["offset_w"])
        str(result["meter"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EbedgeError("%s: not a qualification result (%s)" % (path, exc))
    return result
