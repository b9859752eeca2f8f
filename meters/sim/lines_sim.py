"""A line-printing power sensor (INA219-on-an-Arduino style) on a pty.

After each plug the "MCU" boots for `boot_s` (silence), prints a banner and a `#` header, then
one line per `interval_s` on its own clock: the reference format `ms,V,A,W*XX` (see
meters/serial/lines.py) or, with `style="text"`, Adafruit-example text such as
`Bus Voltage: 5.00 V | Current: 400.00 mA | Power: 2000.00 mW`. Faults: `truncate_frac` of lines
are cut short (as when the port opens mid-line), `drop_frac` are not printed at all. Watts carry
one digit of noise, alternating in sign from line to line (zero on average), as a real sensor's
do, so a steady load never reads as a frozen one.
"""
import math

from meters.serial.lines import checksum
from meters.sim.pty_sim import PtySimulator

BANNER = b"Hello!\r\nMeasuring voltage and current with INA219 ...\r\n"


class LinesSimulator(PtySimulator):
    """Simulated INA219 sensor on an Arduino printing lines."""

    kind = "lines"

    def __init__(self, profile=None, interval_s=0.02, volts=5.0, style="csv", boot_s=0.3,
                 truncate_frac=0.0, **faults):
        PtySimulator.__init__(self, profile, **faults)
        if style not in ("csv", "text"):
            raise ValueError("style must be 'csv' or 'text', got %r" % style)
        self.interval_s = float(interval_s)
        self.volts = float(volts)
        self.style = style
        self.boot_s = float(boot_s)
        self.truncate_frac = float(truncate_frac)
        self._booted_at = 0.0
        self._next = None
        self._banner_due = True

    def on_plug(self):
        self._booted_at = self.now()
        self._next = self._booted_at + self.boot_s
        self._banner_due = True

    def next_tick(self):
        return self._next

    def on_tick(self, t):
        self._next = (math.floor(t / self.interval_s) + 1) * self.interval_s
        if self._banner_due:
            self._banner_due = False
            header = b"# ms,V,A,W\r\n" if self.style == "csv" else b""
            self.send(BANNER + header)
            return
        if self.drop():
            return
        line = self.line(t)
        if self.truncate_frac and self.rng.random() < self.truncate_frac:
            line = line[:self.rng.randint(1, len(line) - 3)] + b"\r\n"
        self.send(line)

    def line(self, t):
        measured = self.measured_at(t)
        watts = self.profile.power(measured) + (-1) ** int(measured / self.interval_s) * 1e-5
        amps = watts / self.volts
        if self.style == "text":
            text = "Bus Voltage: %.2f V | Current: %.2f mA | Power: %.2f mW" % (
                self.volts, amps * 1000, watts * 1000)
        else:
            text = "%d,%.3f,%.5f,%.5f" % (int((t - self._booted_at) * 1000), self.volts, amps,
                                          watts)
            text += "*%02X" % checksum(text)
        return text.encode("ascii") + b"\r\n"
