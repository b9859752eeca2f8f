"""Joules from meter samples: trapezoid over real timestamps, per phase, with gaps and idle.

Rules (docs/DESIGN.md, MLPerf Power practice):
- Integrate the instantaneous power with the trapezoid rule on each sample's `t_mono`; a phase
  edge that falls between two samples is interpolated linearly, so a phase shorter than the
  sample interval still gets its share.
- An interval between two samples longer than `gap_factor` x the nominal period is a gap: it is
  excluded (never zero-filled, never bridged) and reported through `covered_frac` and `max_gap_s`.
  `energy_j` is the energy of the covered part; `avg_power_w` is that energy over covered time.
  A sample flagged `gap` by its meter (it missed readings before this one) ends a gap too.
- Impossible readings are flagged and left out: missing or non-finite (`nan`), negative
  (`negative`), above the meter's `max_power_w` or flagged so by the meter (`overrange`). The
  interval up to the next usable reading is then a gap: nothing is interpolated across them.
  `flags` in energy.csv counts them per window (`negative:2|gap:1`), with `gap` intervals and
  `counter_reset`s.
- Monotonic time is per boot: with samples given per boot id, a window is integrated over its own
  boot's samples only (a window of a boot without samples is uncovered), and idle power is taken
  per boot, so nothing is integrated, interpolated or subtracted across two boots.
- `meter_energy_j` is the meter's own cumulative counter over the window, interpolated at the
  edges (clamped to the span the counter samples cover), reported beside our integral. A counter
  that goes backwards was reset: counting continues from the value before the reset.
- `energy_1hz_j` re-integrates the window from the readings a 1 Hz meter would have taken (the
  first reading at or after each whole second of the series), so a user sees where the rate
  matters: short phases, bursty loads. `calibrated_energy_j` is filled by
  ebedge.measure.calibration where a profile applies (empty otherwise).
- uncertainty_pct = accuracy_pct (the meter's accuracy class, 0 when unknown)
                    + 100 x (1 - covered_frac)          (energy we could not see, at most)
  A plain, conservative sum: the two terms are not independent enough to add in quadrature.

Each (meter, rail) series is sorted once and turned into prefix sums, so a window costs two
bisections plus its two edge intervals, whatever its length.
"""
import bisect
import math

from meters.base import GAP, NAN, OVERRANGE, STALE, may_hold, plausible

HELD_MIN_UPDATES = 10  # fewer distinct readings say nothing of how the sensor updates
SLOW_RATE_HZ = 1.0  # energy_1hz_j: the same window as a 1 Hz meter would have seen it
NEGATIVE = "negative"
COUNTER_RESET = "counter_reset"


class WindowEnergy(object):
    """What one meter's rail says about one window (or the union of several)."""

    __slots__ = ("energy_j", "duration_s", "covered_s", "avg_power_w", "n_samples", "rate_hz",
                 "sensor_update_hz", "max_gap_s", "covered_frac", "meter_energy_j",
                 "uncertainty_pct", "flags")

    def __init__(self, energy_j, duration_s, covered_s, n_samples, max_gap_s, meter_energy_j,
                 accuracy_pct, flags=None, n_updates=None):
        self.energy_j = energy_j
        self.duration_s = duration_s
        self.covered_s = covered_s
        self.n_samples = n_samples
        self.max_gap_s = max_gap_s
        self.meter_energy_j = meter_energy_j
        self.avg_power_w = energy_j / covered_s if covered_s > 0 else None
        self.rate_hz = n_samples / duration_s if duration_s > 0 else None
        # distinct readings per second: below rate_hz, the poll saw the sensor's value again
        self.sensor_update_hz = (n_updates / duration_s if duration_s > 0 and
                                 n_updates is not None else None)
        self.covered_frac = min(1.0, covered_s / duration_s) if duration_s > 0 else 0.0
        self.uncertainty_pct = (accuracy_pct or 0.0) + 100.0 * (1.0 - self.covered_frac)
        self.flags = dict(flags or {})  # flag -> how many times it happened in the window

    def flags_text(self):
        """`negative:2|gap:1`: the window's flag counts, in a stable order ('' when clean)."""
        return "|".join("%s:%d" % (k, self.flags[k]) for k in sorted(self.flags) if self.flags[k])

    def as_dict(self):
        return {k: getattr(self, k) for k in self.__slots__}

    def __repr__(self):
        return "WindowEnergy(%.6g J over %.6g s, covered %.4f, %d samples)" % (
            self.energy_j, self.duration_s, self.covered_frac, self.n_samples)


