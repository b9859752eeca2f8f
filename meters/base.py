"""The meter contract: samples, the Meter life cycle, a registry of drivers and detection.

Every driver yields `Sample`s timestamped on this host's clocks when the reading arrived;
integration into joules is never the driver's job (see `ebedge.measure.energy`). Reading happens in a
background thread so that a slow or stalled meter never blocks the training loop.
"""
import errno
import math
import os
import threading
import time

GAP = "gap"  # readings were missed since the previous one (a read failed, or it is too far back)
NAN = "nan"  # the meter reported NaN/Inf or an unreadable value
OVERRANGE = "overrange"  # out of the meter's range: negative, or above its max_power_w
RESYNC = "resync"  # first sample after the port/device came back
STALE = "stale"  # the source still answers but has stopped updating (see Freshness)

# A reading unchanged for longer than STALE_PERIODS sensor periods, and at least STALE_MIN_S,
# comes from a source that stopped updating: real sensors carry noise in their last digits, so
# even a steady load changes them within a few updates; the floor keeps a fast sensor at idle
# from being called stale for a handful of equal readings.
STALE_PERIODS = 20
STALE_MIN_S = 2.0

MEASURED = "measured"
MODELLED = "modelled"

TOTAL = "total"  # the rail name of a meter's whole-device figure


class MeterError(Exception):
    """A meter cannot be used; the message says why in one line."""


class ReadError(MeterError):
    """One reading failed but the meter may well answer the next one (EIO, EAGAIN, a conversion
    timeout, a file that vanished for a moment): the reader retries, it does not give up."""


# OSErrors that end nothing: the reader backs off, retries and flags the readings it missed.
TRANSIENT_ERRNOS = frozenset([errno.EIO, errno.EAGAIN, errno.ETIMEDOUT, errno.ENOENT, errno.ENODEV,
                              errno.ENXIO, errno.EBUSY, errno.EINTR, errno.EREMOTEIO,
                              errno.EACCES, errno.EPERM])


def is_transient(exc):
    """Whether a failed read is worth retrying rather than ending the meter."""
    if isinstance(exc, ReadError):
        return True
    return isinstance(exc, (IOError, OSError)) and exc.errno in TRANSIENT_ERRNOS


def plausible(power_w, max_power_w):
    """The flag a reading earns by its value alone: NAN, OVERRANGE, or None when it is usable."""
    if power_w is None:
        return None
    try:
        p = float(power_w)
    except (TypeError, ValueError):
        return NAN
    if math.isnan(p) or math.isinf(p):
        return NAN
    if p < 0 or (max_power_w is not None and p > max_power_w):
        return OVERRANGE
    return None


class Sample(object):
    """One reading of one rail.

    `t_mono`/`t_wall` are `time.monotonic()`/`time.time()` on the host that read the meter.
    `meter_energy_j` is the meter's own cumulative counter where it keeps one (else None).
    `flags` is a tuple of the flag strings above.
    """

    __slots__ = ("t_mono", "t_wall", "meter", "rail", "power_w", "voltage_v", "current_a",
                 "meter_energy_j", "flags")

    def __init__(self, t_mono, t_wall, meter, rail, power_w, voltage_v=None, current_a=None,
                 meter_energy_j=None, flags=()):
        self.t_mono = t_mono
        self.t_wall = t_wall
        self.meter = meter
        self.rail = rail
        self.power_w = power_w
        self.voltage_v = voltage_v
        self.current_a = current_a
        self.meter_energy_j = meter_energy_j
        self.flags = flags if type(flags) is tuple else tuple(flags)  # the common case is free

    def as_row(self):
        """The values in `samples.csv` column order (after `run_id`)."""
        return (self.meter, self.rail, self.t_mono, self.t_wall, self.power_w, self.voltage_v,
                self.current_a, self.meter_energy_j, "|".join(self.flags))

    def __repr__(self):
        return "Sample(%s/%s %.6f %r W%s)" % (self.meter, self.rail, self.t_mono, self.power_w,
                                             (" " + "|".join(self.flags)) if self.flags else "")

    def __eq__(self, other):
        return isinstance(other, Sample) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)


SAMPLE_COLUMNS = ("meter", "rail", "t_mono", "t_wall", "power_w", "voltage_v", "current_a",
                  "meter_energy_j", "flags")


class Freshness(object):
    """Tells a source that stopped updating from one that holds a value: `stale(reading, t)` is
    True once `reading` (anything comparable) has stayed the same for longer than STALE_PERIODS
    sensor periods (at least STALE_MIN_S). `period_s` is the sensor's update period."""

    def __init__(self, period_s):
        self.period_s = period_s
        self._last = None
        self._since = None

    @property
    def limit_s(self):
        return max(STALE_PERIODS * self.period_s, STALE_MIN_S)

    def stale(self, reading, t):
        if self._since is None or reading != self._last:
            self._last, self._since = reading, t
            return False
        return t - self._since > self.limit_s


def mark_stale(samples):
    """Flag fresh samples `stale` in place (the energy code leaves them out: a gap)."""
    for s in samples:
        if STALE not in s.flags:
            s.flags = s.flags + (STALE,)
    return samples


