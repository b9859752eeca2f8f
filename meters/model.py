"""A modelled power estimate, for machines with no meter at all; always labelled `modelled`.

P = idle_w + busy_core_w x (CPU seconds this process used per wall second), from `os.times()`
(user + system, plus children once they have been waited for). It sees neither the GPU nor other
processes, so it is the least trusted source and every number from it says `modelled`.
The default watts are rough TX2-like guesses; set them for your machine.
"""
import os

from meters.base import MODELLED, TOTAL, Meter, MeterError, Sample, now, register


def _cpu_seconds():
    t = os.times()
    return t[0] + t[1] + t[2] + t[3]


@register
class ModelMeter(Meter):
    """Options: `idle_w` (watts with nothing running), `busy_core_w` (extra watts per busy core)."""

    name = "model"
    method = MODELLED
    trust = 0
    accuracy_pct = 50.0  # a CPU-time model is off by tens of percent; say so in the uncertainty
    default_interval_s = 0.2  # 20 periods (the shortest window counted as fine) = 4 s, under the
    # default run's 5 s idle windows; os.times() ticks at 10 ms, so a reading's busy share is +-5%

    def __init__(self, interval_s=None, idle_w=2.0, busy_core_w=1.5):
        Meter.__init__(self, interval_s)
        if idle_w < 0 or busy_core_w < 0:
            raise MeterError("model: idle_w and busy_core_w must be >= 0")
        self.idle_w = float(idle_w)
        self.busy_core_w = float(busy_core_w)
        self._last = None
        self.total_rails = [TOTAL]

    @classmethod
    def probe(cls):
        return True, "modelled estimate from this process's CPU time (always available)"

    def open(self):
        self._last = (now()[0], _cpu_seconds())

    def read(self):
        t_mono, t_wall = now()
        cpu = _cpu_seconds()
        t_prev, cpu_prev = self._last
        self._last = (t_mono, cpu)
        busy = (cpu - cpu_prev) / (t_mono - t_prev) if t_mono > t_prev else 0.0
        watts = self.idle_w + self.busy_core_w * max(0.0, busy)
        return [Sample(t_mono, t_wall, self.name, TOTAL, watts)]

    def describe(self):
        info = Meter.describe(self)
        info.update(idle_w=self.idle_w, busy_core_w=self.busy_core_w)
        return info
