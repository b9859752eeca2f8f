"""Watts up? PRO / .NET over its FTDI serial port (115200 8N1, ASCII packets `#...;`).

The meter streams `#d,-,18,...;` records once per logging interval (whole seconds, at least 1 s)
after `#L,W,3,E,,<s>;`. Fields are named by the header reply to `#H,R,0;`, which is also the
identify step. Scaling: W and V in tenths, A in thousandths, WH in tenths of a watt-hour,
cumulative since the meter's memory was cleared (0.1 Wh = 360 J steps: a cross-check only).
See docs/reference/serial-power-meters.md section 1.
"""
from meters.base import NAN, TOTAL, MeterError, Sample, register
from meters.serial.port import SerialMeter

# field name -> (Sample attribute, multiplier to SI)
_FIELDS = {"W": ("power_w", 0.1), "V": ("voltage_v", 0.1), "A": ("current_a", 0.001),
           "WH": ("meter_energy_j", 0.1 * 3600.0)}


class WattsupFramer(object):
    """Packets run from `#` to `;`; bytes outside are noise and a new `#` restarts the packet.

    A record is the packet's comma-separated fields, e.g. ["d", "-", "18", "153", ...], kept only
    when the field count matches the packet's own count N.
    """

    max_len = 512

    def __init__(self):
        self._buf = b""

    def feed(self, data):
        self._buf += data
        out = []
        while True:
            start = self._buf.find(b"#")
            if start < 0:
                self._buf = b""
                break
            end = self._buf.find(b";", start)
            restart = self._buf.find(b"#", start + 1)
            if restart >= 0 and (end < 0 or restart < end):
                self._buf = self._buf[restart:]
                continue
            if end < 0:
                self._buf = self._buf[start:] if len(self._buf) - start <= self.max_len else b""
                break
            packet, self._buf = self._buf[start + 1:end], self._buf[end + 1:]
            fields = packet.decode("ascii", "replace").split(",")
            if len(fields) >= 3 and fields[2].isdigit() and int(fields[2]) == len(fields) - 3:
                out.append(fields)
        return out


def _number(text):
    """A field's integer value; None for blank or `_` (field not selected on the meter)."""
    text = text.strip()
    if text in ("", "_", "-"):
        return None
    try:
        return int(text)
    except ValueError:
        return None


@register
class WattsUp(SerialMeter):
    name = "wattsup"
    baudrate = 115200
    default_interval_s = 1.0
    accuracy_pct = 1.5
    max_power_w = 3600.0  # a 15 A mains meter on 230 V, with margin

    def __init__(self, port=None, interval_s=None, **options):
        SerialMeter.__init__(self, port, interval_s, **options)
        if self.interval_s < 1 or self.interval_s != int(self.interval_s):
            raise MeterError("wattsup: the meter logs every whole second (1, 2, ...), got "
                             "interval_s=%r" % interval_s)
        self._columns = ()

    def make_framer(self):
        return WattsupFramer()

    def identify(self):
        got = self.exchange(b"#H,R,0;", self.identify_timeout_s, accept=lambda r: r[0] == "h")
        if not got:
            raise MeterError("wattsup: no Watts up? header reply on %s within %.1f s "
                             "(wrong device or port?)" % (self.port.path, self.identify_timeout_s))
        self._columns = tuple(name.strip().upper() for name in got[0][0][3:])
        if "W" not in self._columns:
            raise MeterError("wattsup: header on %s has no W field: %s"
                             % (self.port.path, ",".join(self._columns)))
        return "Watts up? (%d fields)" % len(self._columns)

    def begin(self):
        self.port.write(b"#L,W,3,E,,%d;" % int(self.interval_s))

    def end(self):
        self.port.write(b"#L,R,0;")

    def to_sample(self, record, t_mono, t_wall):
        if record[0] != "d":
            return None
        values = {"power_w": None}
        for name, text in zip(self._columns, record[3:]):
            if name in _FIELDS:
                attr, scale = _FIELDS[name]
                raw = _number(text)
                values[attr] = None if raw is None else raw * scale
        flags = () if values["power_w"] is not None else (NAN,)
        return Sample(t_mono, t_wall, self.name, TOTAL, flags=flags, **values)
