"""Fake INA3221 sysfs trees, laid out as on the boards, whose readings follow a PowerProfile.

Layouts follow docs/reference/jetson-power-sensing.md section 2: JetPack 4 `ina3221x` IIO for TX2, Nano and Xavier NX
(and AGX Xavier), JetPack 5+ `ina3221` hwmon for AGX Orin and Orin NX, and on AGX Thor the
`ina3221` hwmon module rails plus the carrier's `ina238` (VIN: `in1_input` mV, `curr1_input` mA,
`power1_input` uW). The board's total (its input rail, or the documented sum) equals P(t); every
other rail is a fixed fraction of P(t). So the truth for the `total` rail is
`profile.energy(t0, t1)` in simulator seconds.

Values are rewritten by `write(t)` (a given sim time) or by a background thread or process
(`start()`), in place and at fixed width so that a reader never sees half a number. In the
background the last digit moves by one or two units up or down (noise, as a real ADC's), so a
steady load never reads as a frozen or a held sensor, and `stop()` freezes the values as a hung sensor
does. With `update_interval_ms` the tree updates only at multiples of that interval after its
start, each time to the average power over the interval just ended (as the INA3221 reports the
mean of its conversions), and hwmon trees state it in `update_interval`; the truth of a held
stream integrated as held is then exact at update boundaries. `vanish(rail, seconds)`
takes a rail's value file away for a while, as a driver that fails its reads does.
"""
import math
import multiprocessing
import os
import random
import tempfile
import threading
import time

from meters.sim import registry
from meters.sim.profile import PowerProfile

# board -> (layout, model string, [([layout, ]device dir under the driver, [(rail, mV, share)])]).
# A device names its own layout where it differs from the board's (Thor's ina238).
# The shares of the rails that form the board's total add up to 1.
BOARDS = {
    "tx2": ("iio", "NVIDIA Jetson TX2", [
        ("0-0040/iio:device0", [("VDD_SYS_GPU", 19136, 0.05), ("VDD_SYS_SOC", 19144, 0.22),
                                ("VDD_4V0_WIFI", 4784, 0.0)]),
        ("0-0041/iio:device1", [("VDD_IN", 19144, 1.0), ("VDD_SYS_CPU", 19128, 0.05),
                                ("VDD_SYS_DDR", 4776, 0.29)])]),
    "nano": ("iio", "NVIDIA Jetson Nano Developer Kit", [
        ("6-0040/iio:device0", [("POM_5V_IN", 5000, 1.0), ("POM_5V_GPU", 5000, 0.1),
                                ("POM_5V_CPU", 5000, 0.2)])]),
    "xavier-nx": ("iio", "NVIDIA Jetson Xavier NX Developer Kit", [
        ("7-0040/iio:device0", [("VDD_IN", 5000, 1.0), ("VDD_CPU_GPU_CV", 5000, 0.3),
                                ("VDD_SOC", 5000, 0.25)])]),
    "agx-xavier": ("iio", "Jetson-AGX", [
        ("1-0040/iio:device0", [("GPU", 19000, 0.2), ("CPU", 19000, 0.2), ("SOC", 19000, 0.2)]),
        ("1-0041/iio:device1", [("CV", 19000, 0.1), ("VDDRQ", 19000, 0.1),
                                ("SYS5V", 5000, 0.2)])]),
    "agx-orin": ("hwmon", "Jetson AGX Orin Developer Kit", [
        ("1-0040/hwmon/hwmon3", [("VDD_GPU_SOC", 5000, 0.35), ("VDD_CPU_CV", 5000, 0.15),
                                 ("VIN_SYS_5V0", 5000, 0.5)]),
        ("1-0041/hwmon/hwmon4", [("NC", 0, 0.0), ("VDDQ_VDD2_1V8AO", 5000, 0.05),
                                 ("NC", 0, 0.0)])]),
    "orin-nx": ("hwmon", "NVIDIA Orin NX Developer Kit", [
        ("1-0040/hwmon/hwmon3", [("VDD_IN", 5000, 1.0), ("VDD_CPU_GPU_CV", 5000, 0.3),
                                 ("VDD_SOC", 5000, 0.25)])]),
    # Bus numbers and addresses here are illustrative; the rail names are jetson-stats' and
    # tegrastats' (fixtures/tegrastats/thor-jp7.txt), the ina238 units its kernel driver's.
    "thor": ("hwmon", "NVIDIA Jetson AGX Thor Developer Kit", [
        ("1-0040/hwmon/hwmon1", [("VDD_GPU", 5000, 0.1), ("VDD_CPU_SOC_MSS", 5000, 0.3),
                                 ("VIN_SYS_5V0", 5000, 0.28)]),
        ("ina238", "2-0044/hwmon/hwmon2", [("VIN", 19000, 1.0)])]),
}
_DRIVER_DIR = {"iio": "sys/bus/i2c/drivers/ina3221x", "hwmon": "sys/bus/i2c/drivers/ina3221",
               "ina238": "sys/bus/i2c/drivers/ina238"}


