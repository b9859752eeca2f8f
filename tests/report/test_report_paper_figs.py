"""The report's paper figures: Figs. 1 and 5 from fixed-draw-epoch runs, Fig. 3 from a
whole-schedule search, and the warning for a run that drew no ticket."""
import json
import os

import numpy as np
import pytest

pytest.importorskip("matplotlib")  # the report is host side
pytestmark = pytest.mark.host

from ebedge import report
from ebedge.report import plots
from test_report import write_run


def _edit(run_dir, summary=None, settings=None):
    for name, changes in (("summary.json", summary), ("config.json", settings)):
        if not changes:
            continue
        path = os.path.join(run_dir, name)
        data = json.load(open(path))
        (data if name == "summary.json" else data["settings"]).update(changes)
        json.dump(data, open(path, "w"))


def _fig1_runs(root):
    for i, (draw, acc) in enumerate([(10, 0.90), (10, 0.92), (20, 0.93), (20, 0.95), (40, 0.91)]):
        d = write_run(root, "eb%d" % i, method="eb", acc=acc, pflops=5.0 + draw / 10.0, repeat=i % 2)
        _edit(d, summary={"draw_at": draw, "ticket_epoch": draw}, settings={"draw_at": draw, "epochs": 160})
    d = write_run(root, "ns", method="ns", acc=0.92, pflops=25.0, eb_epoch=None)
    _edit(d, settings={"epochs": 160})
    write_run(root, "dense", method="dense", ratio=None, acc=0.94, pflops=15.0, eb_epoch=None)


def test_fig1_and_fig5_points_are_draw_epochs_with_min_max_over_repeats(tmp_path):
    root = str(tmp_path / "runs")
    _fig1_runs(root)
    res = report.build_report([root], str(tmp_path / "rep"))
    names = {os.path.basename(f) for f in res.files}
    for stem in ("fig1_vgg16_cifar10", "fig5_vgg16_cifar10"):
        assert stem + ".png" in names and stem + ".svg" in names
    frame = plots.draw_frame(res.runs)
    eb = frame[frame["method"] == "eb"].groupby("draw")["test_acc"].agg(["min", "max"])
    assert eb.loc[10].tolist() == [0.90, 0.92] and eb.loc[20].tolist() == [0.93, 0.95]
    final = frame[frame["method"] == "ns"]
    assert final["draw"].tolist() == [160]  # "final": the ticket after the whole schedule
    assert frame[frame["method"] == "dense"]["test_acc"].tolist() == [0.94]


def test_runs_of_the_detector_alone_make_no_paper_figure(tmp_path):
    root = str(tmp_path / "runs")
    write_run(root, "eb-a", method="eb", eb_epoch=8)
    write_run(root, "eb-b", method="eb", eb_epoch=12, repeat=1)
    res = report.build_report([root], str(tmp_path / "rep"))
    names = {os.path.basename(f) for f in res.files}
    assert not any(n.startswith(("fig1_", "fig5_", "fig3_")) for n in names)
    assert "eb_epoch_sweep_vgg16_cifar10.png" in names  # drawn, under a name that says what it is


def test_fig3_has_a_panel_per_ratio_and_no_ticket_is_warned(tmp_path):
    root = str(tmp_path / "runs")
    d = write_run(root, "study", method="eb", eb_epoch=6, masks=True)
    _edit(d, settings={"keep_searching": True})
    lone = write_run(root, "none", method="eb", eb_epoch=None)
    _edit(lone, summary={"no_ticket": True})
    res = report.build_report([root], str(tmp_path / "rep"))
    fig3 = [f for f in res.files if os.path.basename(f).startswith("fig3_") and f.endswith(".png")]
    assert len(fig3) == 1 and "study" in fig3[0]
    assert any("none drew no Early-Bird ticket" in w for w in res.warnings)
    assert not any("study drew no" in w for w in res.warnings)
    assert np.load(os.path.join(d, "masks.npz"))["ratio_0.5_masks"].shape[0] == 14


def test_tables_1_and_4_rows_are_draw_epochs_and_final_columns_are_schedules(tmp_path):
    from ebedge.report.runs import load_run
    from ebedge.report.tables import draw_frame, draw_table
    root = str(tmp_path / "runs")
    cells = {"0:0.01,100:0.001": {10: 0.90, 20: 0.91, 40: 0.92, None: 0.89},
             "0:0.1,80:0.01,120:0.001": {10: 0.93, 20: 0.94, 40: 0.95, None: 0.96}}
    for k, (schedule, accs) in enumerate(cells.items()):
        for draw, acc in accs.items():
            method = "ns" if draw is None else "eb"
            d = write_run(root, "%s%d-%s" % (method, k, draw), method=method, acc=acc, eb_epoch=None)
            _edit(d, summary={"draw_at": draw, "best_test_acc": acc + 0.02},
                  settings={"draw_at": draw, "epochs": 160, "lr_schedule": schedule})
    runs = [load_run(os.path.join(root, name)) for name in sorted(os.listdir(root))]
    for accuracy, shift in (("final", 0.0), ("best", 2.0)):
        table = draw_table(draw_frame(runs), accuracy)
        assert table["drawn_at"].tolist() == ["10", "20", "40", "final"]
        assert set(table["accuracy"]) == {accuracy}
        for schedule, accs in cells.items():
            got = table["acc_pct[%s]" % schedule].tolist()
            want = [100 * accs[d] + shift for d in (10, 20, 40, None)]
            assert got == pytest.approx(want)
            assert table["n[%s]" % schedule].tolist() == [1, 1, 1, 1]


def test_fig1_star_is_the_draw_with_the_best_search_accuracy():
    import pandas as pd
    ax = plots._figure().add_subplot(111)
    g = pd.DataFrame({"draw": [10, 10, 20, 40], "test_acc": [0.90, 0.92, 0.93, 0.91],
                      "search_acc": [0.50, 0.60, 0.70, 0.65]})
    ax.plot([0], [0])  # the line the star takes its colour from
    plots._star_best_search(ax, g, "test_acc", 100.0)
    star = ax.lines[-1]
    assert star.get_marker() == "*"
    assert list(star.get_xdata()) == [20.0] and list(star.get_ydata()) == pytest.approx([93.0])
