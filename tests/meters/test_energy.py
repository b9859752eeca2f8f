"""ebedge.measure.energy against exact integrals: edges, gaps, missing readings, counters, idle, phases."""
import math
import random
import time

import pytest

from ebedge.config.formats import ENERGY_COLUMNS
from ebedge.measure import energy
from meters.base import Sample
from meters.sim.profile import PowerProfile


def series(ts, power, meter="m", rail="total", counter=None):
    return [Sample(t, t, meter, rail, power(t) if callable(power) else power,
                   meter_energy_j=counter(t) if counter else None) for t in ts]


def ramp(t):
    return 2.0 + 0.5 * t


def ramp_energy(a, b):
    return 2.0 * (b - a) + 0.25 * (b * b - a * a)


def test_edges_between_samples_are_interpolated_exactly():
    s = series([float(t) for t in range(11)], ramp)
    w = energy.integrate(s, 2.3, 7.6)
    assert w.energy_j == pytest.approx(ramp_energy(2.3, 7.6), rel=1e-12)
    assert w.duration_s == pytest.approx(5.3)
    assert w.covered_frac == pytest.approx(1.0)
    assert w.n_samples == 5  # t = 3..7
    assert w.avg_power_w == pytest.approx(ramp_energy(2.3, 7.6) / 5.3)


def test_window_inside_one_interval_gets_its_share():
    s = series([0.0, 1.0, 2.0, 3.0], ramp)
    w = energy.integrate(s, 1.2, 1.7)
    assert w.energy_j == pytest.approx(ramp_energy(1.2, 1.7), rel=1e-12)
    assert w.n_samples == 0
    assert w.covered_frac == pytest.approx(1.0)


def test_unsorted_input_is_sorted():
    ts = [float(t) for t in range(11)]
    random.Random(3).shuffle(ts)
    assert energy.integrate(series(ts, ramp), 0.5, 9.5).energy_j == pytest.approx(
        ramp_energy(0.5, 9.5), rel=1e-12)


def test_gap_is_excluded_not_zero_filled_and_reported():
    ts = [0, 1, 2, 3, 7, 8, 9, 10]  # 3 -> 7 is 4 nominal periods
    s = series([float(t) for t in ts], 5.0)
    w = energy.integrate(s, 0.0, 10.0, nominal_interval_s=1.0)
    assert w.energy_j == pytest.approx(5.0 * 6)  # the covered 6 s only
    assert w.covered_frac == pytest.approx(0.6)
    assert w.max_gap_s == pytest.approx(4.0)
    assert w.avg_power_w == pytest.approx(5.0)  # not diluted by the gap
    assert w.uncertainty_pct == pytest.approx(40.0)
    bridged = energy.integrate(s, 0.0, 10.0, nominal_interval_s=1.0, gap_factor=5.0)
    assert bridged.energy_j == pytest.approx(50.0)


def test_gap_factor_uses_median_spacing_by_default():
    ts = [0.0, 0.1, 0.2, 0.3, 0.4, 1.0, 1.1, 1.2]  # 0.4 -> 1.0 is 6 periods
    w = energy.integrate(series(ts, 1.0), 0.0, 1.2)
    assert w.covered_frac == pytest.approx(0.6 / 1.2)


def test_edge_in_a_gap_counts_only_the_covered_part():
    s = series([0.0, 1.0, 2.0, 10.0, 11.0], 4.0)
    w = energy.integrate(s, 1.5, 10.5, nominal_interval_s=1.0)
    assert w.energy_j == pytest.approx(4.0 * (0.5 + 0.5))
    assert w.covered_frac == pytest.approx(1.0 / 9.0)


def test_missing_readings_widen_the_gap():
    s = series([float(t) for t in range(11)], ramp)
    s[5].power_w = None
    s[6].power_w = float("nan")
    w = energy.integrate(s, 0.0, 10.0, nominal_interval_s=1.0, gap_factor=2.5)
    assert w.covered_frac == pytest.approx(0.7)  # 4 -> 7 excluded
    assert w.energy_j == pytest.approx(ramp_energy(0, 4) + ramp_energy(7, 10))
    assert w.n_samples == 8  # [0, 10): 0..4 and 7..9


def test_window_outside_the_samples_is_uncovered():
    s = series([5.0, 6.0, 7.0], 3.0)
    w = energy.integrate(s, 0.0, 4.0)
    assert w.energy_j == 0.0 and w.covered_frac == 0.0 and w.avg_power_w is None
    w = energy.integrate(s, 4.0, 6.0)
    assert w.energy_j == pytest.approx(3.0) and w.covered_frac == pytest.approx(0.5)


def test_meter_counter_is_interpolated_at_the_edges():
    s = series([float(t) for t in range(11)], 2.0, counter=lambda t: 100.0 + 2.0 * t)
    w = energy.integrate(s, 2.5, 7.25)
    assert w.meter_energy_j == pytest.approx(2.0 * 4.75)
    assert energy.integrate(series([0.0, 1.0], 2.0), 0, 1).meter_energy_j is None


