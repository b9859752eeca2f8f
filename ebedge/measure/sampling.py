"""Background sampling of meters into a sink (a run's `samples.csv`, a laptop-side file).

The meters are read by a process of their own (`meters.process`), so that work holding the
interpreter lock in the measured process cannot stop them: the samples keep their timestamps
(one monotonic clock for every process) and arrive here in batches, a few times a second; a
crash loses at most the last batch and the training loop never waits on a meter.
"""
import time

import meters
from meters.process import DRAIN_S, MeterProcess
from ebedge.errors import EbedgeError


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
    """Opens the named meters, samples them for the life of a run, passes samples to `write`.

    `meters` are views of the meters the sampler process reads (name, interval_s, describe(),
    error)."""

    def __init__(self, names, write, options=None, interval_s=None):
        self.write = write
        options = options or {}
        specs = []
        try:
            for name in resolve_meter_names(names):
                kwargs = dict(options.get(name, {}))
                if interval_s is not None:
                    kwargs["interval_s"] = interval_s
                specs.append((name, kwargs))
            self._process = MeterProcess(specs, write) if specs else None
        except meters.MeterError as exc:
            raise EbedgeError(str(exc))
        self.meters = self._process.views if self._process else []

    def describe(self):
        return [m.describe() for m in self.meters]

    def start(self):
        if self._process:
            self._process.start()

    def settle(self, t_mono):
        """Wait (a few sample periods at most) until every meter has read past `t_mono`, so that
        the last window's end interpolates between samples instead of falling into a gap."""
        for meter in self.meters:
            deadline = time.monotonic() + 3 * meter.interval_s + 2 * DRAIN_S + 0.5
            while self._process.latest.get(meter.name, float("-inf")) <= t_mono \
                    and time.monotonic() < deadline and meter.error is None:
                time.sleep(min(0.05, meter.interval_s / 2))

    def stop(self):
        """Stop reading, write what is left, release the meters; returns one line per meter that
        failed for good or survived failed reads (retried, the missed readings flagged `gap`)."""
        if not self._process:
            return []
        self._process.stop()
        errors = [m.error if str(m.error).startswith(m.name + ":") else
                  "%s: %s" % (m.name, m.error) for m in self.meters if m.error is not None]
        return errors + list(self._process.faults)
