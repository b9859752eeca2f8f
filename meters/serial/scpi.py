"""SCPI power meters on a serial line (LF-terminated ASCII), one driver with two profiles.

`profile="yokogawa"`: WT300E series (WT310E/WT332E/WT333E). Items P, U, I and the integrator's
WH of element 1; the update rate is set with `:RATE` to `interval_s` (0.1, 0.25, 0.5, 1, 2 or
5 s) and every update is read exactly once (`:STAT:FILT1 FALL`; then per reading `:STAT:EESR?`
clears the event, `:COMM:WAIT 1` waits for the next update, `:NUM:NORM:VAL?` reads it). `NAN`
becomes the `nan` flag and `INF` the `overrange` flag with no value. The integrator is started
at open and its WH is reported as `meter_energy_j` beside the host integration.

`profile="keysight"`: N67xx / E36xx supplies and analyzers. Polled `MEAS:POW? (@ch)`; modules
that lack it (the query errors) are read as `MEAS:VOLT?` x `MEAS:CURR?`. No meter-side energy.
See docs/reference/serial-power-meters.md sections 2 and 3.
"""
import time

from meters.base import NAN, OVERRANGE, TOTAL, MeterError, Sample, register
from meters.serial.framing import LineFramer
from meters.serial.port import SerialMeter


def _value(token):
    """(float or None, flag or None) for one NR3 token; NAN/INF are flags, not numbers."""
    text = token.strip().upper()
    if text in ("NAN", "-NAN"):
        return None, NAN
    if text in ("INF", "+INF", "-INF"):
        return None, OVERRANGE
    try:
        return float(text), None
    except ValueError:
        return None, NAN


def _is_number(line):
    try:
        float(line)
        return True
    except ValueError:
        return False


class _Yokogawa(object):
    polled = False  # the meter's update rate paces the reader
    default_interval_s = 0.25
    accuracy_pct = 0.2
    rates = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
    items = ("P", "U", "I", "WH")
    errors_ok_on_start = (0, 842)  # 842: the integrator was already running

    def __init__(self, meter, channel):
        if meter.interval_s not in self.rates:
            raise MeterError("scpi/yokogawa: the WT300E updates every %s s; interval_s=%r is "
                             "not one of them" % (", ".join("%g" % r for r in self.rates),
                                                  meter.interval_s))
        self.m = meter
        self.element = channel or 1

    def identify(self):
        idn = self.m.ask("*IDN?", lambda line: "," in line)
        fields = [f.strip().upper() for f in idn.split(",")]
        if not (fields[0].startswith("YOKOGAWA") and fields[1].startswith("WT3")):
            raise MeterError("scpi/yokogawa: %s is %r, not a Yokogawa WT300E"
                             % (self.m.port.path, idn))
        return idn

    def begin(self):
        m = self.m
        setup = [":COMM:HEAD OFF", ":NUM:FORM ASC", ":RATE %dMS" % round(m.interval_s * 1000),
                 ":NUM:NORM:NUM %d" % len(self.items)]
        setup += [":NUM:NORM:ITEM%d %s,%d" % (k + 1, item, self.element)
                  for k, item in enumerate(self.items)]
        setup += [":STAT:FILT1 FALL"]
        for command in setup:
            m.port.write(command.encode("ascii") + b"\n")
        m.check_error(":RATE, :NUM:NORM items", (0,))
        m.port.write(b":INTEG:STAR\n")
        m.check_error(":INTEG:STAR", self.errors_ok_on_start)
        time.sleep(0.2)  # commands right after starting the integrator may fail (yoko-tool)

    def end(self):
        self.m.port.write(b":INTEG:STOP\n")

    def acquire(self):
        m = self.m
        if not m.exchange(b":STAT:EESR?\n", 1.0, accept=_is_number):
            return []
        return m.exchange(b":COMM:WAIT 1\n:NUM:NORM:VAL?\n", 3 * m.interval_s + 1.0,
                          accept=lambda line: line.count(",") == len(self.items) - 1)

    def to_sample(self, line, t_mono, t_wall):
        (p, p_flag), (u, _), (i, _), (wh, _) = [_value(t) for t in line.split(",")]
        return Sample(t_mono, t_wall, self.m.name, TOTAL, p, u, i,
                      None if wh is None else wh * 3600.0, flags=(p_flag,) if p_flag else ())