class _Series(object):
    """One meter+rail, sorted, with prefix sums of energy and covered time over intervals.

    A held stream (polled faster than its sensor updates, so readings repeat) is integrated as
    what it is: each new value is the sensor's figure for the interval since its previous
    update, a step back in time from the poll that first saw it, not a fresh sample at every
    poll. A stream is held when its meter's source can hold a reading (`holds_readings`: an
    on-board sensor, tegrastats, jtop; never a meter that measures at each request, whose
    repeats are a steady load) and most of its values were read at least twice in a row (the
    median run of equal readings is 2 or more, over HELD_MIN_UPDATES distinct readings at
    least); a steady stretch among changing readings is not."""

    def __init__(self, samples, nominal_interval_s=None, gap_factor=3.0, max_power_w=None):
        rows = sorted(((s.t_mono, _rejection(s, max_power_w), s) for s in samples),
                      key=lambda r: r[0])
        self.rejected = {}  # flag -> sorted times of the readings left out for it
        pts = []
        after_reject = False
        for t, why, s in rows:
            if why is not None:
                self.rejected.setdefault(why, []).append(t)
                after_reject = True
                continue
            pts.append((t, float(s.power_w), after_reject or GAP in s.flags))
            after_reject = False
        self.polls = [t for t, _, _ in pts]  # every usable reading, for the poll rate
        self.poll_dt = [b - a for a, b in zip(self.polls, self.polls[1:])]
        if nominal_interval_s is None:
            positive = [dt for dt in self.poll_dt if dt > 0]  # equal timestamps say nothing
            nominal_interval_s = _median(positive) if positive else 0.0
        self.gap_s = gap_factor * nominal_interval_s
        changed = [i for i, (_, p, _) in enumerate(pts) if i == 0 or p != pts[i - 1][1]]
        self.updates = [pts[i][0] for i in changed]  # readings that differ from the one before
        runs = sorted(b - a for a, b in zip(changed, changed[1:] + [len(pts)]))
        self.held = (len(runs) >= HELD_MIN_UPDATES and runs[len(runs) // 2] >= 2
                     and may_hold(rows[0][2].meter))
        if self.held:  # a gap in polling becomes a flagged break between update points
            period = _median([b - a for a, b in zip(self.updates, self.updates[1:]) if b > a])
            pts = _update_points(pts, changed, self.gap_s, period)
        self.t = [t for t, _, _ in pts]
        self.p = [p for _, p, _ in pts]
        dts = [b - a for a, b in zip(self.t, self.t[1:])]
        # held: one value over many polls is held, not missing (a source frozen for longer than
        # its meter allows comes flagged `stale`)
        self.is_gap = [pts[i + 1][2] or (not self.held and dt > self.gap_s)
                       for i, dt in enumerate(dts)]
        self.e_cum = [0.0]
        self.c_cum = [0.0]
        self.g_cum = [0]
        e = c = 0.0
        g = 0
        for i, dt in enumerate(dts):
            if not self.is_gap[i]:
                e += (self.p[i + 1] if self.held else (self.p[i] + self.p[i + 1]) * 0.5) * dt
                c += dt
            else:
                g += 1
            self.e_cum.append(e)
            self.c_cum.append(c)
            self.g_cum.append(g)
        self.ct, self.ce, self.resets = _unwrapped_counter(samples)

    def _level(self, i, x):
        """Power at time x inside interval i: the held value that ends it, or the straight line
        between its two readings."""
        if self.held:
            return self.p[i + 1]
        t0, t1, p0, p1 = self.t[i], self.t[i + 1], self.p[i], self.p[i + 1]
        return p0 + (p1 - p0) * (x - t0) / (t1 - t0)

    def _part(self, i, lo, hi):
        """(joules, seconds) of interval i restricted to [lo, hi], linearly interpolated."""
        if self.is_gap[i] or hi <= lo:
            return 0.0, 0.0
        return (self._level(i, lo) + self._level(i, hi)) * 0.5 * (hi - lo), hi - lo

    def window(self, a, b):
        """(energy_j, covered_s, n_samples, max_gap_s, meter_energy_j) over [a, b]."""
        t, n = self.t, len(self.t)
        i0 = bisect.bisect_left(t, a)        # first point at or after a
        i1 = bisect.bisect_right(t, b) - 1   # last point at or before b
        # samples in [a, b), so that back-to-back windows never count one twice
        polls = _count_in(self.polls, a, b)
        if n == 0:
            return 0.0, 0.0, 0, b - a, None
        if i0 > i1:  # no point inside: the window lies within one interval (or outside all)
            e, c = self._part(i0 - 1, a, b) if 0 <= i0 - 1 < n - 1 else (0.0, 0.0)
            return e, c, polls, self._max_spacing(a, b), self._counter(a, b)
        e = self.e_cum[i1] - self.e_cum[i0]
        c = self.c_cum[i1] - self.c_cum[i0]
        if i0 > 0:
            pe, pc = self._part(i0 - 1, a, t[i0])
            e += pe
            c += pc
        if i1 < n - 1:
            pe, pc = self._part(i1, t[i1], b)
            e += pe
            c += pc
        return e, c, polls, self._max_spacing(a, b), self._counter(a, b)

    def _max_spacing(self, a, b):
        """The longest time without a reading that touches [a, b] (to its edges where no
        reading lies beyond them)."""
        t, dt, n = self.polls, self.poll_dt, len(self.polls)
        i0 = bisect.bisect_left(t, a)
        i1 = bisect.bisect_right(t, b) - 1
        if i0 > i1:
            return dt[i0 - 1] if 0 <= i0 - 1 < n - 1 else b - a
        gaps = dt[i0:i1]
        gaps.append(dt[i0 - 1] if i0 > 0 else t[0] - a)
        gaps.append(dt[i1] if i1 < n - 1 else b - t[-1])
        return max(gaps)

    def updates_in(self, a, b):
        """Distinct readings in [a, b): how often the sensor really updated."""
        return _count_in(self.updates, a, b)

    def flags(self, a, b):
        """{flag: count} for [a, b): readings left out, gap intervals, counter resets."""
        out = {why: _count_in(times, a, b) for why, times in self.rejected.items()}
        # interval i (samples i..i+1) overlaps the window iff t[i] < b and t[i+1] > a
        lo = max(0, bisect.bisect_right(self.t, a) - 1)
        hi = min(len(self.is_gap), bisect.bisect_left(self.t, b))
        out[GAP] = self.g_cum[hi] - self.g_cum[lo] if hi > lo else 0
        out[COUNTER_RESET] = _count_in(self.resets, a, b)
        return out

    def _counter(self, a, b):
        if not self.ct:
            return None
        return self._counter_at(b) - self._counter_at(a)

    def _counter_at(self, x):
        ct, ce = self.ct, self.ce
        if x <= ct[0]:
            return ce[0]
        if x >= ct[-1]:
            return ce[-1]
        k = bisect.bisect_right(ct, x)
        ta, tb = ct[k - 1], ct[k]
        return ce[k - 1] + (ce[k] - ce[k - 1]) * (x - ta) / (tb - ta)


def _update_points(pts, changed, poll_gap_s, period_s):
    """The points of a held stream: each update (the first poll that saw a new value), which
    stands for the sensor period before it (`period_s`, the median time between updates; any
    earlier time since the previous update was the previous value again, updates that did not
    change it); the last poll before and the first after a gap in polling (flagged, so that
    interval stays a gap); and the newest poll (its value held until then)."""
    n = len(pts)
    breaks = set(i for i in range(1, n) if pts[i][2] or pts[i][0] - pts[i - 1][0] > poll_gap_s)
    keep = sorted(set(changed) | breaks | set(i - 1 for i in breaks) | {n - 1})
    out = []
    for i in keep:
        t, p = pts[i][0], pts[i][1]
        if out and i not in breaks and t - period_s > out[-1][0]:
            out.append((t - period_s, out[-1][1], False))  # the previous value, held longer
        out.append((t, p, i in breaks))
    return out


def _rejection(sample, max_power_w):
    """Why a sample cannot be integrated (NAN, NEGATIVE, OVERRANGE), or None if it can."""
    if sample.power_w is None:
        return NAN
    why = plausible(sample.power_w, max_power_w)
    if why is None and NAN in sample.flags:
        why = NAN
    if why is None and OVERRANGE in sample.flags:
        why = OVERRANGE
    if why is None and STALE in sample.flags:
        why = STALE
    if why == OVERRANGE and float(sample.power_w) < 0:
        why = NEGATIVE
    return why


def _unwrapped_counter(samples):
    """(times, cumulative joules, reset times) of a meter's own counter; where it goes backwards
    it was reset, and counting continues from the value it had reached."""
    pts = sorted((s.t_mono, float(s.meter_energy_j)) for s in samples
                 if s.meter_energy_j is not None and math.isfinite(float(s.meter_energy_j)))
    times, values, resets = [], [], []
    offset = 0.0
    prev = None
    for t, e in pts:
        if prev is not None and e < prev:
            offset += prev
            resets.append(t)
        prev = e
        times.append(t)
        values.append(offset + e)
    return times, values, resets


def _count_in(times, a, b):
    return bisect.bisect_left(times, b) - bisect.bisect_left(times, a)


def _median(xs):
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else 0.5 * (s[m - 1] + s[m])


def _check_one_series(samples):
    keys = {(s.meter, s.rail) for s in samples}
    if len(keys) > 1:
        raise ValueError("integrate() takes one meter+rail, got %s; use by_phase()" %
                         ", ".join("%s/%s" % k for k in sorted(keys)))


def _combine(parts, accuracy_pct):
    """Sum windows [(series or None, a, b, idle W or None)]: (WindowEnergy, net J, idle W).

    A window whose boot has no series (its meter recorded nothing in that boot) adds duration
    but no coverage. Net is None when a covered window has no idle power of its own boot."""
    e = c = dur = 0.0
    n = updates = 0
    max_gap = 0.0
    meter_e = None
    flags = {}
    net = 0.0
    for series, a, b, idle in parts:
        if b < a:
            raise ValueError("window ends before it starts: %r > %r" % (a, b))
        if series is None:
            we, wc, wn, wg, wm = 0.0, 0.0, 0, b - a, None
        else:
            we, wc, wn, wg, wm = series.window(a, b)
            updates += series.updates_in(a, b)
            for k, v in series.flags(a, b).items():
                flags[k] = flags.get(k, 0) + v
        e += we
        c += wc
        n += wn
        dur += b - a
        max_gap = max(max_gap, wg)
        if wm is not None:
            meter_e = (meter_e or 0.0) + wm
        if net is not None:
            net = None if idle is None and wc > 0 else net + we - (idle or 0.0) * wc
    w = WindowEnergy(e, dur, c, n, max_gap, meter_e, accuracy_pct, flags, updates)
    idles = {idle for _, _, _, idle in parts if idle is not None}
    if net is None or not idles:
        return w, None, None
    idle_w = idles.pop() if len(idles) == 1 else ((e - net) / c if c > 0 else None)
    return w, net, idle_w


def integrate(samples, t0, t1, nominal_interval_s=None, gap_factor=3.0, accuracy_pct=None,
              max_power_w=None):
    """WindowEnergy of ONE meter+rail over [t0, t1] (host monotonic seconds).

    `nominal_interval_s` defaults to the median sample spacing; `accuracy_pct` is the meter's
    accuracy class (percent of reading) for the uncertainty; `max_power_w` defaults to what the
    meter's driver declares.
    """
    samples = list(samples)
    _check_one_series(samples)
    if max_power_w is None and samples:
        max_power_w = _max_power(samples[0].meter)
    series = _Series(samples, nominal_interval_s, gap_factor, max_power_w)
    return _combine([(series, t0, t1, None)], accuracy_pct)[0]


def idle_power(samples, t0, t1, nominal_interval_s=None, gap_factor=3.0):
    """Average power (W) of one meter+rail in an idle window; None if nothing covered it."""
    return integrate(samples, t0, t1, nominal_interval_s, gap_factor).avg_power_w


def _phase_fields(p):
    """(name, start, end, boot id or None) of a phase tuple or object."""
    if isinstance(p, (tuple, list)):
        return p[0], p[2], p[3], (p[4] if len(p) > 4 else None)
    return p.phase, p.t_start_mono, p.t_end_mono, getattr(p, "boot_id", None)


def _meter_facts(meter):
    """(method, accuracy_pct) from the driver registry; a name it does not know is measured."""
    try:
        from meters import base
        cls = base.get(meter)
        return cls.method, cls.accuracy_pct
    except Exception:  # replayed or foreign meter names are still integrated
        return "measured", None


def _max_power(meter):
    """The driver's `max_power_w` (`wattsup@laptop` is a wattsup); the base bound for others."""
    from meters import base
    try:
        return base.get(meter.split("@", 1)[0]).max_power_w
    except Exception:  # replayed or foreign meter names still get the bound every meter has
        return base.Meter.max_power_w


def by_phase(samples, phases, idle_power_w=None, run_id="", nominal_interval_s=None,
             gap_factor=3.0, accuracy_pct=None, method=None):
    """energy.csv rows (dicts keyed by ENERGY_COLUMNS), one per (phase, meter, rail).

    `samples`: a list of Samples, or {boot_id: [Sample]} when the run spans several boots.
    `phases`: objects or tuples with phase, epoch, t_start_mono, t_end_mono[, boot_id]; entries
    sharing a phase name (its epochs) are summed into one row, in first-seen order. A window is
    integrated only over the samples of its own boot (a list of samples is boot None), since
    monotonic time restarts at every boot. `idle_power_w`: watts for every series, or a dict
    keyed (meter, rail, boot) or (meter, rail); net = gross - idle x covered seconds (covered,
    so that gross and idle describe the same time), None where a boot has no idle power.
    `accuracy_pct`/`method` override what the meter registry says, as a value or {meter: value}.
    """
    per_boot = isinstance(samples, dict)
    by_boot = samples if per_boot else {None: samples}  # a list: one process, one boot
    groups = {}
    for boot, boot_samples in by_boot.items():
        for s in boot_samples:
            groups.setdefault((s.meter, s.rail), {}).setdefault(boot, []).append(s)
    windows = {}
    order = []
    for p in phases:
        name, a, b, boot = _phase_fields(p)
        boot = boot if per_boot else None
        if name not in windows:
            windows[name] = []
            order.append(name)
        windows[name].append((a, b, boot))
    rows = []
    for key in sorted(groups):
        meter, rail = key
        series = {boot: _Series(ss, nominal_interval_s, gap_factor, _max_power(meter))
                  for boot, ss in groups[key].items()}
        slow = {boot: _Series(thinned(ss, SLOW_RATE_HZ), 1.0 / SLOW_RATE_HZ, gap_factor,
                              _max_power(meter)) for boot, ss in groups[key].items()}
        reg_method, reg_acc = _meter_facts(meter)
        acc = _pick(accuracy_pct, meter, reg_acc)
        meth = _pick(method, meter, reg_method)
        for name in order:
            parts = [(series.get(boot), a, b, _idle_for(idle_power_w, key, boot))
                     for a, b, boot in windows[name]]
            w, net, idle = _combine(parts, acc)
            w_slow = _combine([(slow.get(boot), a, b, None) for a, b, boot in windows[name]],
                              acc)[0]
            rows.append({
                "run_id": run_id, "phase": name, "meter": meter, "rail": rail, "method": meth,
                "duration_s": w.duration_s, "energy_j": w.energy_j,
                "energy_kj": w.energy_j / 1000.0,
                "avg_power_w": w.avg_power_w, "idle_power_w": idle, "net_energy_j": net,
                "n_samples": w.n_samples, "rate_hz": w.rate_hz,
                "sensor_update_hz": w.sensor_update_hz, "max_gap_s": w.max_gap_s,
                "covered_frac": w.covered_frac, "uncertainty_pct": w.uncertainty_pct,
                "flags": w.flags_text(),
                "energy_1hz_j": w_slow.energy_j if w_slow.covered_s > 0 else None,
                "calibrated_energy_j": None})
    return rows


def thinned(samples, rate_hz):
    """The samples a meter polling at `rate_hz` would have kept: the first at or after each
    period since the previous one kept."""
    period = 1.0 / rate_hz
    out = []
    due = float("-inf")
    for s in sorted(samples, key=lambda s: s.t_mono):
        if s.t_mono >= due:
            out.append(s)
            due = s.t_mono + period
    return out


def _idle_for(idle_power_w, key, boot):
    """Idle watts of series `key` in `boot`: a per-boot entry first, then a per-series one."""
    if isinstance(idle_power_w, dict):
        found = idle_power_w.get(key + (boot,))
        return found if found is not None else idle_power_w.get(key)
    return idle_power_w


def _pick(value, key, default):
    if value is None:
        return default
    if isinstance(value, dict):
        return value.get(key, default)
    return value
