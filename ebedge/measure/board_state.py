"""Board state as one typed object with one serialisation.

`ebedge.measure.board.snapshot()` builds a `BoardState`; the run's config.json["board"], `agent
info`'s "board", `remote doctor` and the sweep's board pools all go through `to_json` and
`from_json`, so the board and the laptop cannot disagree on a key (the power mode was once read
from keys nothing wrote). `from_json` takes what a board sent as data: a field of the wrong type
becomes None (unknown), never an exception. The JSON layout is the snapshot's of earlier
releases, so old run directories read the same.
"""
import re

# Zones whose reading is a placeholder, not a temperature: TX1/TX2 report PMIC-Die as a constant 100 C.
IGNORED_ZONE_TYPES = ("PMIC-Die",)
FREQ_TOLERANCE = 0.98  # a reading this close to a bound counts as at the bound (cpufreq rounds)
COMPARABLE_KEYS = ("power_mode", "clocks_pinned", "cpus", "gpu")
_LABELS = {"governor": "governor", "min": "min freq", "max": "max freq"}


def _of(value, types):
    """`value` if it is one of `types` (bool is no int here), else None."""
    if isinstance(value, bool) and bool not in types:
        return None
    return value if isinstance(value, types) else None


def _text(value):
    return _of(value, (str,))


class PowerMode(object):
    """An nvpmodel power mode: its name, id (None when nvpmodel printed none), fan mode and
    the command's raw output (None when read from nvpmodel's status file)."""

    def __init__(self, name, id=None, fan_mode=None, raw=None):
        self.name, self.id, self.fan_mode, self.raw = name, id, fan_mode, raw

    @property
    def label(self):
        """'MAXN (0)'; the name alone without an id."""
        return self.name if self.id is None else "%s (%d)" % (self.name, self.id)

    def to_json(self):
        out = {"name": self.name, "id": self.id, "fan_mode": self.fan_mode}
        if self.raw is not None:
            out["raw"] = self.raw
        return out

    @classmethod
    def from_json(cls, data):
        if not isinstance(data, dict) or _text(data.get("name")) is None:
            return None
        return cls(data["name"], _of(data.get("id"), (int,)), _text(data.get("fan_mode")),
                   _text(data.get("raw")))


