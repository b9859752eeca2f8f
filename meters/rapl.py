"""Intel/AMD RAPL energy counters from powercap sysfs, for x86 hosts (e.g. a laptop baseline).

Each zone `/sys/class/powercap/intel-rapl:N[:M]` has `name`, `energy_uj` (a cumulative counter
that wraps at `max_energy_range_uj`). Power is the counter delta over the poll interval, stamped
at the end of it; the unwrapped counter goes into `meter_energy_j`, so the report can show the
meter's own energy beside the trapezoid. Total = the package zones plus their DRAM subzones
(DRAM is outside the package domain), or `psys` (the whole platform) where the CPU offers it.
Since Linux 5.10 `energy_uj` is readable by root only (CVE-2020-8694).

The counters update about every millisecond (RAPL_UPDATE_S) and a running CPU never uses no
energy at all, so counters that all stay unchanged for longer than base.STALE_PERIODS updates
(at least base.STALE_MIN_S) come from a frozen source: flagged `stale`, a gap, not 0 W.
"""
import glob
import os

from meters.base import TOTAL, Freshness, Meter, MeterError, Sample, now, register

_ZONE_GLOB = "sys/class/powercap/intel-rapl:*"
RAPL_UPDATE_S = 0.001  # the counters' update period (Intel SDM: about 976 microseconds)


class Zone(object):
    """One RAPL zone and its unwrapped counter."""

    def __init__(self, path, rail):
        self.path = os.path.join(path, "energy_uj")
        self.rail = rail
        with open(os.path.join(path, "max_energy_range_uj")) as f:
            self.range_uj = int(f.read())
        self.last_uj = None
        self.total_uj = 0

    def read_uj(self):
        with open(self.path) as f:
            return int(f.read())

    def advance(self, raw_uj):
        """Add the delta since the last reading (wrap-around handled); return the delta."""
        if self.last_uj is None:
            delta = 0
        else:
            delta = raw_uj - self.last_uj
            if delta < 0:
                delta += self.range_uj
        self.last_uj = raw_uj
        self.total_uj += delta
        return delta


def discover(root="/"):
    """Zones under `root` as [(path, rail)], rail = "package-0", "package-0:dram", "psys"..."""
    zones = []
    for path in sorted(glob.glob(os.path.join(root, _ZONE_GLOB))):
        parts = os.path.basename(path).split(":")
        try:
            with open(os.path.join(path, "name")) as f:
                name = f.read().strip()
        except (IOError, OSError):
            continue
        if len(parts) == 2:
            zones.append((path, name))
        else:
            parent = os.path.join(os.path.dirname(path), ":".join(parts[:2]))
            try:
                with open(os.path.join(parent, "name")) as f:
                    zones.append((path, "%s:%s" % (f.read().strip(), name)))
            except (IOError, OSError):
                continue
    return zones


def total_rails(rails):
    """psys if present, else every package zone plus its dram subzone."""
    if "psys" in rails:
        return ["psys"]
    return [r for r in rails if r.startswith("package-") and (":" not in r or r.endswith(":dram"))]


@register
class RaplMeter(Meter):
    """Polls every zone's energy counter; option `root` (default "/") for tests."""

    name = "rapl"
    trust = 50
    default_interval_s = 0.1

    def __init__(self, interval_s=None, root="/"):
        Meter.__init__(self, interval_s)
        self.root = root
        self.zones = []
        self._last_t = None

    @classmethod
    def probe(cls):
        zones = discover("/")
        if not zones:
            return False, "no RAPL zones under /sys/class/powercap (not x86, or powercap off)"
        if not os.access(os.path.join(zones[0][0], "energy_uj"), os.R_OK):
            return False, "RAPL energy_uj not readable (root only since Linux 5.10)"
        return True, "%d zones: %s" % (len(zones), ", ".join(r for _, r in zones))

    def open(self):
        found = discover(self.root)
        if not found:
            raise MeterError("rapl: no zones under %s" % os.path.join(self.root, _ZONE_GLOB))
        try:
            self.zones = [Zone(path, rail) for path, rail in found]
            for z in self.zones:
                z.advance(z.read_uj())
        except (IOError, OSError, ValueError) as exc:
            raise MeterError("rapl: cannot read counters: %s (root only since Linux 5.10)" % exc)
        self._last_t = now()[0]
        self._fresh = Freshness(RAPL_UPDATE_S)
        self.total_rails = total_rails([z.rail for z in self.zones])

    def read(self):
        raws = [z.read_uj() for z in self.zones]
        t_mono, t_wall = now()
        dt = t_mono - self._last_t
        self._last_t = t_mono
        out = []
        total_w = total_j = 0.0
        for z, raw in zip(self.zones, raws):
            watts = z.advance(raw) / 1e6 / dt if dt > 0 else None
            joules = z.total_uj / 1e6
            out.append(Sample(t_mono, t_wall, self.name, z.rail, watts, meter_energy_j=joules))
            if z.rail in self.total_rails and watts is not None:
                total_w += watts
                total_j += joules
        if self.total_rails:
            out.append(Sample(t_mono, t_wall, self.name, TOTAL, total_w if dt > 0 else None,
                              meter_energy_j=total_j))
        if self._fresh.stale(tuple(raws), t_mono):
            self._stale(out)
        return out
