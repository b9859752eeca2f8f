"""Time left in long work, from the work already timed: epochs of a run, cells of a suite.

The estimate is the time per unit of work of the finished units times the work left; units
finished without being timed (a suite's cells already complete) shorten the work but not the rate.
Units may weigh differently (a suite's cells: the epochs each trains), so that a cell that trains
twice as long as the others is expected to take twice as long.
"""


def format_duration(seconds):
    """42s, 3m05s, 2h07m."""
    seconds = int(round(seconds))
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm%02ds" % divmod(seconds, 60)
    return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)


class Eta(object):
    """`total` units, all of weight 1, or one unit per entry of `weights` (their relative costs);
    call `done()` as each one finishes, in order."""

    def __init__(self, total=None, weights=None):
        self.weights = [float(w) for w in weights] if weights is not None else [1.0] * total
        self.total = len(self.weights)
        self.finished = 0
        self._timed_s = 0.0
        self._timed_weight = 0.0

    def done(self, seconds=None):
        """The next unit finished, having taken `seconds` (None: it took no time worth counting)."""
        if seconds is not None and self.finished < self.total:
            self._timed_s += float(seconds)
            self._timed_weight += self.weights[self.finished]
        self.finished += 1

    def remaining_s(self):
        """Seconds left, or None before any unit was timed."""
        if self._timed_weight <= 0:
            return None
        return sum(self.weights[self.finished:]) * self._timed_s / self._timed_weight

    def text(self):
        """'ETA 3m05s' (empty before the first timed unit, and once all are done)."""
        left = self.remaining_s()
        if left is None or self.finished >= self.total:
            return ""
        return "ETA %s" % format_duration(left)
