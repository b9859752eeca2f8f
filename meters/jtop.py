"""Jetson power through jetson-stats (`jtop`), for boards where its service is already running.

What `jetson.power` holds differs per jetson-stats version (read from its source at tags 3.1.4,
4.0.0, 4.1.5, 4.2.12 and 4.3.1):
- 3.x: a tuple `(total, rails)`, values `{'cur': mW, 'avg': mW}` parsed from tegrastats, rail names
  shortened (`VDD_` and `POM_` dropped, `_` -> space: `VDD_SYS_GPU` -> `SYS GPU`). The first rail
  whose short name contains `IN` is moved out of `rails` into `total` (which carries no name);
  without one, `total` is the sum of all rails.
- 4.0.x: the same, and `VDDQ_` is dropped too (so on AGX Orin `VIN_SYS_5V0` becomes the "total").
- 4.1.x: the same tuple, but only `POM_5V_IN` is moved out (names shortened after that); on every
  other board `total` is the sum of all rails, the input rail included.
- 4.2 on: `{'rail': {NAME: {'volt': mV, 'curr': mA, 'power': mW, 'avg', 'online', ...}},
  'tot': {...}}`, read from sysfs; `VDD_IN` or `POM_5V_IN` is moved from `rail` into `tot`, which
  then names it (`'name'`); otherwise `tot` is an unnamed sum of all rails.
So ebedge puts the input rail back under its tegrastats name, forms the total with the board rule
(meters.boards; a `total_rails` override sees the input rail too), and uses only instantaneous
values: `avg` is tegrastats' since-start mean (3.x/4.0/4.1) or a 2-tap moving average (4.2 on).

Every poll first asks `jetson.ok(spin=True)`: a dead service ends the meter with a message instead
of repeating its last reading. The client calls an `attach`ed observer on each reading the
service sends; a poll that finds no new one since the last is a repeat (dropped, not stamped as a
new reading), and when none has come for longer than base.STALE_PERIODS service intervals (a
stopped service, or on 3.x-4.1 its tegrastats child killed, both of which leave `ok()` true) the
readings are flagged `stale`, a gap. jetson-stats 3.x cannot parse JetPack 5's tegrastats (`mW`
units) and gives no rails there: the meter refuses to open with that reason. The client always
connects to /run/jtop.sock. Closing a client whose service is stopped blocks in the library: it
is given `CLOSE_WAIT_S` and then left behind, said in `describe()`.
"""
import os

from meters import boards
import threading

from meters.base import TOTAL, Freshness, Meter, MeterError, Sample, now, register

SOCKET = "/run/jtop.sock"
CLOSE_WAIT_S = 2.0