def _write(path, value):
    with open(path, "w") as f:
        f.write("%s\n" % value)


class _ValueFile(object):
    """A value file rewritten in place with one fixed-width pwrite, so a concurrent reader sees
    the old number or the new one, never half of each (`int()` ignores the padding). Renaming a
    fresh file over it would be atomic too, but ext4 flushes on every such rename: ~3 ms each."""

    def __init__(self, path, value):
        _write(path, "%12d" % value)
        self.fd = os.open(path, os.O_WRONLY)

    def set(self, value):
        os.pwrite(self.fd, b"%12d\n" % value, 0)

    def close(self):
        os.close(self.fd)


class FakeIna3221Tree(object):
    """A fake `/sys` (plus /proc/device-tree/model) under `root` for one board."""

    def __init__(self, root, board, profile=None, t0=None, update_interval_ms=None):
        if board not in BOARDS:
            raise ValueError("unknown sysfs board %r; choose from %s"
                             % (board, ", ".join(sorted(BOARDS))))
        self.root = root
        self.board = board
        self.layout, self.model, self.devices = BOARDS[board]
        self.profile = profile or PowerProfile.default()
        self.t0 = time.monotonic() if t0 is None else t0
        if update_interval_ms is not None and float(update_interval_ms) <= 0:
            raise ValueError("update interval must be positive, got %r ms" % (update_interval_ms,))
        self.update_s = float(update_interval_ms) / 1000.0 if update_interval_ms else None
        self._values = []  # (share, mV, power _ValueFile or None, current _ValueFile, uW?)
        self._files = {}  # rail -> the paths of its changing value files
        self._thread = None
        self._stop = threading.Event()
        self._build()
        self.write(0.0)

    def _build(self):
        model_dir = os.path.join(self.root, "proc", "device-tree")
        os.makedirs(model_dir, exist_ok=True)
        with open(os.path.join(model_dir, "model"), "wb") as f:
            f.write(self.model.encode("ascii") + b"\x00")
        for device in self.devices:
            layout, rel, rails = device if len(device) == 3 else (self.layout,) + device
            dev = os.path.join(self.root, _DRIVER_DIR[layout], rel)
            os.makedirs(dev, exist_ok=True)
            {"iio": self._build_iio, "hwmon": self._build_hwmon,
             "ina238": self._build_ina238}[layout](dev, rails)

    def _value(self, rail, share, mv, power_path, curr_path, power_unit_uw=False):
        power = _ValueFile(power_path, 0) if power_path else None
        self._values.append((share, mv, power, _ValueFile(curr_path, 0), power_unit_uw))
        self._files[rail] = [p for p in (power_path, curr_path) if p]

    def _build_iio(self, dev, rails):
        for k, (rail, mv, share) in enumerate(rails):
            _write(os.path.join(dev, "rail_name_%d" % k), rail)
            _write(os.path.join(dev, "warn_current_limit_%d" % k), "4000 ma")
            _write(os.path.join(dev, "crit_current_limit_%d" % k), "5000 ma")
            _write(os.path.join(dev, "polling_delay_%d" % k), "0 ms")
            _write(os.path.join(dev, "in_voltage%d_input" % k), mv)
            self._value(rail, share, mv, os.path.join(dev, "in_power%d_input" % k),
                        os.path.join(dev, "in_current%d_input" % k))

    def _build_hwmon(self, dev, rails):
        _write(os.path.join(dev, "name"), "ina3221")
        _write(os.path.join(dev, "update_interval"),
               int(round(self.update_s * 1000)) if self.update_s else 1)
        _write(os.path.join(dev, "samples"), "4")
        for n, (rail, mv, share) in enumerate(rails, 1):
            _write(os.path.join(dev, "in%d_label" % n), rail)
            _write(os.path.join(dev, "curr%d_max" % n), "4000")
            _write(os.path.join(dev, "curr%d_crit" % n), "5000")
            _write(os.path.join(dev, "shunt%d_resistor" % n), "5000")
            _write(os.path.join(dev, "in%d_input" % (n + 3)), "0")
            _write(os.path.join(dev, "in%d_input" % n), mv)
            self._value(rail, share, mv, None, os.path.join(dev, "curr%d_input" % n))
        _write(os.path.join(dev, "in7_label"), "sum of shunt voltages")
        _write(os.path.join(dev, "in7_input"), "0")

    def _build_ina238(self, dev, rails):
        """One channel, no label: in0 shunt mV, in1 bus mV, curr1 mA, power1 uW, temp1 m°C."""
        (rail, mv, share), = rails
        _write(os.path.join(dev, "name"), "ina238")
        _write(os.path.join(dev, "in0_input"), "0")
        _write(os.path.join(dev, "in1_input"), mv)
        _write(os.path.join(dev, "temp1_input"), "38000")
        self._value(rail, share, mv, os.path.join(dev, "power1_input"),
                    os.path.join(dev, "curr1_input"), power_unit_uw=True)

    def write(self, t, lsb=0):
        """Set every rail to its share of P(t), t in simulator seconds (voltages stay fixed),
        each value file moved by `lsb` units (noise)."""
        self._set(self.profile.power(t), lsb)

    def _set(self, watts, lsb=0):
        """Every rail at its share of `watts`, each value file moved by `lsb` units (noise)."""
        p_mw = watts * 1000.0
        for share, mv, power_file, curr_file, power_uw in self._values:
            rail_mw = share * p_mw
            if power_file:
                power_file.set(_noisy(rail_mw * 1000.0 if power_uw else rail_mw, lsb))
            curr_file.set(_noisy(rail_mw * 1000.0 / mv, lsb) if mv else 0)

    def vanish(self, rail, seconds):
        """Take `rail`'s value files away for `seconds` (reads fail with ENOENT), from a timer
        thread; returns that thread. Renamed, not deleted, so the writer's open files live on."""
        paths = self._files[rail]
        for p in paths:
            os.rename(p, p + ".away")

        def restore():
            for p in paths:
                os.rename(p + ".away", p)
        timer = threading.Timer(seconds, restore)
        timer.daemon = True
        timer.start()
        return timer

    def start(self, rate_hz=100.0, process=False):
        """Rewrite the values from a background thread at `rate_hz`, following real time; with
        `process`, from a forked process, as a board's sensor goes on whatever the measured
        process does (a thread here would stop whenever it holds the interpreter lock)."""
        if self._thread is not None:
            raise RuntimeError("fake INA3221 tree already started")
        if process:
            context = multiprocessing.get_context("fork")
            self._stop = context.Event()
            self._thread = context.Process(target=self._loop, args=(1.0 / rate_hz,),
                                           name="fake-ina3221")
        else:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._loop, args=(1.0 / rate_hz,),
                                            name="fake-ina3221")
        self._thread.daemon = True
        self._thread.start()
        return self

    def show(self, t, lsb=0):
        """Set the values the sensor shows at sim time t: P(t), or with an update interval the
        mean power over the last whole interval before t; returns when they change next."""
        if self.update_s is None:
            self._set(self.profile.power(t), lsb)
            return t
        end = math.floor(t / self.update_s) * self.update_s  # the update just due
        self._set(self.profile.energy(end - self.update_s, end) / self.update_s, lsb)
        return end + self.update_s

    def _loop(self, period):
        signs = random.Random(0)  # seeded: a run of the simulator is repeatable
        while not self._stop.is_set():
            # two units either way, at random: zero on average; not alternating (a poll at half
            # the write rate would alias), and four values, so that a poll at a tenth of the
            # write rate sees a steady load repeat a reading one time in four, not one in two (a
            # steady, noisy stream must not look held)
            lsb = signs.choice((-2, -1, 1, 2))
            next_t = self.show(time.monotonic() - self.t0, lsb)
            self._stop.wait(period if self.update_s is None
                            else next_t - (time.monotonic() - self.t0))

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def close(self):
        """Stop and release the open value files (the tree stays on disk)."""
        self.stop()
        for _, _, power_file, curr_file, _ in self._values:
            for f in (power_file, curr_file):
                if f is not None:
                    f.close()
        self._values = []

    def truth(self, t0_mono, t1_mono):
        """Exact joules of the board total between two host monotonic times."""
        return self.profile.energy(t0_mono - self.t0, t1_mono - self.t0)

    @property
    def info(self):
        return [("board", self.board), ("root", self.root), ("t0_mono", repr(self.t0)),
                ("update_interval_ms", self.update_s * 1000.0 if self.update_s else "continuous"),
                ("use", "ebedge meters record --meter ina3221 --option root=%s" % self.root)]

    def __enter__(self):
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        if self._values and self._thread is None:
            self.close()


def _noisy(value, lsb):
    """`value` rounded, moved by `lsb` units, never below zero."""
    return max(0, int(round(value)) + lsb)


def _register_starter(board):
    @registry.starter("ina3221-" + board)
    def start(profile, root=None, rate_hz=100.0, update_interval_ms=None):
        root = root or tempfile.mkdtemp(prefix="ebedge-sysfs-%s-" % board)
        return FakeIna3221Tree(root, board, profile,
                               update_interval_ms=update_interval_ms).start(float(rate_hz))


for _board in sorted(BOARDS):
    _register_starter(_board)
