"""A Prometheus text-format endpoint with the live power and energy of every meter's rails.

    ebedge_power_watts{meter="ina3221",rail="total"} 7.25
    ebedge_energy_joules_total{meter="ina3221",rail="total"} 1234.5

Fed the samples a recording or run writes (`feed`), served over HTTP on its own thread. The energy
counter is the trapezoid between consecutive usable readings of a rail; an interval that ends in a
`gap` sample, follows an unusable reading, or lasts over GAP_FACTOR x the rail's shortest period
is not bridged (as in ebedge.measure.energy), so the counter never invents joules. It is a live
view: the run directory's energy.csv stays the record. Binds to 127.0.0.1 unless given ADDR:PORT.
Device side: Python 3.6, standard library only.
"""
import math
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn

from ebedge.errors import EbedgeError
from meters.base import GAP

GAP_FACTOR = 3.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def parse_address(text):
    """`PORT` or `ADDR:PORT` -> (addr, port); a one-line error otherwise."""
    addr, sep, port = str(text).rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise EbedgeError("--prometheus-port wants PORT or ADDR:PORT (0-65535), got %r" % (text,))
    return (addr.strip("[]") if sep else "127.0.0.1"), number


def _label(value):
    """A label value in the text format's escaping (backslash, quote, newline)."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Rail(object):
    __slots__ = ("power_w", "energy_j", "last", "period_s")

    def __init__(self):
        self.power_w = None
        self.energy_j = 0.0
        self.last = None  # (t_mono, watts) of the last usable reading, None after a bad one
        self.period_s = None  # shortest spacing seen: the rail's period

    def add(self, sample):
        p = sample.power_w
        if p is None or not isinstance(p, (int, float)) or math.isnan(p) or math.isinf(p) \
                or p < 0:
            self.last = None
            return
        if self.last is not None and GAP not in sample.flags:
            dt = sample.t_mono - self.last[0]
            if dt > 0:
                self.period_s = dt if self.period_s is None else min(self.period_s, dt)
                if dt <= GAP_FACTOR * self.period_s:
                    self.energy_j += 0.5 * (self.last[1] + p) * dt
        self.power_w = float(p)
        self.last = (sample.t_mono, float(p))


class _Server(ThreadingMixIn, HTTPServer):
    daemon_threads = True


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.split("?")[0] not in ("/", "/metrics"):
            self.send_error(404)
            return
        body = self.server.exporter.text().encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # a scrape every few seconds is not news
        pass


class PowerExporter(object):
    """Serves the metrics on `address` (PORT or ADDR:PORT; port 0 picks a free one, see `.port`)."""

    def __init__(self, address):
        host, port = parse_address(address)
        self._lock = threading.Lock()
        self._rails = {}
        try:
            self._server = _Server((host, port), _Handler)
        except (OSError, socket.error) as exc:
            raise EbedgeError("cannot serve Prometheus metrics on %s:%d: %s"
                              % (host, port, getattr(exc, "strerror", None) or exc))
        self._server.exporter = self
        self.host = host
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="prometheus")
        self._thread.daemon = True
        self._thread.start()

    def feed(self, samples):
        with self._lock:
            for s in samples:
                self._rails.setdefault((s.meter, s.rail), _Rail()).add(s)

    def text(self):
        with self._lock:
            rails = sorted((k, r.power_w, r.energy_j) for k, r in self._rails.items())
        lines = ["# HELP ebedge_power_watts Latest power reading of a meter's rail.",
                 "# TYPE ebedge_power_watts gauge"]
        lines += ['ebedge_power_watts{meter="%s",rail="%s"} %r' % (_label(m), _label(r), w)
                  for (m, r), w, _ in rails if w is not None]
        lines += ["# HELP ebedge_energy_joules_total Energy of a meter's rail since ebedge "
                  "started reading it (trapezoid, gaps not bridged).",
                  "# TYPE ebedge_energy_joules_total counter"]
        lines += ['ebedge_energy_joules_total{meter="%s",rail="%s"} %r' % (_label(m), _label(r), j)
                  for (m, r), _, j in rails]
        return "\n".join(lines) + "\n"

    def tee(self, write):
        """A sample sink that calls `write` and feeds this exporter."""
        def both(samples):
            write(samples)
            self.feed(samples)
        return both

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

