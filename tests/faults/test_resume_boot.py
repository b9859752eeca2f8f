"""A power loss between a run and its resume. Monotonic time restarts with every
boot, so nothing is integrated, interpolated or subtracted across two boots, and idle power
comes from each boot's own idle window."""
import os

import pytest

from ebedge.measure import accounting
from ebedge.run.rundir import RunDir
from meters.base import Sample
from meters.sim.profile import PowerProfile
from support.resume_helpers import (TINY, assert_energy_matches, energy_row, fake_tree,
                                         kill_mid_epoch, meter_args, rows, run, summary)

RATE_HZ = 100


def _record(rundir, profile, t0, marks):
    """Write the phase marks and 100 Hz samples of `profile` (sim time 0 = monotonic t0)."""
    end = max(b for _, _, _, b in marks)
    n = int(round((end - t0) * RATE_HZ)) + 1
    rundir.log_samples([Sample(t0 + k / float(RATE_HZ), 1.8e9 + k / float(RATE_HZ), "ina3221",
                               "total", profile.power(k / float(RATE_HZ))) for k in range(n)])
    for name, epoch, a, b in marks:
        rundir.log_phase(name, epoch, (a, 1.8e9 + a), (b, 1.8e9 + b))


def test_power_loss_idle_and_net_energy_equal_the_truth(tmp_path, monkeypatch):
    """Boot B's monotonic clock restarts lower, over the very times boot A used."""
    out = str(tmp_path / "run")
    boot = tmp_path / "boot_id"
    monkeypatch.setenv("EBEDGE_BOOT_ID_PATH", str(boot))
    # boot A: idle 3 W for 5 s, then ~15 s of training at 10 W (monotonic 100..120); power
    # changes by 10 ms ramps between phases, so 100 Hz samples see the waveform exactly
    a = PowerProfile([(3.0, 3.0, 5.0), (3.0, 10.0, 0.01), (10.0, 10.0, 20.0)])
    # boot B: idle 5 W for 5 s, training at 12-16 W for 15 s, idle 5 W (monotonic 90..115)
    b = PowerProfile([(5.0, 5.0, 5.0), (5.0, 12.0, 0.01), (12.0, 16.0, 15.0),
                      (16.0, 5.0, 0.01), (5.0, 5.0, 10.0)])
    boot.write_text("aaaaaaaa-boot-a\n")
    first = RunDir(out, "run")
    _record(first, a, 100.0, [("idle_before", None, 100.0, 105.0), ("search", 0, 105.01, 120.0)])
    first.close()
    boot.write_text("bbbbbbbb-boot-b\n")
    second = RunDir(out, "run")
    _record(second, b, 90.0, [("idle_before", None, 90.0, 95.0), ("search", 1, 95.01, 110.01),
                              ("idle_after", None, 110.02, 115.02)])
    second.close()
    phase_rows = rows(os.path.join(out, "phases.csv"))
    assert [r["boot_id"] for r in phase_rows] == ["aaaaaaaa-boot-a"] * 2 + ["bbbbbbbb-boot-b"] * 3
    assert {r["boot_id"] for r in rows(os.path.join(out, "samples.csv"))} == \
        {"aaaaaaaa-boot-a", "bbbbbbbb-boot-b"}

    energy = accounting.energy_rows(
        "run", accounting.read_phases(os.path.join(out, "phases.csv")),
        accounting.read_samples(os.path.join(out, "samples.csv"), by_boot=True))
    by = {r["phase"]: r for r in energy}
    gross = a.energy(5.01, 20) + b.energy(5.01, 20.01)
    net = (a.energy(5.01, 20) - 3.0 * 14.99) + (b.energy(5.01, 20.01) - 5.0 * 15)
    assert by["search"]["energy_j"] == pytest.approx(gross, rel=1e-9)
    assert by["search"]["net_energy_j"] == pytest.approx(net, rel=1e-9)
    assert by["train_total"]["net_energy_j"] == pytest.approx(net, rel=1e-9)
    assert by["search"]["covered_frac"] == pytest.approx(1.0)
    assert by["idle_before"]["energy_j"] == pytest.approx(3.0 * 5 + 5.0 * 5, rel=1e-9)
    assert by["idle_after"]["net_energy_j"] == pytest.approx(0.0, abs=1e-9)
    # run_total: each boot from its first to its last mark, never the span across both
    assert by["run_total"]["duration_s"] == pytest.approx(20.0 + 25.02)
    assert by["run_total"]["energy_j"] == pytest.approx(a.energy(0, 20) + b.energy(0, 25.02))


