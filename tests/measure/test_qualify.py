"""`ebedge meters qualify`: the protocol, the fit, the verdict, and the whole thing on a simulated
board whose rail reads the wall through a known gain and offset."""
import json
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from ebedge.cli.meters import meters_group
from ebedge.errors import EbedgeError
from ebedge.measure import energy, loads, qualify
from meters.base import Sample, TOTAL

# tests use short windows; the default protocol is 5 x 60 s per level (5 x 10 s with --quick)
SHORT = ["--windows", "3", "--window-s", "0.6", "--settle-s", "0.3"]


def _stream(meter, watts_at, t0, t1, hz):
    n = int(round((t1 - t0) * hz))
    return [Sample(t0 + i / hz, 0.0, meter, TOTAL, watts_at(t0 + i / hz)) for i in range(n + 1)]


def _levels_at(windows, watts):
    """P(t) of a wall that holds watts[level] through each window (idle between)."""
    def p(t):
        for w in windows:
            if w.t_start - 0.5 <= t <= w.t_end + 0.5:
                return watts[w.level]
        return watts["idle"]
    return p


def _windows(levels, n=3, length=2.0, gap=2.0):
    out, t = [], 0.0
    for level in levels:
        t += gap
        for k in range(n):
            out.append(qualify.Window(level, k, t, t + length))
            t += length
    return out


WATTS = {"idle": 3.0, "cpu_1": 4.5, "cpu_all": 9.0}


def test_fit_recovers_an_exact_linear_map_with_a_tight_interval():
    xs = [1.0, 2.0, 4.0, 7.0]
    fit = qualify.Fit(xs, [1.1 * x + 0.7 for x in xs])
    assert fit.gain == pytest.approx(1.1, rel=1e-12)
    assert fit.offset_w == pytest.approx(0.7, rel=1e-12)
    assert fit.gain_ci95 < 1e-9 and fit.residual_w < 1e-9


def test_fit_interval_widens_with_scatter_and_covers_the_truth():
    xs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    noise = [0.05, -0.04, 0.03, -0.05, 0.04, -0.03]
    fit = qualify.Fit(xs, [2.0 * x + 1.0 + e for x, e in zip(xs, noise)])
    assert fit.residual_w > 0.01
    assert abs(fit.gain - 2.0) <= fit.gain_ci95
    assert abs(fit.offset_w - 1.0) <= fit.offset_ci95


def test_fit_refuses_a_single_load_level():
    with pytest.raises(EbedgeError, match="same power"):
        qualify.Fit([2.0, 2.0, 2.0], [3.0, 3.1, 2.9])


def test_analyse_integrates_windows_like_a_runs_phases_and_passes_a_true_meter():
    windows = _windows(["idle", "cpu_1", "cpu_all"])
    wall = _levels_at(windows, WATTS)
    end = windows[-1].t_end + 1
    samples = _stream("ref", wall, 0, end, 10) + _stream("onboard", wall, 0.03, end, 100)
    result = qualify.analyse(samples, windows, "onboard", "ref")
    assert result["verdict"] == "pass"
    assert result["max_error_pct"] < 0.01
    rows = energy.by_phase(samples, [(qualify.window_name(w), w.index, w.t_start, w.t_end)
                                     for w in windows])
    same = {(r["meter"], r["phase"]): r["energy_j"] for r in rows}
    for e, w in zip(result["windows"], windows):
        assert e["meter_j"] == same[("onboard", qualify.window_name(w))]
        assert e["reference_j"] == same[("ref", qualify.window_name(w))]
    assert result["rates"]["onboard"]["sample_hz"] == pytest.approx(100, rel=0.01)
    assert result["rates"]["ref"]["sample_hz"] == pytest.approx(10, rel=0.01)


def test_analyse_calls_a_gain_error_pass_after_calibration_and_a_curve_a_fail():
    windows = _windows(["idle", "cpu_1", "cpu_all"])
    wall = _levels_at(windows, WATTS)
    end = windows[-1].t_end + 1
    ref = _stream("ref", wall, 0, end, 10)
    linear = ref + _stream("onboard", lambda t: (wall(t) - 1.2) / 1.07, 0, end, 50)
    result = qualify.analyse(linear, windows, "onboard", "ref")
    assert result["verdict"] == "pass after calibration"
    assert result["fit"]["gain"] == pytest.approx(1.07, rel=1e-6)
    assert result["fit"]["offset_w"] == pytest.approx(1.2, rel=1e-6)
    assert result["max_calibrated_error_pct"] < 1e-6
    curved = ref + _stream("onboard", lambda t: wall(t) ** 2 / 5.0, 0, end, 50)
    assert qualify.analyse(curved, windows, "onboard", "ref")["verdict"] == "fail"


def test_a_window_one_meter_never_saw_fails_with_a_warning():
    windows = _windows(["idle", "cpu_1", "cpu_all"])
    wall = _levels_at(windows, WATTS)
    end = windows[-1].t_end + 1
    dead = windows[4]  # the meter is silent from before this window to after it
    onboard = [s for s in _stream("onboard", wall, 0, end, 20)
               if not dead.t_start - 1 < s.t_mono < dead.t_end + 1]
    result = qualify.analyse(_stream("ref", wall, 0, end, 10) + onboard, windows, "onboard", "ref")
    assert result["verdict"] == "fail"
    assert result["windows"][4]["ratio"] is None
    assert any("without a usable reading" in w for w in result["warnings"])


