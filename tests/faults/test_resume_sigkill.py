"""SIGKILL mid-epoch, then --resume, gives the numbers of an uninterrupted run;
the aborted work is a `lost` row (energy reported apart), never counted twice."""
import os

import pytest

from support.resume_helpers import (TINY, assert_energy_matches, energy_row, fake_tree,
                                         kill_mid_epoch, meter_args, rows, run, summary, truth)

COUNTED = ("search", "prune", "retrain")


def _work(out):
    """(phase, epoch) of every normal phase row, in order."""
    return [(r["phase"], r["epoch"]) for r in rows(os.path.join(out, "phases.csv"))
            if r["phase"] != "lost"]


@pytest.mark.slow  # end to end: a run, a kill, a resume and an uninterrupted twin
def test_sigkill_mid_epoch_resume_equals_the_uninterrupted_run(tmp_path):
    tree = fake_tree(tmp_path / "sysfs")
    try:
        args = TINY + ["--method", "eb", "--epochs", "3"] + meter_args(tree)
        whole, broken = str(tmp_path / "whole"), str(tmp_path / "broken")
        done = run(args + ["--out", whole])
        assert done.returncode == 0, done.stdout.decode()
        killed_at = kill_mid_epoch(args + ["--out", broken], broken)
        first_start = float(rows(os.path.join(broken, "phases.csv"))[0]["t_start_mono"])
        resumed = run(["--resume", broken])
        assert resumed.returncode == 0, resumed.stdout.decode()
    finally:
        tree.close()
    a, b = summary(whole), summary(broken)
    assert b["status"] == "complete"
    # exactly the same training: epochs, FLOPs, ticket and accuracy
    for key in ("eb_epoch", "train_flops_search", "train_flops_prune", "train_flops_retrain",
                "train_flops_total", "test_acc", "params_pruned"):
        assert b[key] == a[key], key
    ep = lambda out: [(r["phase"], r["epoch"], r["train_flops"], r["test_acc"])
                      for r in rows(os.path.join(out, "epochs.csv")) if r["phase"] != "lost"]
    assert ep(broken) == ep(whole)
    # no epoch appears twice as normal work; the aborted part is `lost`
    assert _work(broken) == _work(whole)
    phases = rows(os.path.join(broken, "phases.csv"))
    lost = [r for r in phases if r["phase"] == "lost"]
    assert lost and any("lost work" in f for f in b["flags"])
    assert lost[-1]["t_end_mono"] and float(lost[-1]["t_end_mono"]) <= killed_at
    assert float(lost[-1]["t_end_mono"]) > killed_at - 2.5  # up to the last sign of life
    # train_total covers exactly the counted phases; lost energy is real and reported apart
    counted = [r for r in phases if r["phase"] in COUNTED]
    train = energy_row(broken, "train_total")
    seconds = sum(float(r["t_end_mono"]) - float(r["t_start_mono"]) for r in counted)
    assert float(train["duration_s"]) == pytest.approx(seconds, abs=1e-5)
    assert sum(v for k, v in b["phase_seconds"].items() if k in COUNTED) == \
        pytest.approx(seconds, abs=1e-5)
    assert_energy_matches(train, truth(tree, counted))
    lost_row = energy_row(broken, "lost")
    assert_energy_matches(lost_row, truth(tree, lost), extra_pct=5.0)
    assert b["energy"]["kj"]["lost"] == pytest.approx(float(lost_row["energy_j"]) / 1000)
    # runtime counts the killed process too
    assert b["runtime_s"] >= sum(b["phase_seconds"].values())
    assert b["runtime_s"] >= (float(lost[-1]["t_end_mono"]) - first_start) \
        + b["phase_seconds"].get("idle_after", 0)
