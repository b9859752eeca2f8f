"""Summary side of coverage: a phase its meter covered less than `min_coverage` of is
named in summary.json flags, from energy.csv's covered_frac."""
import pytest

from ebedge.run.rundir import RunDir
from ebedge.run.finish import _energy_summary
from ebedge.config.settings import resolve
from meters.base import Sample


def _run_with_a_gap(path):
    """idle, then search 0..10 s, sampled at 10 Hz except 6..9 s (a meter that stopped answering)."""
    rundir = RunDir(str(path), "run")
    times = [k / 10.0 for k in range(-10, 101) if not 60 < k < 90]
    rundir.log_samples([Sample(1000 + t, 1.8e9 + t, "ina3221", "total", 5.0) for t in times])
    rundir.log_phase("idle_before", None, (999.0, 1.8e9 - 1), (1000.0, 1.8e9))
    rundir.log_phase("search", 0, (1000.0, 1.8e9), (1010.0, 1.8e9 + 10))
    rundir.close()
    return rundir


@pytest.mark.parametrize("min_coverage,flagged", [(0.95, True), (0.5, False)])
def test_low_coverage_is_flagged(tmp_path, min_coverage, flagged):
    rundir = _run_with_a_gap(tmp_path / "run")
    summary = {"flags": []}
    _energy_summary(rundir, resolve({"min_coverage": min_coverage}), summary, None)
    low = [f for f in summary["flags"] if f.startswith("low coverage")]
    if flagged:
        assert any("ina3221" in f and "search" in f and "70.0%" in f for f in low), low
        assert not any("idle_before" in f for f in low)
    else:
        assert low == []
    assert summary["energy"] is None or "search" in summary["energy"]["kj"]
