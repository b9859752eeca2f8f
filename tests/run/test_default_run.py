"""`ebedge run`, the built-in default, exactly as a new user runs it (shorter idle windows),
and `ebedge report` on its output."""
import csv
import json
import os

import pytest

from click.testing import CliRunner

from ebedge.cli import main
from ebedge.run import quick
from ebedge.run.suite import load_suite
from support.quick_suite import quick_variant


def test_ebedge_run_is_the_shipped_quick_suite():
    suite = load_suite(quick.QUICK_SUITE)
    assert suite.name == "quick"
    assert sorted(c.settings.method for c in suite.cells()) == ["dense", "eb"]


@pytest.mark.slow
@pytest.mark.host  # ends with `ebedge report` (pandas)
@pytest.mark.timeout(1200)
def test_default_run_draws_a_ticket_and_compares_with_dense(tmp_path, monkeypatch):
    monkeypatch.setattr(quick, "QUICK_SUITE", quick_variant(tmp_path / "quick.toml",
                                                             idle_seconds="0.5"))
    quick_settings = load_suite(quick.QUICK_SUITE).cells()[0].settings
    out = str(tmp_path / "default")
    result = CliRunner().invoke(main, ["run", "--out", out, "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    eb = json.load(open(os.path.join(out, "eb", "summary.json")))
    dense = json.load(open(os.path.join(out, "dense", "summary.json")))
    assert eb["status"] == dense["status"] == "complete"
    # the paper's effect: the ticket drawn in the first 40% of the schedule, accuracy kept within a
    # point (time and energy are docs/results.md's measured figures, not a timed test)
    assert eb["eb_epoch"] is not None and eb["eb_epoch"] <= 0.4 * quick_settings["epochs"]
    assert abs(eb["test_acc"] - dense["test_acc"]) <= 0.01 + 1e-9  # 1 point, as floats subtract
    assert eb["prune_ratio"] == quick_settings["prune_ratio"][0] in (0.3, 0.5, 0.7)
    assert quick_settings.epsilon == 0.1
    assert eb["params_pruned"] < eb["params_dense"] == dense["params_dense"]
    assert eb["forward_flops_pruned"] < eb["forward_flops_dense"]
    assert eb["train_flops_total"] < dense["train_flops_total"]
    assert eb["test_acc"] > 0.5 and dense["test_acc"] > 0.5  # ten classes: chance is 0.1
    lines = result.output.splitlines()
    eb_row = next(line for line in lines if line.startswith("eb "))
    dense_row = next(line for line in lines if line.startswith("dense "))
    assert "%.2f%%" % (100 * eb["test_acc"]) in eb_row
    assert "%.2f%%" % (100 * dense["test_acc"]) in dense_row
    # energy is measured by the best meter found, and says how
    assert eb["energy"]["method"] in ("measured", "modelled")
    assert "(%s, %s)" % (eb["energy"]["method"], eb["energy"]["meter"]) in eb_row
    assert "report: " + os.path.abspath(os.path.join(out, "report", "index.html")) in lines
    # the answer, last: EB Train's energy and time as fractions of dense training's, accuracy in points
    from ebedge.report.answer import train_seconds
    assert lines[-1].startswith("vgg16/synthetic: EB Train at p=%g used %.2f of dense training's energy and %.2f of "
                                "its time, at %+.1f points of accuracy (energy %s by %s; 1 vs 1 runs)" % (
                                    quick_settings["prune_ratio"][0],
                                    eb["energy"]["kj"]["train_total"] / dense["energy"]["kj"]["train_total"],
                                    train_seconds(eb) / train_seconds(dense),
                                    100 * (eb["test_acc"] - dense["test_acc"]), eb["energy"]["method"],
                                    eb["energy"]["meter"]))
    assert os.path.getsize(os.path.join(out, "report", "index.html")) > 0

    # the report of this output: every file and plot, and a table made of these summaries
    report_dir = str(tmp_path / "report")
    done = CliRunner().invoke(main, ["report", out, "--out", report_dir], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    for name in ("runs.csv", "table.csv", "phases.csv"):
        assert os.path.getsize(os.path.join(report_dir, name)) > 0
    pictures = os.listdir(os.path.join(report_dir, "plots"))
    for stem in ("mask_distance", "methods_", "power_"):
        assert any(p.startswith(stem) and p.endswith(".png") for p in pictures), stem
        assert any(p.startswith(stem) and p.endswith(".svg") for p in pictures), stem
    table = {row["method"]: row for row in csv.DictReader(open(os.path.join(report_dir,
                                                                            "table.csv")))}
    for summary, ratio in ((eb, "%g" % quick_settings["prune_ratio"][0]), (dense, "-")):
        row = table[summary["method"]]
        assert float(row["acc_pct_mean[p=%s]" % ratio]) == pytest.approx(100 * summary["test_acc"])
        assert float(row["energy_kj_mean[p=%s]" % ratio]) == pytest.approx(
            summary["energy"]["kj"]["train_total"])
        assert float(row["pflops_mean[p=%s]" % ratio]) == pytest.approx(
            summary["train_flops_total"] / 1e15)


@pytest.mark.slow
@pytest.mark.host  # ends with `ebedge report` (pandas)
def test_ebedge_run_ends_with_the_answer(tmp_path, monkeypatch, one_thread):
    """The last line of `ebedge run` is the comparison, from the summaries it just wrote (tiny runs)."""
    monkeypatch.setattr(quick, "QUICK_SUITE", quick_variant(
        tmp_path / "quick.toml", width="0.0625", limit_train="128", limit_test="32", epochs="3",
        batch_size="32", idle_seconds="0.0", meters='["model"]', device='"cpu"'))
    out = str(tmp_path / "default")
    result = CliRunner().invoke(main, ["run", "--out", out, "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    eb = json.load(open(os.path.join(out, "eb", "summary.json")))
    dense = json.load(open(os.path.join(out, "dense", "summary.json")))
    from ebedge.report.answer import train_seconds
    assert result.output.splitlines()[-1] == (
        "vgg16/synthetic: EB Train at p=0.7 used %.2f of dense training's energy and %.2f of its time, at %+.1f "
        "points of accuracy (energy modelled by model; 1 vs 1 runs)." % (
            eb["energy"]["kj"]["train_total"] / dense["energy"]["kj"]["train_total"],
            train_seconds(eb) / train_seconds(dense), 100 * (eb["test_acc"] - dense["test_acc"])))
