"""A Watts up? PRO on a pty: header on `#H,R,0;`, external logging on `#L,W,3,E,<r>,<s>;`.

Records are logged on the meter's own clock, at sim times that are whole multiples of the
interval, and carry the power at the moment they are sent. WH counts since start or the last
`#R,W,0;`. `#L,R,0;` and the abort byte 0x18 stop logging; other commands get no reply.
"""
import math

from meters.sim.pty_sim import PtySimulator

HEADER = b"#h,-,18,W,V,A,WH,Cost,WH/Mo,Cost/Mo,Wmax,Vmax,Amax,Wmin,Vmin,Amin,PF,DC,PC,Hz,VA;\r\n"
ABORT = b"\x18"


class WattsupSimulator(PtySimulator):
    """Simulated Watts up? PRO."""

    kind = "wattsup"

    def __init__(self, profile=None, volts=230.0, **faults):
        PtySimulator.__init__(self, profile, **faults)
        self.volts = float(volts)
        self._interval = None
        self._next = None
        self._wh_since = 0.0
        self._buf = b""

    def on_plug(self):
        self._buf = b""

    def on_input(self, data):
        if ABORT in data:
            self._interval = self._next = None
            data = data[data.rfind(ABORT) + 1:]
            self._buf = b""
        self._buf += data
        while b";" in self._buf:
            packet, self._buf = self._buf.split(b";", 1)
            start = packet.rfind(b"#")
            if start >= 0:
                self._command(packet[start + 1:].decode("ascii", "replace").split(","))

    def _command(self, fields):
        head = tuple(f.upper() for f in fields[:2])
        if head == ("H", "R"):
            self.send(HEADER)
        elif head == ("R", "W"):
            self._wh_since = self.now()
        elif head == ("L", "R"):
            self._interval = self._next = None
        elif head == ("L", "W") and len(fields) == 6 and fields[3].upper() == "E":
            try:
                interval = max(1, int(fields[5]))
            except ValueError:
                return
            self._interval = float(interval)
            self._next = (math.floor(self.now() / interval) + 1) * interval

    def next_tick(self):
        return self._next

    def on_tick(self, t):
        while self._next <= t:
            self._next += self._interval
        if not self.drop():
            self.send(self.record(t))

    def record(self, t):
        watts = self.profile.power(t)
        amps = watts / self.volts
        wh = self.profile.energy(self._wh_since, t) / 3600.0
        w10, v10, ma = int(round(watts * 10)), int(round(self.volts * 10)), int(round(amps * 1000))
        fields = (w10, v10, ma, int(wh * 10), 0, 0, 0, w10, v10, ma, w10, v10, ma, 100, 100, 0,
                  500, w10)
        return ("#d,-,18," + ",".join(str(f) for f in fields) + ";\r\n").encode("ascii")