# tegrastats rail names per board, in tegrastats' order (docs/reference/jetson-power-sensing.md),
# to undo jetson-stats' shortening and to name the input rail it moved out.
_BOARD_RAILS = (
    ("TX1", ("VDD_IN", "VDD_CPU", "VDD_GPU")),
    ("TX2, L4T 28", ("VDD_IN", "VDD_CPU", "VDD_GPU", "VDD_SOC", "VDD_WIFI", "VDD_DDR")),
    ("TX2, L4T 32", ("VDD_SYS_GPU", "VDD_SYS_SOC", "VDD_4V0_WIFI", "VDD_IN", "VDD_SYS_CPU",
                     "VDD_SYS_DDR")),
    ("Nano", ("POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU")),
    ("AGX Xavier", ("GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V")),
    ("Xavier NX/Orin NX/Orin Nano", ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC")),
    ("AGX Orin", ("VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO")),
    ("Thor", ("VDD_GPU", "VDD_CPU_SOC_MSS", "VIN_SYS_5V0", "VIN")),
)
_TUPLE_UNTIL = (4, 2)  # jetson-stats before 4.2 gives (total, rails)


def _import_jtop():
    try:
        import jtop
    except ImportError:
        raise MeterError("jtop: jetson-stats is not installed (pip3 install 'jetson-stats<5' on "
                         "JetPack 4)")
    return jtop


def version_of(module):
    """jetson-stats' version as a tuple of ints, e.g. (4, 1, 5); None when it does not say."""
    parts = []
    for piece in str(getattr(module, "__version__", "")).split("."):
        digits = "".join(c for c in piece if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) or None


def short_name(name, version):
    """The key jetson-stats < 4.2 gives a tegrastats rail: VDD_SYS_GPU -> 'SYS GPU'."""
    if version >= (4, 0):
        name = name.replace("VDDQ_", "")
    return name.replace("VDD_", "").replace("POM_", "").replace("_", " ")


def _board_of(shorts, version):
    """The board rail list whose shortened names cover every key jtop gave, or None."""
    for _, rails in _BOARD_RAILS:
        mine = set(short_name(r, version) for r in rails)
        if set(shorts) <= mine:
            return rails
    return None


def _long_name(short, board, version):
    for rail in board or ():
        if short_name(rail, version) == short:
            return rail
    if short in ("GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"):  # a board we do not list
        return short
    name = short.replace(" ", "_")
    return ("POM_" if name.startswith("5V") else "VDD_") + name


def _moved_input(total, rails, board, version):
    """The tegrastats name of the rail jetson-stats < 4.2 moved into `total`; None when `total`
    is its sum of all rails; "" when a rail was moved but it cannot be named."""
    if total.get("cur") == sum(r["cur"] for r in rails.values()) and \
            total.get("avg") == sum(r["avg"] for r in rails.values()):
        return None
    if version >= (4, 1):
        return "POM_5V_IN"
    for rail in board or ():
        if "IN" in short_name(rail, version) and short_name(rail, version) not in rails:
            return rail
    return ""


def rails_mw(power, version):
    """({tegrastats rail name: mW} with the input rail put back, name of jtop's input rail or
    None, jtop's own total in mW) from `jetson.power` as the given jetson-stats version shapes it."""
    if isinstance(power, dict) and "rail" in power:
        out = {name: float(r["power"]) for name, r in power["rail"].items()
               if r.get("online", True) and r.get("power") is not None}
        tot = power.get("tot") or {}
        name = tot.get("name")
        if name and tot.get("power") is not None:
            out[name] = float(tot["power"])
        return out, name, tot.get("power")
    if isinstance(power, (tuple, list)) and len(power) == 2:
        total, rails = power
        total = total or {}
        if version is None or version >= _TUPLE_UNTIL:
            version = (3, 0)  # an old shape from a module that does not say its version
        board = _board_of(rails, version)
        out = {_long_name(k, board, version): float(r["cur"]) for k, r in rails.items()}
        name = _moved_input(total, rails, board, version) if rails else None
        if name and total.get("cur") is not None:
            out[name] = float(total["cur"])
        return out, name, total.get("cur")
    raise MeterError("jtop: unrecognised jetson.power structure %r" % (type(power).__name__,))


@register
class JtopMeter(Meter):
    """Polls `jetson.power` every interval (jtop's own service interval may be slower)."""

    name = "jtop"
    holds_readings = True
    trust = 70
    default_interval_s = 0.5
    max_power_w = 1000.0  # the same INA3221 sensors as the ina3221 meter

    def __init__(self, interval_s=None, total_rails=None):
        Meter.__init__(self, interval_s)
        self.total_override = total_rails
        self._jetson = None
        self.version = None
        self.service_interval_s = None
        self.repeats_dropped = 0
        self.updates = 0  # readings the service sent (counted by our observer)
        self._seen = None  # `updates` at the last reading kept
        self._fresh = None
        self.close_hung = False
        self.total_error = None

    @classmethod
    def probe(cls):
        try:
            _import_jtop()
        except MeterError as exc:
            return False, str(exc)
        if not os.path.exists(SOCKET):
            return False, "jtop service not running (%s missing)" % SOCKET
        return True, "jtop service at %s" % SOCKET

    def open(self):
        jtop = _import_jtop()
        try:
            jetson = jtop.jtop(interval=self.interval_s)
            jetson.attach(self._on_update)
            jetson.start()
        except Exception as exc:  # JtopException and permission errors come in many types
            hint = ("is the service running? `sudo systemctl start jtop`" if not
                    os.path.exists(SOCKET) else "are you in group jtop?")
            raise MeterError("jtop: cannot connect to the service at %s: %s (%s)"
                             % (SOCKET, exc, hint))
        self._jetson = jetson
        self.version = version_of(jtop)
        self.service_interval_s = float(getattr(jetson, "interval", None) or self.interval_s)
        self.sensor_interval_s = self.service_interval_s
        self._fresh = Freshness(self.service_interval_s)
        power = jetson.power
        if isinstance(power, (tuple, list)) and len(power) == 2 and not power[1]:
            self.close()
            raise MeterError("jtop: jetson-stats %s gives no power rails on this board%s; use the "
                             "ina3221 meter or jetson-stats 4" % (
                                 ".".join(map(str, self.version or ())) or "(unknown version)",
                                 " (3.x cannot parse JetPack 5's tegrastats, which prints mW)"
                                 if self.version and self.version < (4, 0) else ""))

    def _on_update(self, jetson):
        self.updates += 1

    def close(self):
        """Close the client; one that does not return in CLOSE_WAIT_S (its service stopped) is
        left to its daemon thread, so that closing never hangs the process."""
        if self._jetson is None:
            return
        closer = threading.Thread(target=self._jetson.close, name="jtop-close")
        closer.daemon = True
        closer.start()
        closer.join(CLOSE_WAIT_S + 2 * (self.service_interval_s or 0))
        self.close_hung = closer.is_alive()
        self._jetson = None

    def describe(self):
        info = Meter.describe(self)
        info.update(jtop_version=".".join(map(str, self.version)) if self.version else None,
                    service_interval_s=self.service_interval_s,
                    repeats_dropped=self.repeats_dropped, total_error=self.total_error,
                    close_hung=self.close_hung)
        return info

    def _alive(self):
        try:
            ok = self._jetson.ok(spin=True)
        except Exception as exc:  # the client re-raises what killed its connection
            raise MeterError("jtop: the service failed: %s: %s" % (type(exc).__name__, exc))
        if not ok:
            raise MeterError("jtop: the service stopped (jetson.ok() is false); no readings "
                             "after this point")

    def read(self):
        self._alive()
        t_mono, t_wall = now()
        updates = self.updates
        stale = self._fresh.stale(updates, t_mono)
        if updates == self._seen and not stale:
            self.repeats_dropped += 1  # the service has not sent a new reading yet
            return []
        self._seen = updates
        rails, input_name, _ = rails_mw(self._jetson.power, self.version)
        out = [Sample(t_mono, t_wall, self.name, r, mw / 1000.0) for r, mw in sorted(rails.items())]
        try:
            watts, used = boards.total_power(rails, override=self.total_override)
        except boards.UnknownBoard as exc:
            if self.total_override or not input_name:
                self.total_error = str(exc)
                return self._stale(out) if stale else out
            watts, used = rails[input_name], [input_name]  # jtop's named input rail
        self.total_rails = used
        out.append(Sample(t_mono, t_wall, self.name, TOTAL, watts / 1000.0))
        return self._stale(out) if stale else out
