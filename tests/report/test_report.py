"""ebedge report: run directories written per the run-directory contract in, CSVs and plots out."""
import json
import math
import os
import shutil
import statistics
import time

import numpy as np
import pytest

pytestmark = pytest.mark.host
pd = pytest.importorskip("pandas")  # before the report imports: a device interpreter skips here
from click.testing import CliRunner

from ebedge import report
from ebedge.report import plots as report_plots
from ebedge.cli.report import report_command

# Known two-sided 95% t quantiles (printed tables), independent of the code's own table.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 9: 2.262, 35: 2.030}

PHASES = [("idle_before", 0.0, 10.0, 2.0), ("search", 10.0, 40.0, 9.0), ("prune", 40.0, 41.0, 6.0),
          ("retrain", 41.0, 80.0, 8.0), ("eval", 80.0, 82.0, 7.0), ("idle_after", 82.0, 92.0, 2.0)]
T_WALL0 = 1.7e9


def write_run(root, run_id, method="eb", ratio=0.5, acc=0.93, energy_kj=100.0, pflops=5.0, repeat=0,
              power_mode="MAXN", status="complete", eb_epoch=12, samples=False, masks=False, summary=True,
              heartbeat_age=None, energy_method="measured", meter="ina3221", board_id="tx2-a",
              model="vgg16", dataset="cifar10"):
    """Write a run directory exactly as RUNDIR.md lays it out, with the given headline numbers."""
    d = os.path.join(root, run_id)
    os.makedirs(os.path.join(d, "checkpoints"))
    settings = {"method": method, "model": model, "dataset": dataset, "prune_ratio": ratio, "epochs": 4,
                "batch_size": 64, "lr": 0.1, "sparsity": 1e-4, "epsilon": 0.1, "retrain": "finetune", "width": 1.0,
                "limit_train": None, "limit_test": None, "seed": repeat, "device": "cuda", "data_dir": None,
                "meters": [meter], "repeat": repeat, "suite": None, "cell": None}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"run_id": run_id, "config_hash": "h" + run_id, "settings": settings,
                   "versions": {"ebedge": "0.1.0", "python": "3.6.9", "torch": "1.10.0", "torchvision": "0.11.1"},
                   "host": "tx2", "board": {"model": "jetson-tx2", "l4t": "32.7.1", "jetpack": "4.6",
                                            "nvpmodel": power_mode, "jetson_clocks": False},
                   "meters": [{"name": meter}]}, f)
    with open(os.path.join(d, "phases.csv"), "w") as f:
        f.write("run_id,phase,epoch,t_start_mono,t_end_mono,t_start_wall,t_end_wall\n")
        for name, a, b, _ in PHASES:
            f.write("{},{},,{},{},{},{}\n".format(run_id, name, a, b, T_WALL0 + a, T_WALL0 + b))
            if name == "search":  # per-epoch rows must not be double counted
                for e in range(3):
                    f.write("{},search,{},{},{},{},{}\n".format(run_id, e, a + 10 * e, a + 10 * (e + 1),
                                                                 T_WALL0 + a + 10 * e, T_WALL0 + a + 10 * (e + 1)))
    with open(os.path.join(d, "epochs.csv"), "w") as f:
        f.write("run_id,phase,epoch,lr,train_loss,train_acc,test_acc,seconds,train_flops,mask_distance\n")
        f.write("{},search,0,0.1,2.0,0.3,0.35,10,1e14,\n".format(run_id))
    with open(os.path.join(d, "energy.csv"), "w") as f:
        f.write("run_id,phase,meter,rail,method,duration_s,energy_j,energy_kj,avg_power_w,idle_power_w,"
                "net_energy_j,n_samples,rate_hz,max_gap_s,covered_frac,uncertainty_pct\n")
        for name, a, b, w in PHASES:
            j = w * (b - a)
            f.write("{},{},{},total,{},{},{},{},{},2.0,{},{},1.0,1.0,1.0,1.5\n".format(
                run_id, name, meter, energy_method, b - a, j, j / 1e3, w, j - 2.0 * (b - a), int(b - a)))
    if samples:
        with open(os.path.join(d, "samples.csv"), "w") as f:
            f.write("run_id,meter,rail,t_mono,t_wall,power_w,voltage_v,current_a,meter_energy_j,flags\n")
            for name, a, b, w in PHASES:
                for t in np.arange(a, b, 1.0):
                    f.write("{},{},total,{},{},{},5.0,{},,\n".format(run_id, meter, t, T_WALL0 + t, w, w / 5))
                    f.write("{},{},VDD_GPU,{},{},{},5.0,{},,\n".format(run_id, meter, t, T_WALL0 + t, w / 2, w / 10))
    if masks:
        rng = np.random.RandomState(0)
        base = rng.rand(40) > 0.5
        history = np.array([base ^ (rng.rand(40) < 0.5 / (e + 1)) for e in range(14)])
        np.savez(os.path.join(d, "masks.npz"), **{
            "ratio_0.5_epochs": np.arange(14), "ratio_0.5_masks": history,
            "ratio_0.3_epochs": np.arange(14), "ratio_0.3_masks": history[::-1]})
    if summary:
        kj = {name: w * (b - a) / 1e3 for name, a, b, w in PHASES}
        kj["train_total"] = energy_kj
        energy = None if energy_method is None else {
            "meter": meter, "rail": "total", "method": energy_method, "kj": kj,
            "net_kj": {k: v * 0.8 for k, v in kj.items()}, "idle_power_w": 2.0, "j_per_train_gflop": 0.02}
        with open(os.path.join(d, "summary.json"), "w") as f:
            json.dump({"run_id": run_id, "status": status, "method": method, "model": model, "dataset": dataset,
                       "prune_ratio": ratio, "seed": repeat, "repeat": repeat, "eb_epoch": eb_epoch,
                       "eb_epochs": {"0.3": eb_epoch, "0.5": eb_epoch} if eb_epoch is not None else {},
                       "test_acc": acc, "best_test_acc": acc + 0.001, "dense_test_acc": None,
                       "params_dense": 1000, "params_pruned": 500, "forward_flops_dense": 1e8,
                       "forward_flops_pruned": 5e7, "train_flops_search": pflops * 0.4e15,
                       "train_flops_prune": 0.0, "train_flops_retrain": pflops * 0.6e15,
                       "train_flops_total": pflops * 1e15, "runtime_s": 92.0,
                       "phase_seconds": {"search": 30, "prune": 1, "retrain": 39, "eval": 2},
                       "energy": energy, "board_id": board_id, "power_mode": power_mode, "flags": [],
                       "heartbeat_wall": time.time()}, f)
    if heartbeat_age is not None:
        beat = os.path.join(d, "heartbeat")
        open(beat, "w").close()
        t = time.time() - heartbeat_age
        os.utime(beat, (t, t))
    return d


