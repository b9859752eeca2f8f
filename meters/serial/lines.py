"""Any device that prints one reading per line, e.g. an INA219/INA226 on an Arduino.

Reference line format (what ebedge's reference firmware prints at 115200 8N1; the default):

    # ms,V,A,W                      lines starting with '#' are headers/comments
    123456,5.021,0.5230,2.626*3F    MCU milliseconds, bus volts, amps, watts

`*3F` (optional) is the XOR of all bytes before `*`, two hex digits; a line whose checksum is
wrong is dropped, and once a device has sent checksums, a line without one (cut short) is too. Other sketches: `columns="ms,mV,mA,mW"` names the comma-separated columns by
unit (t: `ms`/`s`; volts: `V`/`mV`; current: `A`/`mA`/`uA`; power: `W`/`mW`; the device's own
energy: `J`/`mJ`/`Wh`/`mWh`; `-` ignores a column), `sep="\\t"` for tab-separated tables. Free
text: `pattern=` a regular expression with named groups among power_w, power_mw, voltage_v,
voltage_mv, current_a, current_ma, current_ua, energy_j, energy_mj, energy_wh, energy_mwh,
t_ms, t_s, e.g. r"Power:\\s*(?P<power_mw>[-\\d.]+)\\s*mW". Without a power value, power is V x A.

Lines that do not parse (boot banners, a line cut when the port opened) are skipped; the first
line after opening is always dropped. The device streams on its own; `interval_s` is its
nominal period, used only to flag gaps. A device clock (t_ms/t_s) that goes backwards means the
MCU reset: that sample carries `resync`. Opening the port resets most Arduinos (1-2 s of
silence), hence the longer identify timeout.
"""
import re
import time

from meters.base import RESYNC, TOTAL, MeterError, Sample, register
from meters.serial.framing import LineFramer
from meters.serial.port import SerialMeter

# unit column name -> canonical quantity name (the regex group names)
_UNITS = {"ms": "t_ms", "s": "t_s", "V": "voltage_v", "mV": "voltage_mv", "A": "current_a",
          "mA": "current_ma", "uA": "current_ua", "W": "power_w", "mW": "power_mw",
          "J": "energy_j", "mJ": "energy_mj", "Wh": "energy_wh", "mWh": "energy_mwh", "-": None}
# quantity -> (SI quantity, multiplier)
_SCALE = {"t_ms": ("t_s", 1e-3), "t_s": ("t_s", 1.0),
          "voltage_v": ("voltage_v", 1.0), "voltage_mv": ("voltage_v", 1e-3),
          "current_a": ("current_a", 1.0), "current_ma": ("current_a", 1e-3),
          "current_ua": ("current_a", 1e-6), "power_w": ("power_w", 1.0),
          "power_mw": ("power_w", 1e-3), "energy_j": ("energy_j", 1.0),
          "energy_mj": ("energy_j", 1e-3), "energy_wh": ("energy_j", 3600.0),
          "energy_mwh": ("energy_j", 3.6)}


def checksum(text):
    """XOR of the line's bytes, as the reference firmware appends after `*`."""
    x = 0
    for byte in bytearray(text.encode("ascii", "replace")):
        x ^= byte
    return x


class LineParser(object):
    """Turns one text line into SI quantities {power_w, voltage_v, current_a, energy_j, t_s}."""

    def __init__(self, columns="ms,V,A,W", sep=",", pattern=None):
        self.sep = sep
        self.checksummed = False  # the device appends checksums: lines without one are cut
        if pattern is not None:
            self.regex = re.compile(pattern)
            names = set(self.regex.groupindex)
            unknown = names - set(_SCALE)
            if unknown:
                raise MeterError("lines: unknown group(s) %s in pattern; use %s"
                                 % (", ".join(sorted(unknown)), ", ".join(sorted(_SCALE))))
            self.columns = None
        else:
            self.regex = None
            units = [c.strip() for c in columns.split(",")]
            bad = [u for u in units if u not in _UNITS]
            if bad:
                raise MeterError("lines: unknown column unit(s) %s; use %s"
                                 % (", ".join(bad), ", ".join(sorted(_UNITS))))
            self.columns = [_UNITS[u] for u in units]
            names = set(self.columns)
        has_power = "power_w" in names or "power_mw" in names
        has_vi = names & {"voltage_v", "voltage_mv"} and names & {"current_a", "current_ma",
                                                                  "current_ua"}
        if not (has_power or has_vi):
            raise MeterError("lines: the format gives neither power nor voltage and current")

    def parse(self, line):
        """The line's quantities, or None if it is not a reading."""
        raw = self._fields(line.strip())
        if raw is None:
            return None
        out = {}
        try:
            for name, text in raw.items():
                si, scale = _SCALE[name]
                out[si] = float(text) * scale
        except ValueError:
            return None
        if "power_w" not in out:
            if "voltage_v" not in out or "current_a" not in out:
                return None
            out["power_w"] = out["voltage_v"] * out["current_a"]
        return out

    def _fields(self, line):
        if not line or line.startswith("#"):
            return None
        if self.regex is not None:
            match = self.regex.search(line)
            return None if match is None else {k: v for k, v in match.groupdict().items()
                                                if v is not None}
        if "*" in line:
            line, _, check = line.rpartition("*")
            try:
                if int(check, 16) != checksum(line):
                    return None
            except ValueError:
                return None
            self.checksummed = True
        elif self.checksummed:
            return None
        parts = line.split(self.sep)
        if len(parts) != len(self.columns):
            return None
        return {name: text for name, text in zip(self.columns, parts) if name is not None}


@register
class LinesMeter(SerialMeter):
    name = "lines"
    baudrate = 115200
    default_interval_s = 0.1
    max_power_w = 1000.0  # INA219/INA226 sketches (26/36 V bus); other devices: max_power_w=W

    def __init__(self, port=None, interval_s=None, columns="ms,V,A,W", sep=",", pattern=None,
                 identify_timeout_s=3.0, max_power_w=None, **options):
        SerialMeter.__init__(self, port, interval_s, identify_timeout_s=identify_timeout_s,
                             **options)
        if max_power_w is not None:
            self.max_power_w = float(max_power_w)
        self.parser = LineParser(columns, sep, pattern)
        self._device_t = None

    def make_framer(self):
        return LineFramer(skip_first=True)

    def identify(self):
        deadline = time.monotonic() + self.identify_timeout_s
        while time.monotonic() < deadline:
            for line, _, _ in self.read_records(deadline - time.monotonic()):
                if self.parser.parse(line) is not None:
                    return "line device"
        raise MeterError("lines: no line in the configured format on %s within %.1f s "
                         "(wrong device, port or format?)" % (self.port.path,
                                                             self.identify_timeout_s))

    def to_sample(self, line, t_mono, t_wall):
        q = self.parser.parse(line)
        if q is None:
            return None
        flags = ()
        device_t = q.get("t_s")
        if device_t is not None:
            if self._device_t is not None and device_t < self._device_t:
                flags = (RESYNC,)
            self._device_t = device_t
        return Sample(t_mono, t_wall, self.name, TOTAL, q["power_w"], q.get("voltage_v"),
                      q.get("current_a"), q.get("energy_j"), flags=flags)