CLOCK_SHIFT_ENV = "EBEDGE_CLOCK_SHIFT_S"


def wall_shift():
    """Seconds added to every wall-clock reading: 0 normally; tests set EBEDGE_CLOCK_SHIFT_S to
    give a "board" a clock that disagrees with its laptop's by a known amount."""
    return float(os.environ.get(CLOCK_SHIFT_ENV, "0") or 0)


def now():
    """Both host clocks at once, monotonic first (wall clock shifted as `wall_shift` says)."""
    return time.monotonic(), time.time() + wall_shift()


class Meter(object):
    """Base class of all drivers.

    Life cycle: `open()` acquires the device (raising `MeterError` with a clear message if it
    cannot), `start()` begins background reading, `samples()` drains what was read since the
    last call, `stop()` ends reading, `close()` releases the device. `with meter:` does
    open+start and stop+close.

    Class attributes a driver sets:
      name          registry name
      method        MEASURED, or MODELLED for estimates
      accuracy_pct  the meter's accuracy class in percent of reading, where known (for uncertainty)
      trust         order in `detect()`: higher is preferred
      max_power_w   the most any reading of this meter can physically be; above it (or below 0)
                    a sample is flagged `overrange` and ebedge.measure.energy leaves it out
      holds_readings  True where the source updates on its own clock and a faster poll reads the
                    same value again (on-board sensors, tegrastats, jtop): only such a stream is
                    integrated as held; a meter that measures at each request never is
    Instance attributes: `total_rails`, the rails that formed the `total` rail, once known;
    `sensor_interval_s`, how often the source itself updates where it says so (None: unknown);
    `stale_readings`, readings flagged `stale` (the source answered with a frozen value).

    A reading that fails transiently (`is_transient`) never ends the reader: it retries with
    backoff (at most `MAX_BACKOFF_S` apart), counts the failure in `read_errors`, and flags the
    next reading of each rail it missed `gap`, so the energy code leaves that interval out.
    """

    name = "base"
    method = MEASURED
    accuracy_pct = None
    trust = 0
    default_interval_s = 0.1
    max_power_w = 100000.0  # 100 kW: no meter ebedge drives can read more; drivers set their own
    holds_readings = False
    MAX_BACKOFF_S = 2.0

    def __init__(self, interval_s=None):
        self.interval_auto = interval_s is None  # a driver may follow its sensor's rate
        self.interval_s = float(interval_s if interval_s is not None else self.default_interval_s)
        if self.interval_s <= 0:
            raise MeterError("%s: interval must be positive, got %r" % (self.name, interval_s))
        self.total_rails = []
        self.sensor_interval_s = None
        self.stale_readings = 0
        self._lock = threading.Lock()
        self._buffer = []
        self._thread = None
        self._stopping = threading.Event()
        self.error = None  # an exception that ended the reader thread, if any
        self.read_errors = 0  # transient read failures survived
        self.gaps = 0  # times reading resumed after missed readings (each flagged `gap`)
        self.last_read_error = None
        self._gap_all = False  # every rail's next reading follows a missed one
        self._gap_rails = set()  # rails whose next reading follows a missed one

    # -- life cycle ---------------------------------------------------------------------------
    def open(self):
        """Acquire the device; raise MeterError if it is missing, busy or the wrong device."""

    def close(self):
        """Release the device."""

    def start(self):
        if self._thread is not None:
            raise MeterError("%s: already started" % self.name)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run_reader, name="meter-%s" % self.name)
        self._thread.daemon = True
        self._thread.start()

    def stop(self):
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 3 * self.interval_s))
            self._thread = None

    def samples(self):
        """Return and forget the samples read since the last call, oldest first."""
        with self._lock:
            out, self._buffer = self._buffer, []
        return out

    def __enter__(self):
        self.open()
        try:
            self.start()
        except Exception:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        self.close()
        return False

    def describe(self):
        """Facts for `config.json`: what this meter is and how it was set up."""
        return {"name": self.name, "method": self.method, "interval_s": self.interval_s,
                "accuracy_pct": self.accuracy_pct, "max_power_w": self.max_power_w,
                "total_rails": list(self.total_rails),
                "sensor_interval_s": self.sensor_interval_s,
                "stale_readings": self.stale_readings}

    def fault_summary(self):
        """One line on the read failures and frozen readings this meter survived, or None."""
        parts = []
        if self.read_errors:
            parts.append("%d failed read(s) retried, %d gap(s) flagged (last: %s)" % (
                self.read_errors, self.gaps, self.last_read_error))
        if self.stale_readings:
            parts.append("%d reading(s) flagged stale (the source stopped updating)"
                         % self.stale_readings)
        return "%s: %s" % (self.name, "; ".join(parts)) if parts else None

    # -- for drivers ----------------------------------------------------------------------------
    def _note_read_error(self, exc, rails=None):
        """Count a failed read; the next reading of `rails` (every rail when None) says `gap`."""
        self.read_errors += 1
        self.last_read_error = "%s: %s" % (type(exc).__name__, exc)
        if rails is None:
            self._gap_all = True
        else:
            self._gap_rails.update(rails)

    def _emit(self, samples):
        if self._gap_all or self._gap_rails:
            pending = len(self._gap_rails)
            was_all = self._gap_all and bool(samples)
            samples = [self._mark_gap(s) for s in samples]
            if was_all or len(self._gap_rails) < pending:
                self.gaps += 1
            if samples:
                self._gap_all = False
        samples = [self._check_range(s) for s in samples]
        with self._lock:
            self._buffer.extend(samples)

    def _mark_gap(self, s):
        """Flag `s` `gap` when its rail missed readings (mutates the fresh sample in place)."""
        if not (self._gap_all or s.rail in self._gap_rails):
            return s
        self._gap_rails.discard(s.rail)
        if GAP not in s.flags:
            s.flags = s.flags + (GAP,)
        return s

    def _stale(self, samples):
        """Flag a poll's samples `stale` and count them."""
        self.stale_readings += len(samples)
        return mark_stale(samples)

    def _check_range(self, s):
        flag = plausible(s.power_w, self.max_power_w)
        if flag is not None and flag not in s.flags:
            s.flags = s.flags + (flag,)
        return s

    def _run_reader(self):
        try:
            self._read_loop()
        except Exception as exc:  # reported through .error, never silently lost
            self.error = exc

    def _backoff(self, failures):
        """Seconds to wait after `failures` failed reads in a row: doubling, capped."""
        return min(self.interval_s * 2 ** (failures - 1), max(self.MAX_BACKOFF_S, self.interval_s))

    def _read_loop(self):
        """Default: poll `read()` every interval on a fixed schedule (no drift); a transient
        failure is retried with backoff and the readings it cost are flagged."""
        next_t = time.monotonic()
        failures = 0
        while not self._stopping.is_set():
            try:
                samples = self.read()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                failures += 1
                self._note_read_error(exc)
                self._stopping.wait(self._backoff(failures))
                next_t = time.monotonic()
                continue
            failures = 0
            self._emit(samples)
            next_t += self.interval_s
            delay = next_t - time.monotonic()
            if delay < 0:  # we fell behind; do not burst to catch up
                next_t = time.monotonic()
                delay = 0
            self._stopping.wait(delay)

    def read(self):
        """One poll: a list of Samples (polling drivers implement this)."""
        raise NotImplementedError

    @classmethod
    def probe(cls):
        """(available, reason) on this machine, without side effects."""
        return False, "no probe"