def ci(values):
    n = len(values)
    return T975[n - 1] * statistics.stdev(values) / math.sqrt(n)


# The cell numbers of the main suite (accuracy, kJ, PFLOPs per repeat).
CELLS = {
    ("dense", None): [(0.935, 900.0, 15.0), (0.937, 910.0, 15.0), (0.931, 905.0, 15.0)],
    ("eb", 0.5): [(0.930, 200.0, 5.5), (0.925, 215.0, 5.7), (0.934, 190.0, 5.6)],
    ("eb", 0.3): [(0.936, 260.0, 6.5), (0.932, 250.0, 6.4)],
    ("eb-reinit", 0.5): [(0.921, 230.0, 7.0)],
    ("ns", 0.5): [(0.926, 400.0, 12.7), (0.924, 410.0, 12.6), (0.928, 405.0, 12.8)],
    ("lt", 0.5): [(0.933, 600.0, 14.9), (0.931, 640.0, 14.9)],
    ("snip", 0.5): [(0.929, 300.0, 7.4)],
}


@pytest.fixture
def results(tmp_path):
    root = str(tmp_path / "results")
    i = 0
    for (method, ratio), reps in CELLS.items():
        for rep, (acc, kj, pf) in enumerate(reps):
            i += 1
            write_run(root, "r{:02d}_{}".format(i, method), method=method, ratio=ratio, acc=acc, energy_kj=kj,
                      pflops=pf, repeat=rep, eb_epoch=(10 + rep if method.startswith("eb") else None),
                      samples=(i == 1), masks=(i == 4))
    return root