class _Keysight(object):
    polled = True
    default_interval_s = 0.1
    accuracy_pct = None
    makers = ("KEYSIGHT", "AGILENT", "HEWLETT-PACKARD")

    def __init__(self, meter, channel):
        self.m = meter
        self.where = " (@%d)" % channel if channel else ""
        self.has_power = None

    def identify(self):
        idn = self.m.ask("*IDN?", lambda line: "," in line)
        if not idn.strip().upper().startswith(self.makers):
            raise MeterError("scpi/keysight: %s is %r, not a Keysight/Agilent instrument"
                             % (self.m.port.path, idn))
        return idn

    def begin(self):
        """Ask for power once: a module without `MEAS:POW?` leaves an error in the queue."""
        m = self.m
        m.port.write(b"*CLS\n")
        got = m.exchange(("MEAS:POW?%s\nSYST:ERR?\n" % self.where).encode("ascii"),
                         m.identify_timeout_s, accept=lambda line: '"' in line)
        if not got:
            raise MeterError("scpi/keysight: no reply to SYST:ERR? on %s" % m.port.path)
        self.has_power = got[0][0].split(",")[0].strip().lstrip("+-") == "0"

    def acquire(self):
        if self.has_power:
            request, count = "MEAS:POW?%s\n" % self.where, 1
        else:
            request, count = "MEAS:VOLT?%s\nMEAS:CURR?%s\n" % (self.where, self.where), 2
        got = self.m.exchange(request.encode("ascii"), 1.0, count=count, accept=_is_number)
        if len(got) < count:
            return []
        t_mono, t_wall = got[-1][1], got[-1][2]
        return [(tuple(line for line, _, _ in got), t_mono, t_wall)]

    def to_sample(self, record, t_mono, t_wall):
        if self.has_power:
            (p, flag), v, i = _value(record[0]), None, None
        else:
            (v, v_flag), (i, i_flag) = _value(record[0]), _value(record[1])
            flag = v_flag or i_flag
            p = v * i if flag is None else None
        return Sample(t_mono, t_wall, self.m.name, TOTAL, p, v, i, flags=(flag,) if flag else ())

    def end(self):
        pass


_PROFILES = {"yokogawa": _Yokogawa, "keysight": _Keysight}


@register
class ScpiMeter(SerialMeter):
    name = "scpi"
    baudrate = 9600

    def __init__(self, port=None, interval_s=None, profile="yokogawa", channel=1, **options):
        if profile not in _PROFILES:
            raise MeterError("scpi: unknown profile %r; known: %s"
                             % (profile, ", ".join(sorted(_PROFILES))))
        kind = _PROFILES[profile]
        self.default_interval_s = kind.default_interval_s
        self.accuracy_pct = kind.accuracy_pct
        self.polled = kind.polled
        SerialMeter.__init__(self, port, interval_s, **options)
        self.profile_name = profile
        self.profile = kind(self, channel)

    def describe(self):
        facts = SerialMeter.describe(self)
        facts["profile"] = self.profile_name
        return facts

    # -- SCPI helpers ------------------------------------------------------------------------------
    def ask(self, query, accept):
        """The first reply line to `query` that `accept` takes; MeterError after the timeout."""
        got = self.exchange(query.encode("ascii") + b"\n", self.identify_timeout_s, accept=accept)
        if not got:
            raise MeterError("scpi: no reply to %s on %s within %.1f s (wrong device or port?)"
                             % (query, self.port.path, self.identify_timeout_s))
        return got[0][0]

    def check_error(self, what, ok_codes):
        """Read `:STAT:ERR?` (`code,"message"`); MeterError unless the code is in `ok_codes`."""
        reply = self.ask(":STAT:ERR?", lambda line: line.split(",")[0].strip().lstrip("+-")
                         .isdigit())
        code = int(reply.split(",")[0])
        if code not in ok_codes:
            raise MeterError("scpi: %s on %s failed: %s" % (what, self.port.path, reply))

    # -- the profile does the talking ---------------------------------------------------------------
    def make_framer(self):
        return LineFramer()

    def identify(self):
        return self.profile.identify()

    def begin(self):
        self.profile.begin()

    def end(self):
        self.profile.end()

    def acquire(self):
        return self.profile.acquire()

    def to_sample(self, record, t_mono, t_wall):
        return self.profile.to_sample(record, t_mono, t_wall)