def test_uncertainty_adds_accuracy_class_and_coverage():
    s = series([0.0, 1.0, 2.0, 3.0], 1.0)
    assert energy.integrate(s, 0, 3, accuracy_pct=1.5).uncertainty_pct == pytest.approx(1.5)
    assert energy.integrate(s, 0, 4, accuracy_pct=1.5).uncertainty_pct == pytest.approx(26.5)


def test_integrate_refuses_mixed_series():
    s = series([0.0, 1.0], 1.0, rail="a") + series([0.0, 1.0], 1.0, rail="b")
    with pytest.raises(ValueError, match="one meter\\+rail"):
        energy.integrate(s, 0, 1)


def test_idle_power_is_the_window_average():
    s = series([0.1 * k for k in range(101)], lambda t: 2.0 if t < 5 else 8.0)
    assert energy.idle_power(s, 0.5, 4.5) == pytest.approx(2.0)


def test_profile_sampled_at_10hz_errs_only_at_the_step():
    prof = PowerProfile.default()
    ts = [0.013 + 0.1 * k for k in range(200)]
    w = energy.integrate(series(ts, prof.power), 0.5, 19.5)
    # ramps are exact between samples; the 3 -> 9 W step between two samples costs <= dP*dt/2,
    # the three kinks a little less each
    assert abs(w.energy_j - prof.energy(0.5, 19.5)) <= 6.0 * 0.1 / 2 + 3 * 5.0 * 0.1 / 8


class Phase(object):
    def __init__(self, phase, epoch, t0, t1):
        self.phase, self.epoch, self.t_start_mono, self.t_end_mono = phase, epoch, t0, t1


def test_by_phase_rows_gross_net_and_epochs_summed():
    ts = [0.1 * k for k in range(301)]
    samples = series(ts, ramp, meter="ina3221") + series(ts, 1.0, meter="ina3221", rail="VDD_CPU")
    phases = [Phase("idle_before", 0, 0.0, 5.0), ("search", 1, 5.0, 12.0),
              Phase("search", 2, 12.0, 20.0), ("eval", 0, 20.0, 30.0)]
    rows = energy.by_phase(samples, phases, idle_power_w={("ina3221", "total"): 2.0}, run_id="r1")
    assert all(tuple(sorted(r)) == tuple(sorted(ENERGY_COLUMNS)) for r in rows)
    by = {(r["phase"], r["rail"]): r for r in rows}
    assert len(rows) == 6
    search = by[("search", "total")]
    assert search["energy_j"] == pytest.approx(ramp_energy(5, 20), rel=1e-9)
    assert search["energy_kj"] == pytest.approx(search["energy_j"] / 1000)
    assert search["duration_s"] == pytest.approx(15.0)
    assert search["net_energy_j"] == pytest.approx(ramp_energy(5, 20) - 2.0 * 15, rel=1e-9)
    assert search["idle_power_w"] == 2.0 and search["run_id"] == "r1"
    assert search["method"] == "measured"
    assert by[("search", "VDD_CPU")]["net_energy_j"] is None
    assert by[("eval", "VDD_CPU")]["energy_j"] == pytest.approx(10.0)
    assert search["n_samples"] == 150 and search["rate_hz"] == pytest.approx(10.0)


def test_by_phase_labels_modelled_meters():
    rows = energy.by_phase(series([0.0, 1.0, 2.0], 2.0, meter="model"), [("run", 0, 0.0, 2.0)])
    assert rows[0]["method"] == "modelled"


def test_hours_of_10hz_samples_are_fast():
    n = 4 * 3600 * 10
    samples = [Sample(0.1 * k, 0.0, "m", "total", 5.0) for k in range(n)]
    phases = [("epoch", k, 10.0 * k + 0.05, 10.0 * (k + 1) + 0.05) for k in range(1400)]
    start = time.time()
    rows = energy.by_phase(samples, phases)
    assert time.time() - start < 5.0
    assert rows[0]["energy_j"] == pytest.approx(5.0 * 14000.0, rel=1e-9)
    assert not math.isnan(rows[0]["covered_frac"])


def test_energy_1hz_shows_what_a_1hz_meter_misses_of_a_burst():
    # 2 W for 3 s at 100 Hz, with a 0.3 s burst to 10 W between the whole seconds
    samples = [Sample(i / 100.0, 0.0, "m", "total", 10.0 if 105 <= i < 135 else 2.0)
               for i in range(301)]
    (burst,) = energy.by_phase(samples, [("burst", None, 0.0, 3.0)])
    assert burst["energy_j"] == pytest.approx(6.0 + 8.0 * 0.3, abs=0.1)
    assert burst["energy_1hz_j"] == pytest.approx(6.0)  # readings at 0, 1, 2, 3 s: all 2 W
    steady = [Sample(i / 100.0, 0.0, "m", "total", 4.0) for i in range(301)]
    (row,) = energy.by_phase(steady, [("steady", None, 0.5, 2.5)])
    assert row["energy_1hz_j"] == pytest.approx(row["energy_j"]) == pytest.approx(8.0)
    assert row["calibrated_energy_j"] is None