def test_t_quantiles_match_printed_tables():
    for df, t in T975.items():
        assert report.t_quantile_975(df) == pytest.approx(t, abs=2e-3)
    assert report.t_quantile_975(10 ** 6) == pytest.approx(1.960, abs=1e-3)
    with pytest.raises(ValueError):
        report.t_quantile_975(0)


def test_table_means_intervals_and_improvement(results, tmp_path):
    out = str(tmp_path / "rep")
    res = report.build_report([results], out)
    table = pd.read_csv(os.path.join(out, "table.csv"))
    row = {m: r for m, r in zip(table["method"], table.to_dict("records"))}
    assert list(table["method"]) == ["dense", "lt", "snip", "ns", "eb-reinit", "eb", "EB Train Improv."]
    assert set(table["accuracy"]) == {"final"}
    for (method, ratio), reps in CELLS.items():
        r, p = row[method], report.ratio_label(ratio)
        accs, kjs, pfs = ([x[k] for x in reps] for k in range(3))
        assert r["n[p={}]".format(p)] == len(reps)
        assert r["acc_pct_mean[p={}]".format(p)] == pytest.approx(100 * statistics.mean(accs))
        assert r["energy_kj_mean[p={}]".format(p)] == pytest.approx(statistics.mean(kjs))
        assert r["pflops_mean[p={}]".format(p)] == pytest.approx(statistics.mean(pfs))
        if method != "dense":  # Table 3's gain over the unpruned model
            dense = statistics.mean(x[0] for x in CELLS[("dense", None)])
            assert r["acc_gain_pct[p={}]".format(p)] == pytest.approx(100 * (statistics.mean(accs) - dense))
        if len(reps) == 1:
            assert math.isnan(r["acc_pct_ci95[p={}]".format(p)])
        else:
            assert r["acc_pct_ci95[p={}]".format(p)] == pytest.approx(100 * ci(accs), rel=1e-3)
            assert r["energy_kj_ci95[p={}]".format(p)] == pytest.approx(ci(kjs), rel=1e-3)
            assert r["pflops_ci95[p={}]".format(p)] == pytest.approx(ci(pfs), rel=1e-3)
    # dense has no prune ratio: only its p=- columns are filled
    assert math.isnan(row["dense"]["acc_pct_mean[p=0.5]"]) and math.isnan(row["eb"]["acc_pct_mean[p=-]"])
    assert row["dense"]["n[p=0.5]"] == 0 and row["eb"]["n[p=-]"] == 0
    # the paper's improvement row at p=0.5: eb's accuracy minus the most accurate competitor's (lt),
    # the cheapest competitor's energy and FLOPs (snip) over EB Train's (no eb-ll ran: eb's)
    improv, mean = row["EB Train Improv."], lambda cell, k: statistics.mean(x[k] for x in CELLS[cell])
    assert improv["acc_vs[p=0.5]"] == "lt" and improv["energy_vs[p=0.5]"] == "snip"
    assert improv["improv_acc_pct[p=0.5]"] == pytest.approx(100 * (mean(("eb", 0.5), 0) - mean(("lt", 0.5), 0)))
    assert improv["energy_x[p=0.5]"] == pytest.approx(mean(("snip", 0.5), 1) / mean(("eb", 0.5), 1))
    assert improv["flops_x[p=0.5]"] == pytest.approx(mean(("snip", 0.5), 2) / mean(("eb", 0.5), 2))
    assert improv["cost_of[p=0.5]"] == "eb"
    assert math.isnan(improv["energy_x[p=0.3]"])  # no competitor ran at 0.3
    assert set(table["energy_label"]) == {"measured (ina3221)"}
    assert res.table_df.shape[0] == len(table)


