"""Jetson power through jetson-stats (`jtop`), for boards where its service is already running.

jtop 4.x gives `jetson.power = {'rail': {NAME: {'power': mW, 'volt', 'curr', 'avg', ...}},
'tot': {...}}`; jtop 3.x gives a tuple `(total, rails)` with `{'cur': mW, 'avg': mW}` values and
rail names shortened (`VDD_`/`POM_` dropped, `_` -> space). Only the instantaneous value is used:
jtop's `avg` is a 2-tap moving average (4.x) or tegrastats' since-start mean (3.x). The total is
formed by meters.boards from the rails, not taken from jtop, whose sum on AGX Orin double counts.
"""
import os

from meters import boards
from meters.base import TOTAL, Meter, MeterError, Sample, now, register

SOCKET = "/run/jtop.sock"
# Bare rail names that jtop 3.x leaves as they are (AGX Xavier); others regain their prefix.
_BARE = {"GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"}


def _import_jtop():
    try:
        import jtop
    except ImportError:
        raise MeterError("jtop: jetson-stats is not installed (pip3 install 'jetson-stats<5' on "
                         "JetPack 4)")
    return jtop


def v3_rail_name(short):
    """A jtop 3.x rail key back to the tegrastats name: '5V GPU' -> POM_5V_GPU, 'IN' -> VDD_IN."""
    if short in _BARE:
        return short
    name = short.replace(" ", "_")
    return ("POM_" if name.startswith("5V") else "VDD_") + name


def rails_mw(power):
    """({rail: mW}, jtop's total dict) from either shape of `jetson.power`; instantaneous only."""
    if isinstance(power, dict) and "rail" in power:
        return {name: float(r["power"]) for name, r in power["rail"].items()
                if r.get("online", True) and r.get("power") is not None}, power.get("tot") or {}
    if isinstance(power, (tuple, list)) and len(power) == 2:
        total, rails = power
        return {v3_rail_name(name): float(r["cur"]) for name, r in rails.items()}, total or {}
    raise MeterError("jtop: unrecognised jetson.power structure %r" % (type(power).__name__,))


@register
class JtopMeter(Meter):
    """Polls `jetson.power` every interval (jtop's own service interval may be slower)."""

    name = "jtop"
    trust = 70
    default_interval_s = 0.5

    def __init__(self, interval_s=None, socket_path=SOCKET, total_rails=None):
        Meter.__init__(self, interval_s)
        self.socket_path = socket_path
        self.total_override = total_rails
        self._jetson = None
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
        if not os.path.exists(self.socket_path):
            raise MeterError("jtop: service socket %s missing; start it with "
                             "`sudo systemctl start jtop`" % self.socket_path)
        try:
            jetson = jtop.jtop(interval=self.interval_s)
            jetson.start()
        except Exception as exc:  # JtopException and permission errors come in many types
            raise MeterError("jtop: cannot connect to the service: %s (are you in group jtop?)"
                             % exc)
        self._jetson = jetson

    def close(self):
        if self._jetson is not None:
            self._jetson.close()
            self._jetson = None

    def read(self):
        t_mono, t_wall = now()
        rails, tot = rails_mw(self._jetson.power)
        out = [Sample(t_mono, t_wall, self.name, r, mw / 1000.0) for r, mw in sorted(rails.items())]
        try:
            watts, used = boards.total_power(rails, override=self.total_override)
            watts /= 1000.0
        except boards.UnknownBoard as exc:
            if not tot.get("name") or tot.get("power") is None:
                self.total_error = str(exc)
                return out
            watts, used = float(tot["power"]) / 1000.0, [tot["name"]]  # jtop's named input rail
        self.total_rails = used
        out.append(Sample(t_mono, t_wall, self.name, TOTAL, watts))
        return out
