"""The Early-Bird detector: declare a ticket once the channel mask stops moving.

Semantics follow the official code (RICE-EIC/Early-Bird-Tickets, class EarlyBird), not the paper's
prose: a FIFO holds the last `window` masks (masks, not distances); each update compares the newest
mask with every older mask in the FIFO, and the ticket is declared when *all* those distances are
<= epsilon. The paper says "< epsilon"; we keep the code's "<=" because the published tickets came
from it (the two differ only when a distance equals epsilon exactly). No check is possible until
the FIFO is full, i.e. before the `window`-th update.

The mask of an untrained slimming model is degenerate (all gammas equal 0.5, so nothing is strictly
above the threshold and the mask is all False). Feeding it at epoch 0, as the official run does,
cannot fire: its distance to a real mask is about 1 - ratio, so it only blocks checks while in the FIFO.

Several prune ratios are searched side by side (the official run uses 0.3, 0.5, 0.7) with one
detector per ratio (ebedge.training.stages.Search).
"""
from collections import deque

from ebedge.config.spec import bound
from ebedge.prune.masks import mask_distance


class EarlyBirdDetector(object):
    """Feed one mask per epoch; `update` returns True exactly once, when the ticket is found."""

    def __init__(self, ratio, epsilon=0.1, window=5):
        if window < bound("window"):  # one bound, the settings' (a single mask has no distance)
            raise ValueError("Early-Bird window must hold at least %d masks, got %r"
                             % (bound("window"), window))
        if epsilon < 0:
            raise ValueError("Early-Bird epsilon must be >= 0, got %r" % (epsilon,))
        self.ratio = ratio
        self.epsilon = epsilon
        self.window = window
        self.eb_epoch = None
        self.history = []
        self.distances = []
        self._fifo = deque(maxlen=window)

    @property
    def found(self):
        return self.eb_epoch is not None

    @property
    def last_distance(self):
        """Max distance newest-vs-older at the last update; None before the FIFO was full."""
        return self.distances[-1] if self.distances else None

    def update(self, epoch, mask):
        """Record the mask of `epoch`; True if this update is the one that declares the ticket."""
        self.history.append((epoch, mask))
        self._fifo.append(mask)
        if len(self._fifo) < self.window:
            self.distances.append(None)
            return False
        newest = self._fifo[-1]
        worst = max(mask_distance(newest, older) for older in list(self._fifo)[:-1])
        self.distances.append(worst)
        if self.found or worst > self.epsilon:
            return False
        self.eb_epoch = epoch
        return True
