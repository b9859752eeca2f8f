"""Background sampling of meters into a sink (a run's `samples.csv`, a laptop-side file).

Meters read in their own threads; this one drains them twice a second and hands the samples to
the sink, so a crash loses at most the last half second of samples and the training loop never
waits on a meter.
"""
import threading
import time

import meters
from ebedge.errors import EbedgeError

DRAIN_PERIOD_S = 0.5


def resolve_meter_names(names):
    """["auto"] -> the most trusted meter this machine has; other names pass through."""
    out = []
    for name in names:
        if name == "auto":
            best = meters.best_available()
            if best is None:
                raise EbedgeError("no meter is available on this machine")
            out.append(best)
        else:
            out.append(name)
    return out


class MeterSampler(object):
    """Opens the named meters, samples them for the life of a run, passes samples to `write`."""

    def __init__(self, names, write, options=None, interval_s=None):
        self.write = write
        self.meters = []
        options = options or {}
        try:
            for name in resolve_meter_names(names):
                kwargs = dict(options.get(name, {}))
                if interval_s is not None:
                    kwargs["interval_s"] = interval_s
                meter = meters.create(name, **kwargs)
                meter.open()
                self.meters.append(meter)
        except meters.MeterError as exc:
            self._close_all()
            raise EbedgeError(str(exc))
        except TypeError as exc:  # an option the driver does not take
            self._close_all()
            raise EbedgeError("meter %s: %s" % (name, exc))
        except Exception:
            self._close_all()
            raise
        self._stop = threading.Event()
        self._thread = None
        self._drain_lock = threading.Lock()
        self._latest = {}  # meter name -> t_mono of the newest sample written

    def describe(self):
        return [m.describe() for m in self.meters]

    def start(self):
        for meter in self.meters:
            meter.start()
        self._thread = threading.Thread(target=self._loop, name="meter-drain")
        self._thread.daemon = True
        self._thread.start()

    def _drain(self):
        with self._drain_lock:
            for meter in self.meters:
                samples = meter.samples()
                if samples:
                    self.write(samples)
                    self._latest[meter.name] = samples[-1].t_mono

    def _loop(self):
        while not self._stop.wait(DRAIN_PERIOD_S):
            self._drain()

    def settle(self, t_mono):
        """Wait (a few sample periods at most) until every meter has read past `t_mono`, so that
        the last window's end interpolates between samples instead of falling into a gap."""
        for meter in self.meters:
            deadline = time.monotonic() + 3 * meter.interval_s + 0.5
            while self._latest.get(meter.name, float("-inf")) <= t_mono \
                    and time.monotonic() < deadline and meter.error is None:
                time.sleep(min(0.05, meter.interval_s / 2))
                self._drain()

    def stop(self):
        """Stop reading, write what is left, release the meters; returns one line per meter that
        failed for good or survived failed reads (retried, the missed readings flagged `gap`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for meter in self.meters:
            meter.stop()
        self._drain()
        errors = ["%s: %s" % (m.name, m.error) for m in self.meters if m.error is not None]
        errors += [m.fault_summary() for m in self.meters if m.fault_summary()]
        self._close_all()
        return errors

    def _close_all(self):
        for meter in self.meters:
            try:
                meter.close()
            except Exception:  # closing must not hide the error that brought us here
                pass
