"""SCPI meters on a pty: a Yokogawa WT310E and a Keysight N6705B-style supply.

Commands end in LF (CR LF is accepted, `;` separates commands on a line); replies end in LF.
Unknown commands queue error -113 and get no reply, as on the instruments.

Yokogawa: values are latched at each update (sim times that are multiples of the update
period, `:RATE`), `NAN` before the first one; `:STAT:EESR?` returns and clears the event
register whose bit 0 an update sets (with `:STAT:FILT1 FALL`); `:COMM:WAIT 1` holds all later
commands until that bit is set. The integrator (`:INTEG:STAR/STOP/RES/STAT?`, errors
842/844/845) integrates P(t) exactly; items WH and TIME read it. Faults: `nan_frac` and
`inf_frac` of updates report P as NAN or INF; `drop_frac` of `:NUM:NORM:VAL?` go unanswered.

Keysight: `MEAS:VOLT?`, `MEAS:CURR?`, `MEAS:POW?` measure at the moment they are asked;
`has_power=False` models a module without `MEAS:POW?`.
"""
import math

from meters.sim.pty_sim import PtySimulator

NO_ERROR = (0, "No error")
UNDEFINED = (-113, "Undefined header")


class ScpiSimulator(PtySimulator):
    """Line-based SCPI device: subclasses answer `command(header, args)`."""

    error_query = "STAT:ERR?"

    def __init__(self, profile=None, volts=230.0, idn="", number_format="%.4E", **faults):
        PtySimulator.__init__(self, profile, **faults)
        self.volts = float(volts)
        self.idn = idn
        self.number_format = number_format
        self.errors = []
        self._buf = b""
        self._queue = []

    def on_plug(self):
        self._buf = b""
        self._queue = []

    def on_input(self, data):
        self._buf += data
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            for part in line.decode("ascii", "replace").strip().split(";"):
                if part.strip():
                    self._queue.append(part.strip())
        self.run_queue()

    def run_queue(self):
        while self._queue and not self.blocked():
            text = self._queue.pop(0)
            header, _, args = text.partition(" ")
            header = header.upper()
            if header == "*IDN?":
                self.reply(self.idn)
            elif header == "*CLS":
                self.errors = []
                self.clear_status()
            elif header.lstrip(":") == self.error_query:
                self.reply("%d,\"%s\"" % (self.errors.pop(0) if self.errors else NO_ERROR))
            elif not self.command(header.lstrip(":"), args.strip()):
                self.errors.append(UNDEFINED)

    def reply(self, text):
        self.send(text.encode("ascii") + b"\n")

    def number(self, x):
        return self.number_format % x

    def blocked(self):
        return False

    def clear_status(self):
        pass

    def command(self, header, args):
        """Handle one command (header upper-case, without the leading colon); False if unknown."""
        return False


