"""`ebedge meters replay` times a log by its own date stamps, refuses a log it cannot
time, never lets equal timestamps zero the gap threshold, and skips (and counts) non-UTF-8 lines.
Built from real published tegrastats lines (fixtures/tegrastats)."""
import csv
import os

import pytest
from click.testing import CliRunner
from conftest import SEPARATE_STDERR

from conftest import FIXTURES
from ebedge.measure import energy
from ebedge.cli.meters import meters_group
from meters import tegrastats

TEGRA = os.path.join(FIXTURES, "tegrastats")
pytestmark = pytest.mark.skipif(not os.path.isdir(TEGRA), reason="../shared fixtures absent")
STAMP = "04-27-2026 14:59:41 "


def real_line(name, index=0):
    with open(os.path.join(TEGRA, name)) as f:
        return f.read().splitlines()[index]


def stamped_100ms_log(seconds=5):
    """An Orin Nano (JetPack 6) log at --interval 100: ten lines per date stamp."""
    body = real_line("orin-nano-jp6.txt")[len(STAMP):]  # VDD_IN 4761mW: the total
    return ["04-27-2026 14:59:%02d %s" % (41 + k // 10, body) for k in range(10 * seconds)]


def replay(args, log_bytes, tmp_path):
    log = tmp_path / "tegrastats.log"
    log.write_bytes(log_bytes)
    return CliRunner(**SEPARATE_STDERR).invoke(meters_group, ["replay", "tegrastats", str(log)] + args)


def total_row(out):
    with open(os.path.join(out, "energy.csv"), newline="") as f:
        return [r for r in csv.DictReader(f) if r["rail"] == "total"][0]


def test_date_stamps_time_a_100ms_log_without_interval(tmp_path):
    lines = stamped_100ms_log(5)
    out = str(tmp_path / "rec")
    res = replay(["--out", out], ("\n".join(lines) + "\n").encode(), tmp_path)
    assert res.exit_code == 0, res.output + res.stderr
    assert "timed by date stamps, 0.1 s apart" in res.stderr
    row = total_row(out)
    # 50 lines 0.1 s apart: 4.9 s at 4.761 W, not ten times that
    assert float(row["duration_s"]) == pytest.approx(4.9, abs=0.01)
    assert float(row["energy_j"]) == pytest.approx(4.761 * 4.9, rel=0.005)
    assert float(row["covered_frac"]) == pytest.approx(1.0)


def test_a_log_that_cannot_be_timed_is_refused(tmp_path):
    lines = [real_line("tx2-jp4-l4t32.txt", i) for i in range(3)]  # JetPack 4: no date stamps
    res = replay(["--out", str(tmp_path / "rec")], ("\n".join(lines) + "\n").encode(), tmp_path)
    assert res.exit_code == 1
    assert "no date stamps" in res.stderr and "--interval" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert not os.path.exists(str(tmp_path / "rec" / "energy.csv"))


def test_equal_timestamps_do_not_zero_the_gap_threshold():
    lines = stamped_100ms_log(4)
    # time each line by its 1 s stamp alone, as a meter with 1 s clock resolution would
    samples = []
    for line in lines:
        wall, _ = tegrastats.parse_record(line)
        samples += [s for s in tegrastats.replay([line], interval_s=1.0) if s.rail == "total"]
        samples[-1].t_mono = wall
    t0, t1 = samples[0].t_mono, samples[-1].t_mono
    w = energy.integrate(samples, t0, t1)
    assert w.energy_j == pytest.approx(4.761 * 3.0) and w.covered_frac == pytest.approx(1.0)


def test_non_utf8_lines_are_skipped_and_counted(tmp_path):
    lines = [l.encode() for l in stamped_100ms_log(3)]
    lines[7] = b"\xff\xfe\x00 garbled by a serial console"
    lines[12] = lines[12][:30] + b"\xe9" + lines[12][31:]
    out = str(tmp_path / "rec")
    res = replay(["--out", out], b"\n".join(lines) + b"\n", tmp_path)
    assert res.exit_code == 0, res.stderr
    assert "line 8:" in res.stderr and "line 13:" in res.stderr
    assert "2 undecodable (non-UTF-8) line(s) skipped" in res.stderr
    assert float(total_row(out)["energy_j"]) == pytest.approx(4.761 * 2.9, rel=0.005)


def test_a_clock_stepped_back_mid_log_does_not_stop_time():
    body = stamped_100ms_log(1)[0][len(STAMP):]
    lines = stamped_100ms_log(3) + ["04-27-2026 10:00:%02d %s" % (k // 10, body) for k in range(30)]
    rep = tegrastats.replay_log(lines)
    times = [s.t_mono for s in rep.samples() if s.rail == "total"]
    assert rep.interval_s == pytest.approx(0.1)
    assert times[30] - times[29] == pytest.approx(0.1, abs=1e-3)
    assert times[-1] == pytest.approx(5.9, abs=1e-3)
