"""Time left in long work, from the work already timed: epochs of a run, cells of a suite.

The estimate is the mean time of the finished units times the units left; units finished
without being timed (a suite's cells already complete) shorten the work but not the mean.
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
    """`total` units of roughly equal cost; call `done()` as each one finishes."""

    def __init__(self, total):
        self.total = total
        self.finished = 0
        self._timed = []

    def done(self, seconds=None):
        """One unit finished, having taken `seconds` (None: it took no time worth counting)."""
        self.finished += 1
        if seconds is not None:
            self._timed.append(float(seconds))

    def remaining_s(self):
        """Seconds left, or None before any unit was timed."""
        if not self._timed:
            return None
        return max(0, self.total - self.finished) * sum(self._timed) / len(self._timed)

    def text(self):
        """'ETA 3m05s' (empty before the first timed unit, and once all are done)."""
        left = self.remaining_s()
        if left is None or self.finished >= self.total:
            return ""
        return "ETA %s" % format_duration(left)
