"""Ratios a benchmark prints: taken within each interleaved round, reported as median and spread."""
import pytest

from ebedge.util.stats import paired_ratios


def test_paired_ratios_pair_rounds_not_totals():
    # a burst of load in round 2 slows both sides: paired it cancels, a ratio of sums would not
    dense = [1.0, 3.0, 1.0]
    ticket = [0.5, 1.5, 0.5]
    assert paired_ratios(dense, ticket) == (2.0, 2.0, 2.0)
    assert paired_ratios([2.0, 4.0, 9.0, 1.0], [1.0, 2.0, 3.0, 1.0], scale=0.5) == (1.0, 0.5, 1.5)


def test_paired_ratios_need_a_round():
    with pytest.raises(ValueError):
        paired_ratios([], [])
