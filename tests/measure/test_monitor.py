"""ebedge.Monitor against simulated meters whose power has an exact integral."""
import csv
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT

from ebedge import Monitor
from ebedge.errors import EbedgeError
from meters.sim.lines_sim import LinesSimulator
from meters.sim.profile import PowerProfile

INTERVAL = 0.05  # 20 periods = 1 s; a stall under 3 periods (0.15 s) on a loaded machine is no gap


@pytest.fixture
def tx2(fake_tx2):
    # continuous ramps: the trapezoid rule's only error is at the kinks, far below 1%
    return fake_tx2(PowerProfile([(4.0, 11.0, 0.5), (11.0, 6.0, 0.7), (6.0, 15.0, 0.4), (15.0, 4.0, 0.6)]))


def _monitor(tree, **kwargs):
    return Monitor(["ina3221"], {"ina3221": {"root": tree.root}}, interval_s=INTERVAL, **kwargs)


@pytest.mark.slow
def test_nested_and_overlapping_windows_match_the_exact_integral(tx2):
    with _monitor(tx2) as mon:
        mon.begin_window("outer")
        time.sleep(0.4)
        mon.begin_window("overlap")
        with mon.window("inner") as w:
            time.sleep(1.2)
        time.sleep(0.3)
        outer = mon.end_window("outer")  # ends before "overlap": windows need not nest
        time.sleep(0.6)
        overlap = mon.end_window("overlap")
    for m in (outer, overlap, w.result):
        truth = tx2.truth(m.t_start, m.t_end)
        assert m.energy_j == pytest.approx(truth, rel=0.01), m.name
        assert m.power_w == pytest.approx(truth / m.seconds, rel=0.01)
        assert (m.meter, m.rail, m.method) == ("ina3221", "total", "measured")
        assert m.covered_frac > 0.999 and m.flags == []
        assert m.per_rail["VDD_IN"] == pytest.approx(m.energy_j)
        assert set(m.per_rail) > {"VDD_IN", "VDD_SYS_GPU", "VDD_SYS_CPU"}
    assert outer.t_start < w.result.t_start < w.result.t_end < outer.t_end < overlap.t_end
    assert [m.name for m in mon.measurements] == ["inner", "outer", "overlap"]


def test_decorator_short_window_warning_and_idle_subtraction(tx2):
    with _monitor(tx2) as mon:
        idle = mon.measure_idle(0.5)
        calls = []

        @mon.measure("step")
        def step(x):
            calls.append(x)
            time.sleep(0.05)
            return x * 2

        assert step(21) == 42 and calls == [21]
        short = mon.measurements[-1]
        long_window = mon.window("long")
        with long_window:
            time.sleep(1.2)
    assert short.name == "step" and short.seconds < 20 * INTERVAL
    assert any("under 20 periods of ina3221" in f for f in short.flags)
    m = long_window.result
    assert not any("under 20 periods" in f for f in m.flags)
    idle_w = mon.idle_power_w[("ina3221", "total")]
    assert idle_w == pytest.approx(tx2.truth(idle.t_start, idle.t_end) / idle.seconds, rel=0.01)
    assert m.idle_power_w == idle_w
    assert m.net_energy_j == pytest.approx(m.energy_j - idle_w * m.covered_frac * m.seconds,
                                           rel=1e-9)
    # idle power is subtracted (its sign against the window's depends on where in the periodic
    # profile the monitor's start put the idle window)
    assert m.net_energy_j < m.energy_j


def test_window_misuse_is_one_line_errors(tx2):
    with _monitor(tx2) as mon:
        mon.begin_window("a")
        with pytest.raises(EbedgeError, match="already open"):
            mon.begin_window("a")
        with pytest.raises(EbedgeError, match="not open"):
            mon.end_window("b")
    ended = mon.measurements[-1]
    assert ended.name == "a" and any("still open at close" in f for f in ended.flags)
    with pytest.raises(EbedgeError, match="closed"):
        mon.begin_window("c")
    with pytest.raises(EbedgeError, match="at least one meter"):
        Monitor(meters=["none"])