def test_runs_and_phases_csv(results, tmp_path):
    out = str(tmp_path / "rep")
    report.build_report([results], out)
    runs = pd.read_csv(os.path.join(out, "runs.csv"))
    assert len(runs) == sum(len(v) for v in CELLS.values())
    assert set(runs["status"]) == {"complete"} and set(runs["energy_method"]) == {"measured"}
    first = runs[runs["run_id"] == "r01_dense"].iloc[0]
    assert first["energy_kj_train_total"] == 900.0 and first["energy_kj_retrain"] == pytest.approx(8.0 * 39 / 1e3)
    assert first["power_mode"] == "MAXN" and first["board_id"] == "tx2-a" and first["setting_retrain"] == "finetune"
    assert first["train_pflops_total"] == pytest.approx(15.0)
    assert "samples.csv" in runs[runs["run_id"] == "r02_dense"].iloc[0]["missing_files"]
    phases = pd.read_csv(os.path.join(out, "phases.csv"))
    one = phases[phases["run_id"] == "r01_dense"].set_index("phase")
    for name, a, b, w in PHASES:
        assert one.loc[name, "seconds"] == pytest.approx(b - a)  # per-epoch search rows not double counted
        assert one.loc[name, "energy_kj"] == pytest.approx(w * (b - a) / 1e3)
        assert one.loc[name, "net_energy_kj"] == pytest.approx((w - 2.0) * (b - a) / 1e3)


def test_incomplete_and_stale_runs_reported_and_excluded(results, tmp_path):
    bad = dict(method="eb", ratio=0.5, acc=0.10, energy_kj=9999.0, pflops=99.0)
    write_run(results, "x_nosummary", summary=False, **bad)
    write_run(results, "x_stale", status="running", heartbeat_age=300, **bad)
    write_run(results, "x_live", status="running", heartbeat_age=1, **bad)
    write_run(results, "x_failed", status="failed: CUDA out of memory", **bad)
    write_run(results, "x_interrupted", status="interrupted", **bad)
    torn = write_run(results, "x_torn", samples=True, masks=True, **bad)
    with open(os.path.join(torn, "summary.json"), "w") as f:
        f.write('{"run_id": "x_torn", "status": "compl')
    with open(os.path.join(torn, "samples.csv"), "a") as f:
        f.write("x_torn,ina3221,total,91.5,17")
    with open(os.path.join(torn, "masks.npz"), "wb") as f:
        f.write(b"PK\3\4garbage")
    out = str(tmp_path / "rep")
    res = report.build_report([results], out)
    runs = pd.read_csv(os.path.join(out, "runs.csv")).set_index("run_id")
    assert runs.loc["x_nosummary", "status"] == "incomplete (no summary.json)"
    assert runs.loc["x_torn", "status"] == "incomplete (unreadable summary.json)"
    assert os.path.getsize(os.path.join(out, "plots", "power_x_torn.png")) > 0
    assert any("x_torn: unreadable masks.npz" in w for w in res.warnings)
    assert runs.loc["x_nosummary", "method"] == "eb"  # taken from config.json
    assert runs.loc["x_stale", "status"] == "stale (killed?)"
    assert runs.loc["x_live", "status"] == "running"
    assert runs.loc["x_failed", "status"] == "failed: CUDA out of memory"
    assert not runs.loc[["x_nosummary", "x_stale", "x_live", "x_failed", "x_interrupted"], "complete"].any()
    table = pd.read_csv(os.path.join(out, "table.csv")).set_index("method")
    accs = [x[0] for x in CELLS[("eb", 0.5)]]
    assert table.loc["eb", "n[p=0.5]"] == 3
    assert table.loc["eb", "acc_pct_mean[p=0.5]"] == pytest.approx(100 * statistics.mean(accs))
    assert sum("x_stale is stale (killed?)" in w for w in res.warnings) == 1


