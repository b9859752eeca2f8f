"""Board-to-laptop clock offset from round trips over one open SSH channel (NTP's idea, by hand).

An external meter on the laptop stamps samples with the laptop's clock while the board stamps its
phases with its own wall clock. One exchange sends a line at laptop time t_send, the board answers
with its wall time b, the reply lands at t_recv; then offset = b - (t_send + t_recv) / 2 and the
true offset lies within +-(t_recv - t_send) / 2 of it whatever the path delays. A burst keeps the
exchange with the smallest round trip (the tightest bound). Bursts before, during and after a run
give a straight-line fit offset(t) = offset_ref + drift x (t - t_ref) in laptop monotonic time.

Laptop times here are `time.monotonic()` (what meter samples carry as t_mono), so a laptop wall
clock step during a run changes nothing; `offset_s` in config.json is also given against the
laptop's wall clock, for people.
"""
import math
import os
import select
import subprocess
import threading
import time

from ebedge.errors import EbedgeError

BOUND_LIMIT_S = 0.4  # the MLPerf Power bound; a run beyond it gets a flag
FLAG = "clock_offset_bound_exceeded"
BURST = 15
MAX_REPLY = 256  # a reply is one number


class ClockChannel(object):
    """`ebedge agent clock` on the board, kept open for the life of a run."""

    def __init__(self, conn, remote_ebedge, timeout_s=20.0):
        self.timeout_s = timeout_s
        self._proc = conn.popen([remote_ebedge, "agent", "clock"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                universal_newlines=False, bufsize=0)
        self._lock = threading.Lock()
        self._buf = b""

    def exchange(self):
        """(t_send, board_wall, t_recv) for one round trip (laptop monotonic seconds)."""
        with self._lock:
            t_send = time.monotonic()
            try:
                self._proc.stdin.write(b"t\n")
            except (BrokenPipeError, OSError):
                raise EbedgeError("clock channel to the board closed")
            line = self._read_line()
            t_recv = time.monotonic()
        try:
            board_wall = float(line)
        except ValueError:
            board_wall = None
        if board_wall is None or not math.isfinite(board_wall):  # `nan` is no time
            raise EbedgeError("clock channel: unexpected reply %r" % line[:80])
        return t_send, board_wall, t_recv

    def _read_line(self):
        deadline = time.monotonic() + self.timeout_s
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise EbedgeError("clock channel: no reply within %.0f s" % self.timeout_s)
            chunk = os.read(fd, 4096)
            if not chunk:
                raise EbedgeError("clock channel to the board closed")
            self._buf += chunk
            if len(self._buf) > MAX_REPLY and b"\n" not in self._buf:
                raise EbedgeError("clock channel: a reply over %d bytes" % MAX_REPLY)
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode("ascii", "replace")

    def burst(self, n=BURST):
        """One estimate from `n` exchanges (after one warm-up): the minimum-delay exchange."""
        self.exchange()
        best = min((self.exchange() for _ in range(n)), key=lambda e: e[2] - e[0])
        return estimate(*best)

    def close(self):
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout=5)
        except Exception:
            self._proc.kill()
            self._proc.wait()


def estimate(t_send, board_wall, t_recv):
    """One estimate as a dict: at laptop monotonic `t`, board_wall - t = `offset_mono_s` +- `bound_s`."""
    mid = 0.5 * (t_send + t_recv)
    return {"t_mono": mid, "offset_mono_s": board_wall - mid, "bound_s": 0.5 * (t_recv - t_send),
            "laptop_wall_minus_mono": time.time() - time.monotonic()}


class ClockModel(object):
    """offset(t) = offset_ref + drift x (t - t_ref), t in laptop monotonic seconds."""

    def __init__(self, estimates):
        if not estimates:
            raise EbedgeError("no clock estimates: the board's clock offset is unknown")
        self.estimates = list(estimates)
        ts = [e["t_mono"] for e in estimates]
        os_ = [e["offset_mono_s"] for e in estimates]
        self.t_ref = sum(ts) / len(ts)
        self.offset_ref = sum(os_) / len(os_)
        var = sum((t - self.t_ref) ** 2 for t in ts)
        self.drift = (sum((t - self.t_ref) * (o - self.offset_ref) for t, o in zip(ts, os_)) / var
                      if len(ts) > 1 and var > 0 else 0.0)
        residual = max(abs(o - self.offset_mono(t)) for t, o in zip(ts, os_))
        self.bound_s = max(e["bound_s"] for e in estimates) + residual

    def offset_mono(self, t_mono):
        return self.offset_ref + self.drift * (t_mono - self.t_ref)

    def board_wall(self, t_mono):
        """The board's wall time at laptop monotonic time `t_mono`."""
        return t_mono + self.offset_mono(t_mono)

    def as_dict(self):
        wall_minus_mono = self.estimates[-1]["laptop_wall_minus_mono"]
        return {"offset_s": self.offset_ref - wall_minus_mono, "bound_s": self.bound_s,
                "drift": self.drift, "offset_mono_s": self.offset_ref, "t_ref_mono": self.t_ref,
                "bound_limit_s": BOUND_LIMIT_S, "exceeds_limit": self.bound_s > BOUND_LIMIT_S,
                "method": "minimum-delay round trips over ssh to `ebedge agent clock`",
                "estimates": self.estimates}

    @classmethod
    def from_dict(cls, data):
        return cls(data["estimates"])


class PeriodicProbe(object):
    """Bursts on a channel every `period_s` in a background thread, into `estimates`."""

    def __init__(self, channel, estimates, period_s, on_estimate=None):
        self.channel = channel
        self.estimates = estimates
        self.period_s = period_s
        self.on_estimate = on_estimate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="clock-probe")
        self._thread.daemon = True

    def start(self):
        self._thread.start()
        return self

    def _loop(self):
        while not self._stop.wait(self.period_s):
            try:
                self.estimates.append(self.channel.burst())
            except EbedgeError:
                return  # the channel is gone; the run's other estimates remain
            if self.on_estimate:
                self.on_estimate()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=30)