def test_serial_meter_on_a_pty_measures_a_window():
    profile = PowerProfile.parse("2-5:0.6, 5-7:0.6, 7-2:0.6")
    with LinesSimulator(profile, interval_s=0.05) as sim:
        with Monitor(["lines"], {"lines": {"port": sim.path}}, interval_s=0.05) as mon:
            with mon.window("work") as w:
                time.sleep(2.0)
    m = w.result
    assert m.meter == "lines" and m.method == "measured" and m.flags == []
    assert m.energy_j == pytest.approx(sim.energy_between(m.t_start, m.t_end), rel=0.02)


@pytest.mark.host  # the report reads it (pandas)
def test_log_dir_is_a_run_directory_the_report_reads(tx2, tmp_path):
    pytest.importorskip("pandas")
    from ebedge.report.build import build_report
    log = str(tmp_path / "mon")
    with _monitor(tx2, log_dir=log) as mon:
        mon.measure_idle(0.3)
        for _ in range(2):
            with mon.window("epoch"):
                time.sleep(0.3)
    assert {"samples.csv", "windows.csv", "energy.csv", "config.json", "summary.json"} <= \
        set(os.listdir(log))
    with open(os.path.join(log, "energy.csv"), newline="") as f:
        rows = {(r["phase"], r["rail"]): r for r in csv.DictReader(f)}
    epochs = [m for m in mon.measurements if m.name == "epoch"]
    # both "epoch" windows are summed into one row, as a run sums a phase's epochs
    assert float(rows[("epoch", "total")]["energy_j"]) == pytest.approx(
        sum(m.energy_j for m in epochs), rel=0.01)
    assert float(rows[("epoch", "total")]["net_energy_j"]) < float(rows[("epoch", "total")]["energy_j"])
    result = build_report([log], str(tmp_path / "report"))
    assert [r.status for r in result.runs] == ["complete"]
    run = result.runs_df.iloc[0]
    assert run["energy_label"] == "measured (ina3221)"
    phases = result.phases_df
    epoch = phases[(phases.phase == "epoch") & (phases.rail == "total")].iloc[0]
    assert epoch["energy_kj"] == pytest.approx(float(rows[("epoch", "total")]["energy_j"]) / 1000)


def test_monitor_needs_no_torch():
    code = ("import sys; from ebedge import Monitor; "
            "m = Monitor(['model'], interval_s=0.05); w = m.window('x')\n"
            "with w: pass\n"
            "m.close(); assert w.result.method == 'modelled', w.result\n"
            "heavy = ('torch', 'ebedge.integrations', 'lightning', 'pytorch_lightning', "
            "'transformers', 'tensorboard', 'mlflow', 'wandb')\n"
            "loaded = [n for n in sys.modules if n.split('.')[0] in heavy or n.startswith(heavy)]\n"
            "assert not loaded, loaded")
    subprocess.check_call([sys.executable, "-c", code])


class FakeCuda(object):
    """torch.cuda as the sync sees it: two initialised devices whose queues take `busy_s` to drain."""

    def __init__(self, available=True, initialized=True, busy_s=0.3):
        self.available, self.initialized, self.busy_s = available, initialized, busy_s
        self.synced = []  # (device index, time the sync returned)

    def is_available(self):
        return self.available

    def is_initialized(self):
        return self.initialized

    def device_count(self):
        return 2

    def synchronize(self, index):
        time.sleep(self.busy_s if index == 0 else 0.0)
        self.synced.append((index, time.monotonic()))


class FakeTorch(object):
    def __init__(self, cuda):
        self.cuda = cuda