def test_a_boot_without_idle_window_leaves_net_empty(tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    boot = tmp_path / "boot_id"
    monkeypatch.setenv("EBEDGE_BOOT_ID_PATH", str(boot))
    flat = PowerProfile([(7.0, 7.0, 100.0)])
    boot.write_text("boot-a\n")
    first = RunDir(out, "run")
    _record(first, flat, 10.0, [("idle_before", None, 10.0, 12.0), ("search", 0, 12.0, 20.0)])
    first.close()
    boot.write_text("boot-b\n")
    second = RunDir(out, "run")
    _record(second, flat, 5.0, [("search", 1, 5.0, 9.0)])
    second.close()
    energy = accounting.energy_rows(
        "run", accounting.read_phases(os.path.join(out, "phases.csv")),
        accounting.read_samples(os.path.join(out, "samples.csv"), by_boot=True))
    search = [r for r in energy if r["phase"] == "search"][0]
    assert search["energy_j"] == pytest.approx(7.0 * 12)
    assert search["net_energy_j"] is None  # boot B has no idle power of its own


@pytest.mark.slow  # end to end: a run and its resume on another boot
def test_resume_after_a_reboot_measures_the_new_boots_idle(tmp_path):
    """A real run killed, then resumed under another boot id: each boot's phases are netted
    with that boot's own idle window, against the simulated meter's exact integral."""
    boot = tmp_path / "boot_id"
    boot.write_text("11111111-before-the-power-loss\n")
    env = dict(os.environ, EBEDGE_BOOT_ID_PATH=str(boot))
    tree = fake_tree(tmp_path / "sysfs")
    out = str(tmp_path / "run")
    try:
        args = TINY + ["--method", "dense", "--epochs", "3", "--idle-seconds", "1",
                       "--out", out] + meter_args(tree)
        kill_mid_epoch(args, out, env=env)
        boot.write_text("22222222-after-the-power-loss\n")
        done = run(["--resume", out], env=env)
        assert done.returncode == 0, done.stdout.decode()
    finally:
        tree.close()
    assert summary(out)["status"] == "complete"
    phases = rows(os.path.join(out, "phases.csv"))
    boots = [r["boot_id"] for r in phases]
    assert set(boots) == {"11111111-before-the-power-loss", "22222222-after-the-power-loss"}
    assert boots == sorted(boots)  # one segment per boot, in order
    idle = {bt: [r for r in phases if r["boot_id"] == bt and r["phase"].startswith("idle")]
            for bt in set(boots)}
    assert all(idle.values())  # the resume measured the new boot's idle power first
    true_idle = {bt: sum(tree.truth(float(r["t_start_mono"]), float(r["t_end_mono"]))
                         for r in rs)
                 / sum(float(r["t_end_mono"]) - float(r["t_start_mono"]) for r in rs)
                 for bt, rs in idle.items()}
    train = [r for r in phases if r["phase"] in ("search", "retrain")]
    true_gross = sum(tree.truth(float(r["t_start_mono"]), float(r["t_end_mono"])) for r in train)
    true_net = sum(tree.truth(float(r["t_start_mono"]), float(r["t_end_mono"]))
                   - true_idle[r["boot_id"]]
                   * (float(r["t_end_mono"]) - float(r["t_start_mono"])) for r in train)
    row = energy_row(out, "train_total")
    # net is a small difference of large numbers: the meter's error is a share of the gross
    bound = assert_energy_matches(row, true_gross)
    assert float(row["net_energy_j"]) == pytest.approx(true_net, abs=2 * bound)