def test_mixed_power_modes_refused_unless_allowed(results, tmp_path):
    write_run(results, "x_maxq", method="ns", ratio=0.5, acc=0.92, power_mode="MAXQ")
    out = str(tmp_path / "rep")
    cli = CliRunner().invoke(report_command, [results, "--out", out])
    assert cli.exit_code != 0
    assert "power modes" in cli.output and "MAXQ" in cli.output and "--allow-mixed-power-modes" in cli.output
    assert not os.path.exists(os.path.join(out, "table.csv"))
    cli = CliRunner().invoke(report_command, [results, "--out", out, "--allow-mixed-power-modes"])
    assert cli.exit_code == 0, cli.output
    table = pd.read_csv(os.path.join(out, "table.csv")).set_index("method")
    assert table.loc["ns", "power_mode"] == "MAXN+MAXQ" and table.loc["ns", "n[p=0.5]"] == 4


def test_foreign_entries_warned_nested_dirs_and_previous_report_skipped(tmp_path):
    root = tmp_path / "results"
    suite = str(root / "suite1" / "board-a")
    write_run(suite, "r1", method="eb", eb_epoch=8, energy_method="modelled", meter="model")
    lone = write_run(str(tmp_path / "elsewhere"), "r2", method="ns", eb_epoch=None)
    (root / "notes.txt").write_text("hello")
    (root / "junk").mkdir()
    (root / "junk" / "x.bin").write_bytes(b"\0\1")
    (root / "suite1" / "suite.toml").write_text("[suite]\n")
    out = str(root / "report")
    cli = CliRunner().invoke(report_command, [str(root), lone, "--out", out])
    assert cli.exit_code == 0, cli.output
    assert "not a run directory" in cli.output and "notes.txt" in cli.output and "junk" in cli.output
    assert "suite.toml" in cli.output
    assert "Figs. 1, 2, 5 skipped" in cli.output
    runs = pd.read_csv(os.path.join(out, "runs.csv")).set_index("run_id")
    assert sorted(runs.index) == ["r1", "r2"]
    assert runs.loc["r1", "energy_method"] == "modelled" and runs.loc["r1", "energy_label"] == "modelled (model)"
    os.symlink(lone, str(root / "link-to-r2"))  # r2 reached twice: counted once
    shutil.copytree(suite, str(root / "copy"))  # r1 collected twice: counted once, with a warning
    again = CliRunner().invoke(report_command, [str(root), lone, "--out", str(tmp_path / "rep2")])
    assert again.exit_code == 0 and "report" + os.sep not in again.output  # earlier report output is not foreign
    assert "run r1 appears again" in again.output
    assert len(pd.read_csv(str(tmp_path / "rep2" / "runs.csv"))) == 2
    assert CliRunner().invoke(report_command, [str(tmp_path / "missing")]).exit_code != 0
    empty = CliRunner().invoke(report_command, [str(root / "junk"), "--out", str(tmp_path / "rep3")])
    assert empty.exit_code == 0 and "x.bin" in empty.output and "0 runs" in empty.output


def test_all_plots_written(results, tmp_path):
    out = str(tmp_path / "rep")
    res = report.build_report([results], out)
    names = {os.path.basename(f) for f in res.files}
    stems = ["mask_distance_r04_eb_p0.5", "mask_distance_r04_eb_p0.3", "power_r01_dense",
             "eb_epoch_sweep_vgg16_cifar10", "methods_vgg16_cifar10"]
    for stem in stems:
        for ext in ("png", "svg"):
            path = os.path.join(out, "plots", "{}.{}".format(stem, ext))
            assert "{}.{}".format(stem, ext) in names and os.path.getsize(path) > 0
    with open(os.path.join(out, "plots", "power_r01_dense.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert all(n.startswith("Figs. 1, 2, 5 skipped") for n in res.notes)  # no fixed draw epochs here


def test_mask_distance_matrix_is_normalized_hamming():
    rng = np.random.RandomState(1)
    masks = rng.rand(5, 17) > 0.4
    d = report_plots.mask_distance_matrix(masks)
    for i in range(5):
        for j in range(5):
            assert d[i, j] == pytest.approx(sum(a != b for a, b in zip(masks[i], masks[j])) / 17.0)
