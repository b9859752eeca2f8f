"""`ebedge remote qualify` says the board is still at it while the protocol runs (minutes)."""
import time

import pytest

from ebedge.remote.qualify import _Ticker

pytestmark = pytest.mark.host


def test_progress_ticks_with_the_elapsed_time_until_stopped():
    said = []
    ticker = _Ticker(said.append, period_s=0.05)
    time.sleep(0.4)
    ticker.stop()
    count = len(said)
    time.sleep(0.2)
    assert count >= 3 and len(said) == count  # nothing after stop
    assert said == sorted(said) and 0.04 < said[0] < 0.3
