"""A device's power over time, P(t), piecewise linear so that its integral is exact.

Every simulator samples the same profile, so a test can compare the joules a driver measured
with `energy(t0, t1)`, the truth.

Spec strings (for `ebedge meters simulate --power-profile`): comma-separated segments, each
`W:S` (hold W watts for S seconds) or `A-B:S` (ramp linearly from A to B watts over S seconds).
After the last segment the profile repeats from the start.
"""


class PowerProfile(object):
    """Piecewise-linear, periodic power waveform starting at t = 0 (seconds since sim start)."""

    def __init__(self, segments):
        """`segments`: list of (start_watts, end_watts, duration_s)."""
        if not segments:
            raise ValueError("a power profile needs at least one segment")
        for a, b, d in segments:
            if d <= 0 or a < 0 or b < 0:
                raise ValueError("bad segment (%r, %r, %r): watts >= 0 and seconds > 0" % (a, b, d))
        self.segments = [(float(a), float(b), float(d)) for a, b, d in segments]
        self.period = sum(d for _, _, d in self.segments)
        self._period_energy = sum((a + b) / 2.0 * d for a, b, d in self.segments)

    @classmethod
    def parse(cls, spec):
        segments = []
        for part in spec.split(","):
            part = part.strip()
            try:
                watts, seconds = part.split(":")
                if "-" in watts:
                    a, b = watts.split("-")
                else:
                    a = b = watts
                segments.append((float(a), float(b), float(seconds)))
            except ValueError:
                raise ValueError("bad power-profile segment %r: use W:S or A-B:S" % part)
        return cls(segments)

    @classmethod
    def default(cls):
        """20 s with steps and ramps: idle, a step up, a ramp, a plateau, a ramp down."""
        return cls([(3.0, 3.0, 4.0), (9.0, 9.0, 4.0), (9.0, 14.0, 4.0), (14.0, 14.0, 4.0),
                    (14.0, 3.0, 4.0)])

    def onboard(self, gain=1.0, offset_w=0.0):
        """What an on-board rail with a gain error and an offset reads when this profile is the
        wall: (P - offset_w) / gain, so that P_wall = gain x P_rail + offset_w exactly (the map
        `ebedge meters qualify` must recover). Still piecewise linear, so still exact."""
        gain, offset_w = float(gain), float(offset_w)
        if not gain > 0:
            raise ValueError("gain must be positive, got %r" % gain)
        try:
            return PowerProfile([((a - offset_w) / gain, (b - offset_w) / gain, d)
                                 for a, b, d in self.segments])
        except ValueError:
            raise ValueError("offset %g W is more than the profile's lowest power %g W"
                             % (offset_w, min(min(a, b) for a, b, _ in self.segments)))

    def power(self, t):
        t = t % self.period
        for a, b, d in self.segments:
            if t < d:
                return a + (b - a) * t / d
            t -= d
        a, b, _ = self.segments[-1]
        return b

    def _energy_from_zero(self, t):
        whole, t = divmod(t, self.period)
        e = whole * self._period_energy
        for a, b, d in self.segments:
            if t >= d:
                e += (a + b) / 2.0 * d
                t -= d
            else:
                e += a * t + (b - a) * t * t / (2.0 * d)
                break
        return e

    def energy(self, t0, t1):
        """Exact joules between t0 and t1 (seconds since the simulator started)."""
        if t1 < t0:
            raise ValueError("t1 < t0")
        return self._energy_from_zero(t1) - self._energy_from_zero(t0)
