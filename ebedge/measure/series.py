"""One meter+rail stream made ready to integrate: readings sorted, impossible ones left out and
named, held streams turned into update points, gaps marked, and prefix sums of energy and
covered time, so that any window costs two bisections (ebedge.measure.energy integrates).
"""
import bisect
import math

from meters.base import GAP, NAN, OVERRANGE, STALE, may_hold, plausible

HELD_MIN_UPDATES = 10  # fewer distinct readings say nothing of how the sensor updates
NEGATIVE = "negative"
COUNTER_RESET = "counter_reset"


class Series(object):
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
            nominal_interval_s = median(positive) if positive else 0.0
        self.gap_s = gap_factor * nominal_interval_s
        changed = [i for i, (_, p, _) in enumerate(pts) if i == 0 or p != pts[i - 1][1]]
        self.updates = [pts[i][0] for i in changed]  # readings that differ from the one before
        runs = sorted(b - a for a, b in zip(changed, changed[1:] + [len(pts)]))
        self.held = (len(runs) >= HELD_MIN_UPDATES and runs[len(runs) // 2] >= 2
                     and may_hold(rows[0][2].meter))
        if self.held:  # a gap in polling becomes a flagged break between update points
            period = median([b - a for a, b in zip(self.updates, self.updates[1:]) if b > a])
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


def median(xs):
    s = sorted(xs)
    m = len(s) // 2
    return s[m] if len(s) % 2 else 0.5 * (s[m - 1] + s[m])
