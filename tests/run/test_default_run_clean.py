"""The built-in default run is not flagged for its own choices: its idle windows hold 20 periods
of every meter `auto` picks before jtop, and an instant prune phase is a note, not a warning."""
import pytest

import meters
from ebedge.measure.accounting import MIN_PERIODS_PER_WINDOW
from ebedge.run.quick import QUICK_SUITE
from ebedge.run.finish import _short_windows
from ebedge.run.suite import load_suite


@pytest.mark.parametrize("name", ["ina3221", "tegrastats", "nvml", "rapl", "model"])
def test_default_idle_windows_hold_20_periods_of_every_meter_auto_may_pick(name):
    # jtop (trust 70) is picked only where tegrastats (80) is missing; its period is its service's
    period = meters.base.get(name).default_interval_s
    for cell in load_suite(QUICK_SUITE).cells():
        assert MIN_PERIODS_PER_WINDOW * period <= cell.settings.idle_seconds


class _Meter(object):
    name = "model"
    interval_s = 0.2


class _Sampler(object):
    meters = [_Meter()]


def _row(phase, seconds):
    return {"phase": phase, "rail": "total", "meter": "model", "duration_s": seconds}


def test_an_instant_prune_is_a_note_and_a_short_search_a_warning():
    warnings, notes = _short_windows(
        [_row("idle_before", 5.0), _row("search", 1.0), _row("prune", 0.02),
         _row("retrain", 30.0), _row("train_total", 0.5)], _Sampler())
    assert warnings == ["warning: search lasted 1.00s, under 20 periods of model (0.20s)"]
    (note,) = notes
    assert note.startswith("note: prune lasted 0.02s") and "expected" in note
    assert "warning" not in note