_REGISTRY = {}


def register(cls):
    """Class decorator: make a driver available by its `name`."""
    _REGISTRY[cls.name] = cls
    return cls


def names():
    _load_builtin_drivers()
    return sorted(_REGISTRY)


def may_hold(name):
    """Whether the meter called `name` (a recording's `name@where` too) can return a held reading;
    False for a name no driver has."""
    try:
        return bool(get(str(name).split("@")[0]).holds_readings)
    except MeterError:
        return False


def get(name):
    """The driver class called `name`; MeterError naming the known ones otherwise."""
    _load_builtin_drivers()
    if name not in _REGISTRY and name in _IMPORT_FAILURES:
        raise MeterError("meter %r is unavailable: %s" % (name, _IMPORT_FAILURES[name]))
    try:
        return _REGISTRY[name]
    except KeyError:
        raise MeterError("unknown meter %r; known meters: %s" % (name, ", ".join(sorted(_REGISTRY))))


def create(name, **options):
    """A meter of the driver called `name`, built with `options` (the driver's keyword arguments,
    e.g. `interval_s`); use it as a context manager, then read `samples()`. MeterError for a name
    that is unknown or whose driver cannot load here."""
    return get(name)(**options)


def detect():
    """Every registered meter as (name, available, reason), most trusted first."""
    _load_builtin_drivers()
    rows = []
    for cls in sorted(_REGISTRY.values(), key=lambda c: (-c.trust, c.name)):
        try:
            ok, reason = cls.probe()
        except Exception as exc:  # a probe must never break detection
            ok, reason = False, "probe failed: %s" % exc
        rows.append((cls.name, bool(ok), reason))
    rows.extend((name, False, reason) for name, reason in sorted(_IMPORT_FAILURES.items())
                if name not in _REGISTRY)
    return rows


def best_available():
    """Name of the most trusted meter this machine has (the modelled estimate as the last resort)."""
    for name, ok, _ in detect():
        if ok:
            return name
    return None


_BUILTIN_MODULES = ("meters.ina3221", "meters.tegrastats", "meters.jtop", "meters.rapl",
                    "meters.nvml", "meters.model", "meters.serial.wattsup", "meters.serial.scpi",
                    "meters.serial.um", "meters.serial.lines")
_IMPORT_FAILURES = {}  # meter name -> why its driver module could not be imported


def _load_builtin_drivers():
    """Import every driver; one whose own dependency is missing is reported, not fatal."""
    import importlib
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            _IMPORT_FAILURES[mod.rsplit(".", 1)[-1]] = "cannot import its driver: %s" % exc
