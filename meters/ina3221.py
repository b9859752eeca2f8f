"""Jetson on-board INA3221 power monitors, read straight from sysfs (no daemon, microsecond reads).

Two layouts exist (see docs/reference/jetson-power-sensing.md):
- JetPack <= 4: NVIDIA's IIO driver `ina3221x`, `.../iio:deviceN/rail_name_k` with
  `in_power{k}_input` [mW] (plus in_voltage/in_current), k = 0..2;
- JetPack >= 5: mainline hwmon `ina3221`, `.../hwmon/hwmonM/in{n}_label` with `in{n}_input` [mV]
  and `curr{n}_input` [mA], n = 1..3, no power file, so power = V x I.
Unconnected channels (`NC`) and channel 7 (sum of shunt voltages) are skipped. Jetson AGX Thor's
module input `VIN` sits on a carrier-board INA238 (hwmon `ina238`: `in1_input` bus mV,
`curr1_input` mA, `power1_input` uW), outside the ina3221 driver; it is read from there too.
Everything is found under a configurable `root`, so tests point it at a fake tree.

The INA3221 converts at its own pace (conversion time x averaged samples x channels); reading
faster returns the same value again. JetPack 5+ hwmon says that period in `update_interval` [ms]
(and the averaging in `samples`); it is read at open (`sensor_interval_s`), and with no interval
asked for, polling follows it (never faster than the sensor updates, nor than the default).
JetPack 4's IIO driver does not say it; energy.csv's `sensor_update_hz` measures it from the
stream on every layout. A reading (every rail) unchanged for longer than base.STALE_PERIODS
sensor periods comes from a frozen sensor: flagged `stale`, a gap.

A failed read (EAGAIN from the JetPack 4 driver after its own retries, a hwmon conversion
timeout, a file gone for a moment) costs only that rail's reading: the others are kept, the
total is left out for that poll, and the next good reading of each is flagged `gap`.
"""
import glob
import os

from meters import boards
from meters.base import (TOTAL, Freshness, Meter, MeterError, ReadError, Sample, is_transient, now,
                         register)

# Where each layout lives, relative to root. The L4T 28.1 path is the only one for early TX2s.
_IIO_GLOBS = ("sys/bus/i2c/drivers/ina3221x/*/iio:device*",
              "sys/devices/*.i2c/i2c-*/*-*/iio_device")
_HWMON_GLOB = "sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*"
_INA238_GLOB = "sys/bus/i2c/drivers/ina238/*/hwmon/hwmon*"
_INA238_RAIL = "VIN"  # what it measures on AGX Thor (the name jetson-stats gives it too)
_UNCONNECTED = "NC"


class Channel(object):
    """One connected rail: where to read it and in which layout."""

    __slots__ = ("rail", "power_path", "voltage_path", "current_path", "power_scale")

    def __init__(self, rail, power_path, voltage_path, current_path, power_scale=1e-3):
        self.rail = rail
        self.power_path = power_path      # power file or None (ina3221 hwmon: V x I)
        self.voltage_path = voltage_path  # mV
        self.current_path = current_path  # mA
        self.power_scale = power_scale    # watts per unit of the power file: mW (iio), uW (ina238)

    def read(self):
        """(watts, volts or None, amps or None); ReadError/OSError when the sensor did not answer."""
        volts = _read_number(self.voltage_path) / 1000.0 if self.voltage_path else None
        amps = _read_number(self.current_path) / 1000.0 if self.current_path else None
        if self.power_path:
            watts = _read_number(self.power_path) * self.power_scale
        else:
            watts = volts * amps
        return watts, volts, amps


def _read_number(path):
    """The leading integer of a sysfs attribute. Read with bare os calls: a 100 Hz poll of every
    rail is hundreds of reads a second, and a Python file object costs several times more."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, 64)
    finally:
        os.close(fd)
    # Some JetPack 4 files carry a unit suffix (`0 ms`, `1000 ma`); the number comes first.
    try:
        return int(data.split()[0])
    except (IndexError, ValueError):  # empty or garbled: the driver gave no value this time
        raise ReadError("%s: no number in %r" % (path, data[:40]))


def _read_text(path):
    with open(path) as f:
        return f.read().strip()


def _existing(path):
    return path if os.path.exists(path) else None


def _iio_channels(dev):
    out = []
    for name_file in sorted(glob.glob(os.path.join(dev, "rail_name_*"))):
        k = name_file.rsplit("_", 1)[1]
        out.append(Channel(_read_text(name_file),
                           _existing(os.path.join(dev, "in_power%s_input" % k)),
                           _existing(os.path.join(dev, "in_voltage%s_input" % k)),
                           _existing(os.path.join(dev, "in_current%s_input" % k))))
    return out


def _hwmon_channels(dev):
    out = []
    for label_file in sorted(glob.glob(os.path.join(dev, "in*_label"))):
        n = os.path.basename(label_file)[2:-len("_label")]
        if n == "7":  # sum of shunt voltages, not a rail
            continue
        volt = _existing(os.path.join(dev, "in%s_input" % n))
        curr = _existing(os.path.join(dev, "curr%s_input" % n))
        if volt and curr:
            out.append(Channel(_read_text(label_file), None, volt, curr))
    return out


def _ina238_channels(dev):
    """The INA238's one channel (bus mV, mA, and a power file in microwatts)."""
    volt = _existing(os.path.join(dev, "in1_input"))
    curr = _existing(os.path.join(dev, "curr1_input"))
    power = _existing(os.path.join(dev, "power1_input"))
    if not (power or (volt and curr)):
        return []
    return [Channel(_INA238_RAIL, power, volt, curr, power_scale=1e-6)]