class BoardState(object):
    """What makes two runs comparable: board identity, power mode, clocks, temperatures.
    Every field may be None (unknown: a plain Linux box, a missing file, no permission)."""

    def __init__(self, is_jetson=None, model=None, hostname=None, serial=None, l4t=None, jetpack=None,
                 power_mode=None, clocks_pinned=None, pinned_from=None, clocks_raw=None,
                 cpus=None, gpu=None, thermal=None, fan=None):
        self.is_jetson, self.model, self.hostname = is_jetson, model, hostname
        self.serial = serial  # the module's serial number: which board a calibration belongs to
        self.l4t, self.jetpack, self.power_mode = l4t, jetpack, power_mode
        self.clocks_pinned, self.pinned_from, self.clocks_raw = clocks_pinned, pinned_from, clocks_raw
        self.cpus = cpus if cpus is not None else {}  # {cpuN: {online, governor, cur, min, max...}}
        self.gpu = gpu  # {device, governor, cur, min, max} in Hz
        self.thermal = thermal if thermal is not None else []  # [{zone, type, temp_c, passive_trip_c}]
        self.fan = fan

    @property
    def power_mode_label(self):
        return None if self.power_mode is None else self.power_mode.label

    @property
    def pool(self):
        """Boards that may share a sweep cell's repeats: same model and power mode."""
        return [self.model, self.power_mode_label]

    def to_json(self):
        return {"is_jetson": self.is_jetson, "model": self.model, "hostname": self.hostname,
                "serial": self.serial, "l4t": self.l4t, "jetpack": self.jetpack,
                "nvpmodel": None if self.power_mode is None else self.power_mode.to_json(),
                "jetson_clocks": {"raw": self.clocks_raw, "pinned": self.clocks_pinned,
                                  "pinned_from": self.pinned_from},
                "cpus": self.cpus, "gpu": self.gpu, "thermal": self.thermal, "fan": self.fan}

    @classmethod
    def from_json(cls, data):
        """The state `to_json` wrote (or a board sent); wrong types read as unknown."""
        data = data if isinstance(data, dict) else {}
        clocks = data.get("jetson_clocks") if isinstance(data.get("jetson_clocks"), dict) else {}
        cpus = _of(data.get("cpus"), (dict,)) or {}
        thermal = _of(data.get("thermal"), (list,)) or []
        return cls(is_jetson=_of(data.get("is_jetson"), (bool,)), model=_text(data.get("model")),
                   hostname=_text(data.get("hostname")), serial=_text(data.get("serial")),
                   l4t=_text(data.get("l4t")),
                   jetpack=_text(data.get("jetpack")),
                   power_mode=PowerMode.from_json(data.get("nvpmodel")),
                   clocks_pinned=_of(clocks.get("pinned"), (bool,)),
                   pinned_from=_text(clocks.get("pinned_from")),
                   clocks_raw=_text(clocks.get("raw")),
                   cpus={k: v for k, v in cpus.items() if isinstance(v, dict)},
                   gpu=_of(data.get("gpu"), (dict,)),
                   thermal=[z for z in thermal if isinstance(z, dict)],
                   fan=_of(data.get("fan"), (dict,)))

    def comparable(self):
        """The part that must match for two runs to be compared: power mode and clock settings."""
        return {
            "power_mode": self.power_mode_label,
            "clocks_pinned": self.clocks_pinned,
            "cpus": {name: {k: cpu.get(k) for k in ("online", "governor", "min", "max")}
                     for name, cpu in self.cpus.items()},
            "gpu": None if not self.gpu else {k: self.gpu.get(k) for k in ("governor", "min", "max")},
        }

    def throttled(self):
        """Whether the board looked throttled; None if it cannot be told.

        Two signs, both cheap and conservative: a thermal zone at or above its first passive trip
        point (where the kernel starts capping clocks), or a clock running below its own floor
        (cur < min, which only a thermal or power cap causes), or below its ceiling under the
        'performance' governor.
        """
        evidence = []
        for zone in self.thermal:
            if (zone.get("type") in IGNORED_ZONE_TYPES or zone.get("temp_c") is None
                    or zone.get("passive_trip_c") is None):
                continue
            evidence.append(zone["temp_c"] >= zone["passive_trip_c"])
        clocks = [c for c in self.cpus.values() if c.get("online", True)]
        if self.gpu:
            clocks.append(self.gpu)
        for clock in clocks:
            if clock.get("cur") is None or clock.get("min") is None:
                continue
            capped = _below(clock["cur"], clock["min"])
            if clock.get("governor") == "performance":
                capped = capped or _below(clock["cur"], clock.get("max"))
            evidence.append(capped)
        if not evidence:
            return None
        return any(evidence)


def _below(cur, bound):
    return cur is not None and bound is not None and cur < bound * FREQ_TOLERANCE


def _as_comparable(state):
    return state.comparable() if isinstance(state, BoardState) else state


def changes(before, after):
    """Human-readable differences in power mode and clock settings ([] if none).

    `before` and `after` may be BoardStates or what `comparable()` made of them.
    """
    old, new = _as_comparable(before), _as_comparable(after)
    out = []
    if old["power_mode"] != new["power_mode"]:
        out.append("power mode changed: %s -> %s" % (old["power_mode"], new["power_mode"]))
    if old["clocks_pinned"] != new["clocks_pinned"]:
        out.append("clocks pinned (jetson_clocks) changed: %s -> %s"
                   % (old["clocks_pinned"], new["clocks_pinned"]))
    for name in sorted(set(old["cpus"]) | set(new["cpus"]),
                       key=lambda n: int(re.sub(r"\D", "", n) or 0)):
        a, b = old["cpus"].get(name), new["cpus"].get(name)
        if a is None or b is None:
            out.append("%s %s" % (name, "appeared" if a is None else "disappeared"))
            continue
        if a["online"] != b["online"]:  # an offline core has no cpufreq settings to compare
            out.append("%s went %s" % (name, "online" if b["online"] else "offline"))
        else:
            out.extend(_field_changes(name, a, b, "kHz"))
    if old["gpu"] != new["gpu"]:
        if old["gpu"] is None or new["gpu"] is None:
            out.append("gpu devfreq %s" % ("appeared" if old["gpu"] is None else "disappeared"))
        else:
            out.extend(_field_changes("gpu", old["gpu"], new["gpu"], "Hz"))
    return out


def _field_changes(name, a, b, unit):
    out = []
    for key in ("governor", "min", "max"):
        if key in a and a.get(key) != b.get(key):
            suffix = " %s" % unit if key in ("min", "max") else ""
            out.append("%s %s changed: %s -> %s%s" % (name, _LABELS[key], a.get(key), b.get(key), suffix))
    return out