def test_windows_wait_for_queued_cuda_work_at_both_edges(monkeypatch):
    """Queued GPU work (the 0.3 s drain) is charged to the window that issued it: the start stamp
    follows the drain of earlier work, the end stamp follows the drain of the window's own."""
    cuda = FakeCuda()
    monkeypatch.setitem(sys.modules, "torch", FakeTorch(cuda))
    with Monitor(["model"], interval_s=0.05) as mon:
        before = time.monotonic()
        mon.begin_window("step")
        started = cuda.synced[-1][1]
        m = mon.end_window("step")
    assert [i for i, _ in cuda.synced] == [0, 1, 0, 1]  # every device, at both edges
    assert before + 0.3 <= started <= m.t_start  # earlier queued work: before the window
    assert m.seconds >= 0.3 and cuda.synced[-1][1] <= m.t_end  # its own: inside it


class BrokenCuda(FakeCuda):
    def synchronize(self, index):
        raise RuntimeError("CUDA error: device-side assert triggered")


def test_close_after_a_device_failure_still_writes_the_files(monkeypatch, tmp_path):
    """A window left open by a crash that broke the device is ended at close() without a sync
    (which would raise again), so what was measured is still written."""
    monkeypatch.setitem(sys.modules, "torch", FakeTorch(FakeCuda(busy_s=0.0)))
    mon = Monitor(["model"], interval_s=0.05, log_dir=str(tmp_path / "log"))
    mon.begin_window("epoch")
    monkeypatch.setitem(sys.modules, "torch", FakeTorch(BrokenCuda()))
    mon.close()
    assert mon.measurements[0].flags[0] == "window still open at close(), ended there"
    with open(str(tmp_path / "log" / "energy.csv")) as f:
        assert [r["phase"] for r in csv.DictReader(f)] == ["epoch"]
    # the summary carries each flag as data too (kind, phase), as a run's summary does
    summary = json.load(open(str(tmp_path / "log" / "summary.json")))
    records = {r["text"]: r for r in summary["flag_records"]}
    assert [r["text"] for r in summary["flag_records"]] == summary["flags"]
    still_open = records["window still open at close(), ended there"]
    assert still_open["kind"] == "note" and still_open["phase"] == "epoch"
    assert any(r["kind"] == "short_window" and r["meter"] == "model" for r in records.values())


@pytest.mark.parametrize("cuda", [FakeCuda(available=False), FakeCuda(initialized=False)])
def test_no_sync_without_cuda_in_use_or_when_switched_off(monkeypatch, cuda):
    monkeypatch.setitem(sys.modules, "torch", FakeTorch(cuda))
    with Monitor(["model"], interval_s=0.05) as mon:
        with mon.window("a"):
            pass
    on = FakeCuda()
    monkeypatch.setitem(sys.modules, "torch", FakeTorch(on))
    with Monitor(["model"], interval_s=0.05, sync_cuda=False) as mon:
        with mon.window("b"):
            pass
    assert cuda.synced == [] and on.synced == []


@pytest.mark.slow  # runs the example's whole training loop
def test_the_example_measures_a_plain_pytorch_loop(tmp_path):
    example = os.path.join(ROOT, "examples", "measure_pytorch_loop.py")
    out = subprocess.check_output([sys.executable, example, "--meter", "model", "--epochs", "1",
                                   "--idle", "0.5", "--log-dir", str(tmp_path / "loop")],
                                  universal_newlines=True)
    assert "epoch 0: acc" in out and "modelled by model" in out
    with open(str(tmp_path / "loop" / "windows.csv")) as f:
        names = [row["phase"] for row in csv.DictReader(f)]
    assert names == ["idle", "epoch-0", "eval"]


@pytest.mark.slow
def test_ending_a_window_does_not_wait_for_the_meter():
    with Monitor(["model"], interval_s=3.0) as mon:  # the next sample is ~3 s away
        @mon.measure()
        def step():
            return 1

        began = time.monotonic()
        assert sum(step() for _ in range(5)) == 5
        assert time.monotonic() - began < 1.5
        first = mon.measurements[0]
        assert first.name.endswith("step") and first.method == "modelled"  # computed now
        assert first.energy_j == pytest.approx(first.power_w * first.seconds, rel=1e-6)
        assert any("under 20 periods" in f for f in first.flags)