def sensor_settings(root="/"):
    """(update interval in seconds or None, averaged samples or None) of the slowest hwmon
    INA3221 under `root`, as its driver states them (JetPack 5+)."""
    intervals, samples = [], []
    for dev in sorted(glob.glob(os.path.join(root, _HWMON_GLOB))):
        for name, into in (("update_interval", intervals), ("samples", samples)):
            path = os.path.join(dev, name)
            try:
                into.append(_read_number(path))
            except (IOError, OSError, ReadError):  # absent on older kernels: not stated
                pass
    return (max(intervals) / 1000.0 if intervals else None), (max(samples) if samples else None)


def discover(root="/"):
    """Every connected INA3221 channel (and Thor's INA238 VIN) under `root`, in a stable order,
    duplicates dropped."""
    channels = []
    devs = []
    for pattern in _IIO_GLOBS:
        devs = sorted(glob.glob(os.path.join(root, pattern)))
        if devs:
            break
    for dev in devs:
        channels.extend(_iio_channels(dev))
    for dev in sorted(glob.glob(os.path.join(root, _HWMON_GLOB))):
        channels.extend(_hwmon_channels(dev))
    for dev in sorted(glob.glob(os.path.join(root, _INA238_GLOB))):
        channels.extend(_ina238_channels(dev))
    seen = set()
    out = []
    for ch in channels:
        if ch.rail == _UNCONNECTED or ch.rail in seen:
            continue
        seen.add(ch.rail)
        out.append(ch)
    return out


@register
class Ina3221Meter(Meter):
    """Polls every INA3221 rail each interval and adds the board's total (meters.boards).

    Options: `root` (default "/"), `total_rails` ("A+B" override of the board table).
    Highest trust on a Jetson: the sensors themselves, read without any daemon in between.
    """

    name = "ina3221"
    holds_readings = True
    trust = 90
    default_interval_s = 0.1
    max_power_w = 1000.0  # far above any Jetson's input (INA3221: 26 V bus, 163.8 mV shunt range)

    def __init__(self, interval_s=None, root="/", total_rails=None):
        Meter.__init__(self, interval_s)
        self.root = root
        self.total_override = total_rails
        self.channels = []
        self._rule = None
        self.total_error = None
        self.sensor_samples = None
        self._fresh = None

    @classmethod
    def probe(cls):
        chans = discover("/")
        if not chans:
            return False, "no INA3221 under /sys/bus/i2c/drivers/ina3221{x,} (not a Jetson?)"
        return True, "%d rails: %s" % (len(chans), ", ".join(c.rail for c in chans))

    def open(self):
        self.channels = discover(self.root)
        if not self.channels:
            raise MeterError("ina3221: no INA3221 rails under %s (ina3221x iio or ina3221 hwmon)"
                             % self.root)
        try:
            for ch in self.channels:
                ch.read()
        except (IOError, OSError, ReadError) as exc:
            raise MeterError("ina3221: cannot read %s: %s (root needed on some images)"
                             % (ch.rail, exc))
        self.sensor_interval_s, self.sensor_samples = sensor_settings(self.root)
        if self.interval_auto and self.sensor_interval_s:
            self.interval_s = max(self.interval_s, self.sensor_interval_s)
        self._fresh = Freshness(self.sensor_interval_s or self.interval_s)
        names = [c.rail for c in self.channels]
        try:
            self._rule = boards.total_rule(names, model=boards.board_model(self.root),
                                           override=self.total_override)
            self.total_rails = list(self._rule.rails)
        except boards.UnknownBoard as exc:
            self.total_error = str(exc)

    def read(self):
        """Every rail that answered, and the total when all of its rails did; ReadError only
        when no rail answered at all (the base loop then backs off)."""
        t_mono, t_wall = now()
        out = []
        watts = {}
        by_rail = {}
        failed = []
        last_exc = None
        raw = []
        for ch in self.channels:
            try:
                w, v, a = ch.read()
                raw.append((w, v, a))
            except Exception as exc:
                if not is_transient(exc):
                    raise
                failed.append(ch.rail)
                last_exc = exc
                continue
            watts[ch.rail] = w
            by_rail[ch.rail] = Sample(t_mono, t_wall, self.name, ch.rail, w, v, a)
            out.append(by_rail[ch.rail])
        if not out:
            raise ReadError("ina3221: no rail answered (%s)" % last_exc)
        total_ok = self._rule is not None and all(r in watts for r in self._rule.rails)
        if failed:
            self._note_read_error(last_exc, failed + ([] if total_ok else [TOTAL]))
        if total_ok:
            # a one-rail total (the module input) keeps that rail's volts and amps
            one = by_rail[self.total_rails[0]] if len(self.total_rails) == 1 else None
            out.append(Sample(t_mono, t_wall, self.name, TOTAL, self._rule.total(watts),
                              one.voltage_v if one else None, one.current_a if one else None))
        if not failed and self._fresh.stale(raw, t_mono):
            self._stale(out)
        return out

    def describe(self):
        info = Meter.describe(self)
        info.update(root=self.root, rails=[c.rail for c in self.channels],
                    total_error=self.total_error, sensor_samples=self.sensor_samples)
        return info
