"""The Early-Bird FIFO rule: newest mask vs every older mask in a window of 5, all <= epsilon."""
import numpy as np
import pytest

from ebedge.prune.earlybird import EarlyBirdDetector
from ebedge.prune.masks import mask_distance


def _mask(size, true_positions):
    m = np.zeros(size, dtype=bool)
    m[list(true_positions)] = True
    return m


def _feed(detector, masks):
    return [detector.update(epoch, m) for epoch, m in enumerate(masks)]


def test_identical_masks_fire_exactly_when_the_window_fills_and_only_once():
    det = EarlyBirdDetector(0.5)
    fired = _feed(det, [_mask(20, range(10))] * 8)
    assert fired == [False, False, False, False, True, False, False, False]
    assert det.eb_epoch == 4 and det.found
    assert det.distances[:4] == [None] * 4 and det.distances[4:] == [0.0] * 4
    assert [e for e, _ in det.history] == list(range(8)) and det.last_distance == 0.0


def test_steadily_drifting_masks_never_fire():
    # mask k keeps the first 10 + 5k of 100 channels: newest vs oldest in the window is 0.2 apart.
    det = EarlyBirdDetector(0.5)
    assert not any(_feed(det, [_mask(100, range(10 + 5 * k)) for k in range(12)]))
    assert det.eb_epoch is None and det.distances[-1] == pytest.approx(0.2)


def test_distance_equal_to_epsilon_fires_like_the_official_code():
    a = _mask(10, range(5))
    b = _mask(10, range(6))  # one of ten positions differs: distance exactly 0.1
    det = EarlyBirdDetector(0.5, epsilon=0.1)
    assert _feed(det, [a, a, a, a, b]) == [False] * 4 + [True]
    strict = EarlyBirdDetector(0.5, epsilon=0.09)
    assert not any(_feed(strict, [a, a, a, a, b]))


def test_one_far_mask_in_the_window_blocks_until_it_leaves():
    near, far = _mask(20, range(10)), _mask(20, range(10, 20))
    det = EarlyBirdDetector(0.3)
    fired = _feed(det, [near, far, near, near, near, near, near, near])
    assert fired.index(True) == 6 and det.eb_epoch == 6
    assert det.distances[4] == 1.0 and det.distances[5] == 1.0


def test_only_newest_versus_older_distances_count():
    newest = _mask(20, range(10))
    # each older mask differs from the newest in 2 of 20 places (0.1) but from each other in 4 (0.2)
    olders = [_mask(20, [p for p in range(10) if p != k] + [10 + k]) for k in range(4)]
    assert mask_distance(olders[0], olders[1]) == 0.2
    det = EarlyBirdDetector(0.5, epsilon=0.1)
    assert _feed(det, olders + [newest]) == [False] * 4 + [True]


def test_window_size_is_configurable():
    det = EarlyBirdDetector(0.5, window=3)
    assert _feed(det, [_mask(4, [0])] * 3) == [False, False, True]
    with pytest.raises(ValueError):
        EarlyBirdDetector(0.5, window=1)
