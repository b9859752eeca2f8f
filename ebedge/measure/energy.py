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
from ebedge.measure.series import Series

SLOW_RATE_HZ = 1.0  # energy_1hz_j: the same window as a 1 Hz meter would have seen it


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
    series = Series(samples, nominal_interval_s, gap_factor, max_power_w)
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
        series = {boot: Series(ss, nominal_interval_s, gap_factor, _max_power(meter))
                  for boot, ss in groups[key].items()}
        slow = {boot: Series(thinned(ss, SLOW_RATE_HZ), 1.0 / SLOW_RATE_HZ, gap_factor,
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