@pytest.mark.slow
def test_protocol_holds_each_load_and_steps_mid_window():
    protocol = qualify.Protocol(qualify.default_levels(2, False), windows=3, window_s=0.2,
                                settle_s=0.1)
    started = []

    class Fake(object):
        def __init__(self, spec):
            started.append((time.monotonic(), spec))

        def stop(self):
            started.append((time.monotonic(), "stop"))

    t0 = time.monotonic() + 0.05
    windows = qualify.run_protocol(protocol, t0, Fake)
    assert [w.level for w in windows] == ["idle"] * 3 + ["cpu_1"] * 3 + ["cpu_all"] * 3 + \
        ["step"] * 3
    assert all(w.t_end - w.t_start == pytest.approx(0.2) for w in windows)
    specs = [s for _, s in started if s != "stop"]
    # cpu_1, cpu_all, then the step: idle half (nothing runs), all cores half, three times
    assert specs == [loads.LoadSpec(1, False), loads.LoadSpec(2, False)] + \
        [loads.LoadSpec(2, False)] * 3
    step = windows[-3]
    start_all = [t for t, s in started if s == loads.LoadSpec(2, False)][1]
    assert step.t_start + 0.1 <= start_all < step.t_end  # the second half, not before
    assert windows[-1].t_end <= time.monotonic()


def test_a_real_busy_loop_runs_until_stopped():
    load = loads.Load(loads.LoadSpec(1, False))
    try:
        (proc,) = load._workers
        assert proc.is_alive()
    finally:
        load.stop()
    assert not proc.is_alive()


@pytest.mark.slow
def test_qualify_simulate_recovers_gain_and_offset_and_saves_a_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("EBEDGE_CONFIG_DIR", str(tmp_path / "cfg"))
    out = str(tmp_path / "q")
    res = CliRunner().invoke(meters_group, ["qualify", "--simulate", "--gain", "1.08",
                                            "--offset-w", "1.3", "--out", out, "--save"] + SHORT,
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    result = json.load(open(os.path.join(out, "qualification.json")))
    assert result["fit"]["gain"] == pytest.approx(1.08, rel=0.01)
    assert result["fit"]["offset_w"] == pytest.approx(1.3, rel=0.01)
    assert result["verdict"] == "pass after calibration"
    assert "verdict: pass after calibration" in res.output
    for name in ("samples.csv", "phases.csv", "energy.csv"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    (saved,) = os.listdir(str(tmp_path / "cfg" / "calibration"))
    profile = json.load(open(str(tmp_path / "cfg" / "calibration" / saved)))
    assert profile["board"]["hostname"] == "simulated-tx2"
    assert profile["gain"] == result["fit"]["gain"] and profile["rail"] == TOTAL


def test_calibrate_refuses_a_hostile_qualification_file_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("EBEDGE_CONFIG_DIR", str(tmp_path / "cfg"))
    bad = tmp_path / "qualification.json"
    bad.write_text('{"fit": {"gain": "lots"}, "meter": "x"}')
    res = CliRunner().invoke(meters_group, ["calibrate", str(bad)])
    assert res.exit_code == 1
    assert "not a qualification result" in res.output and "Traceback" not in res.output
    assert not os.path.exists(str(tmp_path / "cfg"))


def test_simulate_gives_the_rail_a_gain_and_offset_against_the_wall(tmp_path):
    root = str(tmp_path / "sys")
    res = CliRunner().invoke(meters_group, [
        "simulate", "ina3221-tx2", "--power-profile", "3:10", "--gain", "1.1", "--offset-w", "1",
        "--duration", "0.3", "--option", "root=%s" % root], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    dev = os.path.join(root, "sys/bus/i2c/drivers/ina3221x/0-0041/iio:device1")
    assert open(os.path.join(dev, "rail_name_0")).read().strip() == "VDD_IN"
    # the wall draws 3 W; VDD_IN reads (3 - 1) / 1.1 W
    # within the simulator's two units of noise
    assert abs(int(open(os.path.join(dev, "in_power0_input")).read()) - round(2000 / 1.1)) <= 2
    res = CliRunner().invoke(meters_group, ["simulate", "ina3221-tx2", "--power-profile", "3:10",
                                            "--offset-w", "5", "--duration", "0.1"])
    assert res.exit_code == 1 and "lowest power 3 W" in res.output
    assert "Traceback" not in res.output


def test_busy_loops_end_when_the_process_that_started_them_is_killed(tmp_path):
    """A qualification killed outright (SIGKILL, or its ssh session gone) must not leave a board
    spinning: its busy-loop processes notice they were orphaned and end."""
    pids = tmp_path / "pids"
    code = ("import os, sys, time\nfrom ebedge.measure import loads\n"
            "load = loads.Load(loads.LoadSpec(2, False))\n"
            "open(sys.argv[1], 'w').write(' '.join(str(p.pid) for p in load._workers))\n"
            "time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(pids)])
    try:
        deadline = time.monotonic() + 60
        while not (pids.exists() and pids.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = [int(p) for p in pids.read_text().split()]
        assert len(workers) == 2 and all(_alive(p) for p in workers)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers)


def _alive(pid):
    """True while `pid` runs (a zombie, reaped by nobody yet, counts as ended)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