class YokogawaSimulator(ScpiSimulator):
    """Simulated Yokogawa WT310E power meter."""

    kind = "yokogawa"
    rates_ms = (100, 250, 500, 1000, 2000, 5000)

    def __init__(self, profile=None, volts=230.0, model="WT310E", nan_frac=0.0, inf_frac=0.0,
                 **faults):
        ScpiSimulator.__init__(self, profile, volts, idn="YOKOGAWA,%s,C2XX00000,F1.01" % model,
                               **faults)
        self.nan_frac = nan_frac
        self.inf_frac = inf_frac
        self.rate_s = 0.25
        self.items = {1: "U", 2: "I", 3: "P"}
        self.n_items = 3
        self.eesr = 0
        self.filt1 = "NEVER"
        self.waiting = False
        self.latched = {}
        self.integ_state = "reset"
        self.integ_j = 0.0  # energy up to the last stop
        self.integ_s = 0.0  # integration time up to the last stop
        self.integ_since = None
        self._next = self.rate_s

    # -- updates ------------------------------------------------------------------------------
    def next_tick(self):
        return self._next

    def on_tick(self, t):
        self._next = (math.floor(t / self.rate_s) + 1) * self.rate_s
        watts = self.profile.power(t)
        roll = self.rng.random()
        if roll < self.nan_frac:
            watts = float("nan")
        elif roll < self.nan_frac + self.inf_frac:
            watts = float("inf")
        energy, seconds = self._integrator(t)
        self.latched = {"P": watts, "U": self.volts, "I": self.profile.power(t) / self.volts,
                        "WH": energy / 3600.0, "TIME": seconds}
        if self.filt1 in ("FALL", "BOTH", "RISE"):
            self.eesr |= 1
        self.run_queue()

    def _integrator(self, t):
        if self.integ_state != "start":
            return self.integ_j, self.integ_s
        return (self.integ_j + self.profile.energy(self.integ_since, t),
                self.integ_s + t - self.integ_since)

    def blocked(self):
        if self.waiting and self.eesr & 1:
            self.waiting = False
        return self.waiting

    def clear_status(self):
        self.eesr = 0

    def _format(self, item):
        x = self.latched.get(item, float("nan"))
        if math.isnan(x):
            return "NAN"
        if math.isinf(x):
            return "INF"
        return self.number(x)

    # -- commands -----------------------------------------------------------------------------
    def command(self, header, args):
        arg = args.upper()
        if header in ("RATE", "SAMP:RATE"):
            ms = _milliseconds(arg)
            if ms not in self.rates_ms:
                self.errors.append((-224, "Illegal parameter value"))
            else:
                self.rate_s = ms / 1000.0
                self._next = (math.floor(self.now() / self.rate_s) + 1) * self.rate_s
        elif header == "NUM:NORM:NUM":
            self.n_items = int(arg)
        elif header.startswith("NUM:NORM:ITEM"):
            self.items[int(header[len("NUM:NORM:ITEM"):])] = arg.split(",")[0]
        elif header == "NUM:NORM:VAL?":
            if not self.drop():
                self.reply(",".join(self._format(self.items.get(k, "")) for k in
                                    range(1, self.n_items + 1)))
        elif header == "STAT:FILT1":
            self.filt1 = arg
        elif header == "STAT:EESR?":
            self.reply("%d" % self.eesr)
            self.eesr = 0
        elif header == "COMM:WAIT":
            self.waiting = True
        elif header.startswith("INTEG:"):
            self._integ(header[len("INTEG:"):])
        elif header not in ("COMM:HEAD", "NUM:FORM", "COMM:VERB", "SYST:COMM:COMM",
                            "STAT:QMES", "INTEG:MODE"):
            return False
        return True

    def _integ(self, what):
        t = self.now()
        if what in ("STAR", "START"):
            if self.integ_state == "start":
                self.errors.append((842, "Integration already started"))
            else:
                self.integ_state, self.integ_since = "start", t
        elif what == "STOP":
            if self.integ_state != "start":
                self.errors.append((844, "Integration not started"))
            else:
                self.integ_j, self.integ_s = self._integrator(t)
                self.integ_state = "stop"
        elif what in ("RES", "RESET"):
            if self.integ_state == "start":
                self.errors.append((845, "Integration running"))
            else:
                self.integ_state, self.integ_j, self.integ_s = "reset", 0.0, 0.0
        elif what in ("STAT?", "STATE?"):
            self.reply(self.integ_state)
        else:
            self.errors.append(UNDEFINED)


def _milliseconds(arg):
    try:
        if arg.endswith("MS"):
            return int(round(float(arg[:-2])))
        return int(round(float(arg.rstrip("S")) * 1000))
    except ValueError:
        return None


class KeysightSimulator(ScpiSimulator):
    """Simulated Keysight N6705B DC power analyzer channel."""

    kind = "keysight"
    error_query = "SYST:ERR?"

    def __init__(self, profile=None, volts=19.0, has_power=True, **faults):
        ScpiSimulator.__init__(self, profile, volts,
                               idn="Keysight Technologies,N6705B,MY00000000,D.01.09",
                               number_format="%+.6E", **faults)
        self.has_power = has_power

    def command(self, header, args):
        watts = self.profile.power(self.now())
        if header == "MEAS:VOLT?":
            self.reply(self.number(self.volts))
        elif header == "MEAS:CURR?":
            self.reply(self.number(watts / self.volts))
        elif header == "MEAS:POW?" and self.has_power:
            self.reply(self.number(watts))
        else:
            return header == "SYST:REM"
        return True
