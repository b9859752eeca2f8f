"""The report people look at: settings-true grouping, energy labels, index.html, report.json,
CodeCarbon's emissions.csv, `ebedge run`'s report and the one-line error without pandas/matplotlib."""
import csv
import json
import os
import re
import statistics
import subprocess
import sys

import pytest

from conftest import ROOT
from click.testing import CliRunner

from ebedge import report
from ebedge.cli.report import report_command
from support.quick_suite import quick_variant

pd = pytest.importorskip("pandas")  # the report is host side
from test_report import PHASES, write_run  # noqa: E402

pytestmark = pytest.mark.host


def set_settings(run_dir, **changes):
    """Change a written run's resolved settings (as a run with other settings would have them)."""
    path = os.path.join(run_dir, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["settings"].update(changes)
    with open(path, "w") as f:
        json.dump(config, f)


def add_totals(run_dir, run_id, meter="ina3221", method="measured"):
    """energy.csv's run_total and train_total rows, as the runner writes them."""
    total_j = sum(w * (b - a) for _, a, b, w in PHASES)
    train_j = sum(w * (b - a) for name, a, b, w in PHASES if name in ("search", "prune", "retrain"))
    with open(os.path.join(run_dir, "energy.csv"), "a") as f:
        f.write("{},run_total,{},total,{},92.0,{},{},{},2.0,,92,1.0,1.0,1.0,1.5\n".format(
            run_id, meter, method, total_j, total_j / 1e3, total_j / 92.0))
        f.write("{},train_total,{},total,{},70.0,{},{},{},2.0,,70,1.0,1.0,1.0,1.5\n".format(
            run_id, meter, method, train_j, train_j / 1e3, train_j / 70.0))
    return total_j


def test_runs_with_different_settings_are_separate_rows(tmp_path):
    root = str(tmp_path / "results")
    cells = {(0.1, False): [(0.93, 200.0), (0.91, 220.0)], (0.2, False): [(0.90, 150.0), (0.88, 170.0)],
             (0.1, True): [(0.92, 120.0)]}
    i = 0
    for (epsilon, amp), reps in cells.items():
        for rep, (acc, kj) in enumerate(reps):
            i += 1
            d = write_run(root, "r{}".format(i), acc=acc, energy_kj=kj, repeat=rep,
                          meter="ina3221" if rep == 0 else "tegrastats")  # the meter does not split a cell
            set_settings(d, epsilon=epsilon, amp=amp, workers=rep)  # nor do seed, repeat and workers
    dense = write_run(root, "d1", method="dense", ratio=None, acc=0.94, energy_kj=500.0, eb_epoch=None)
    set_settings(dense, amp=False)
    out = str(tmp_path / "rep")
    res = report.build_report([root], out)
    table = pd.read_csv(os.path.join(out, "table.csv"))
    eb = table[table["method"] == "eb"].set_index("settings")
    assert sorted(eb.index) == ["amp=False, epsilon=0.1", "amp=False, epsilon=0.2", "amp=True, epsilon=0.1"]
    for (epsilon, amp), reps in cells.items():
        row = eb.loc["amp={}, epsilon={}".format(amp, epsilon)]
        assert row["n[p=0.5]"] == len(reps)
        assert row["acc_pct_mean[p=0.5]"] == pytest.approx(100 * statistics.mean(a for a, _ in reps))
        assert row["energy_kj_mean[p=0.5]"] == pytest.approx(statistics.mean(k for _, k in reps))
    assert len(set(eb["settings_key"])) == 3
    assert table[table["method"] == "dense"]["n[p=-]"].tolist() == [1]
    # the page shows the same rows, each with the settings that tell it apart
    page = open(os.path.join(out, "index.html"), encoding="utf-8").read()
    for setting in eb.index:
        assert "<td class=\"small\">{}</td>".format(setting) in page
    assert len(res.cells_df[res.cells_df["method"] == "eb"]) == 3


def test_improvement_only_over_baselines_with_the_same_settings(tmp_path):
    root = str(tmp_path / "results")
    set_settings(write_run(root, "eb20", energy_kj=100.0), epochs=20)
    set_settings(write_run(root, "eb40", energy_kj=150.0), epochs=40)
    set_settings(write_run(root, "lt40", method="lt", energy_kj=600.0, eb_epoch=None), epochs=40)
    out = str(tmp_path / "rep")
    report.build_report([root], out)
    table = pd.read_csv(os.path.join(out, "table.csv")).set_index("settings")
    improv = table[table["method"] == "EB Train Improv."]
    assert improv.loc["epochs=40", "energy_x[p=0.5]"] == 4.0 and improv.loc["epochs=40", "energy_vs[p=0.5]"] == "lt"
    assert "epochs=20" not in improv.index  # no competitor ran with 20 epochs
    assert table.loc["epochs=20", "method"] == "eb"
    page = open(os.path.join(out, "index.html"), encoding="utf-8").read()
    assert "<th>EB Train Improv.</th>" in page and "&times;4.0 energy vs lt" in page
    assert "Accuracy shown: final" in page


def test_mixed_measured_and_modelled_energy_refused_unless_allowed(tmp_path):
    root = str(tmp_path / "results")
    write_run(root, "a", energy_kj=200.0)
    write_run(root, "b", energy_kj=260.0, repeat=1, energy_method="modelled", meter="model")
    out = str(tmp_path / "rep")
    cli = CliRunner().invoke(report_command, [root, "--out", out])
    assert cli.exit_code == 1
    lines = cli.output.strip().splitlines()
    assert len(lines) == 1 and "energy methods (measured, modelled)" in lines[0]
    assert "--allow-mixed-energy-methods" in lines[0] and "Traceback" not in cli.output
    assert not os.path.exists(os.path.join(out, "table.csv"))
    cli = CliRunner().invoke(report_command, [root, "--out", out, "--allow-mixed-energy-methods"])
    assert cli.exit_code == 0, cli.output
    table = pd.read_csv(os.path.join(out, "table.csv"))
    assert table.loc[0, "energy_label"] == "measured (ina3221)+modelled (model)"
    assert table.loc[0, "energy_kj_mean[p=0.5]"] == pytest.approx(230.0)
    page = open(os.path.join(out, "index.html"), encoding="utf-8").read()
    assert 'class="measured modelled"' in page and "measured and modelled" in page


def test_report_json_holds_the_tables_numbers(tmp_path):
    root = str(tmp_path / "results")
    for rep, (acc, kj) in enumerate([(0.93, 200.0), (0.91, 230.0), (0.92, 215.0)]):
        write_run(root, "eb{}".format(rep), acc=acc, energy_kj=kj, repeat=rep)
    write_run(root, "dense", method="dense", ratio=None, energy_kj=900.0, eb_epoch=None)
    out = str(tmp_path / "rep")
    report.build_report([root], out)

    def no_nan(name):
        raise AssertionError("report.json holds " + name)
    with open(os.path.join(out, "report.json")) as f:
        doc = json.load(f, parse_constant=no_nan)
    table = pd.read_csv(os.path.join(out, "table.csv"))
    for row in doc["table"]:
        csv_row = table[table["method"] == row["method"]].iloc[0]
        for key, value in row.items():
            if isinstance(value, float):
                assert csv_row[key] == pytest.approx(value, rel=1e-9), key
    eb = next(c for c in doc["cells"] if c["method"] == "eb")
    assert eb["n"] == 3 and eb["energy_kj_mean"] == pytest.approx(215.0)
    assert eb["energy_method"] == "measured" and eb["run_ids"] == "eb0;eb1;eb2"
    assert next(c for c in doc["cells"] if c["method"] == "dense")["acc_pct_ci95"] is None  # n = 1: no interval
    assert sorted(r["run_id"] for r in doc["runs"]) == ["dense", "eb0", "eb1", "eb2"]
    assert len(doc["phases"]) == len(pd.read_csv(os.path.join(out, "phases.csv")))


def test_codecarbon_emissions_csv(tmp_path):
    root = str(tmp_path / "results")
    total_j = add_totals(write_run(root, "m1"), "m1")
    add_totals(write_run(root, "x2", method="dense", ratio=None, eb_epoch=None, energy_method="modelled",
                         meter="model"), "x2", meter="model", method="modelled")
    write_run(root, "none3", method="ns", energy_method=None)  # no energy: no row
    out = str(tmp_path / "rep")
    cli = CliRunner().invoke(report_command, [root, "--out", out, "--format", "codecarbon"])
    assert cli.exit_code == 0, cli.output
    with open(os.path.join(out, "emissions.csv")) as f:
        header = next(csv.reader(f))
    codecarbon = ("timestamp,project_name,run_id,experiment_id,duration,emissions,emissions_rate,cpu_power,"
                  "gpu_power,ram_power,cpu_energy,gpu_energy,ram_energy,energy_consumed,water_consumed,"
                  "country_name,country_iso_code,region,cloud_provider,cloud_region,os,python_version,"
                  "codecarbon_version,cpu_count,cpu_model,gpu_count,gpu_model,longitude,latitude,ram_total_size,"
                  "tracking_mode,cpu_utilization_percent,gpu_utilization_percent,ram_utilization_percent,"
                  "ram_used_gb,on_cloud,pue,wue").split(",")
    assert header == codecarbon  # exactly: CodeCarbon's FileOutput replaces a file with other columns
    rows = pd.read_csv(os.path.join(out, "emissions.csv")).set_index("run_id")
    rows = rows.join(pd.read_csv(os.path.join(out, "emissions_ebedge.csv")).set_index("run_id"))
    assert sorted(rows.index) == ["m1", "x2"]
    m1 = rows.loc["m1"]
    assert m1["energy_consumed"] == pytest.approx(total_j / 3.6e6) and m1["duration"] == pytest.approx(92.0)
    assert m1["timestamp"] == "2023-11-14T22:14:52"  # T_WALL0 + 92 s, UTC
    assert pd.isna(m1["emissions"]) and pd.isna(m1["emissions_rate"]) and pd.isna(m1["cpu_energy"])
    assert m1["ebedge_energy_method"] == "measured" and m1["ebedge_energy_window"] == "run_total"
    assert m1["python_version"] == "3.6.9" and m1["project_name"] == "ebedge"
    assert rows.loc["x2", "ebedge_energy_method"] == "modelled"
    # emissions only from a stated carbon intensity
    cli = CliRunner().invoke(report_command, [root, "--out", out, "--carbon-intensity", "400"])
    assert cli.exit_code == 0, cli.output
    m1 = pd.read_csv(os.path.join(out, "emissions.csv")).set_index("run_id").loc["m1"]
    labels = pd.read_csv(os.path.join(out, "emissions_ebedge.csv")).set_index("run_id").loc["m1"]
    assert m1["emissions"] == pytest.approx(total_j / 3.6e6 * 0.4)
    assert m1["emissions_rate"] == pytest.approx(total_j / 3.6e6 * 0.4 / 92.0)
    assert labels["ebedge_carbon_intensity_g_per_kwh"] == 400
    bad = CliRunner().invoke(report_command, [root, "--out", out, "--carbon-intensity", "-5"])
    assert bad.exit_code != 0 and "Traceback" not in bad.output


def test_emissions_csv_passes_codecarbons_own_reader(tmp_path):
    """CodeCarbon's FileOutput takes our file as its own (same header: it appends, no backup), and
    every row builds CodeCarbon's EmissionsData record."""
    pytest.importorskip("codecarbon")
    import dataclasses
    from codecarbon.output_methods.emissions_data import EmissionsData
    from codecarbon.output_methods.file import FileOutput
    root, out = str(tmp_path / "results"), str(tmp_path / "rep")
    total_j = add_totals(write_run(root, "m1"), "m1")
    cli = CliRunner().invoke(report_command, [root, "--out", out, "--carbon-intensity", "400"])
    assert cli.exit_code == 0, cli.output
    fields = [f.name for f in dataclasses.fields(EmissionsData)]
    ours = pd.read_csv(os.path.join(out, "emissions.csv"), dtype=object, keep_default_na=False)
    record = EmissionsData(**ours.iloc[0].to_dict())  # every column is one of its fields
    assert float(record.energy_consumed) == pytest.approx(total_j / 3.6e6)
    theirs = EmissionsData(**dict.fromkeys(fields, ""))
    theirs.run_id, theirs.energy_consumed, theirs.duration = "cc-run", 0.002, 10.0
    writer = FileOutput("emissions.csv", out, on_csv_write="append")
    assert writer.has_valid_headers(theirs)
    writer.out(theirs, None)
    assert not [f for f in os.listdir(out) if f.endswith(".bak")]  # no backup: it took the file
    both = pd.read_csv(os.path.join(out, "emissions.csv"))
    assert list(both["run_id"]) == ["m1", "cc-run"]
    assert both["energy_consumed"].tolist() == pytest.approx([total_j / 3.6e6, 0.002])
    FileOutput("emissions.csv", out, on_csv_write="update").out(theirs, None)  # its pandas path
    assert list(pd.read_csv(os.path.join(out, "emissions.csv"))["run_id"]) == ["m1", "cc-run"]


def test_index_html_is_self_contained_and_escapes_what_runs_say(tmp_path):
    root = str(tmp_path / "results")
    hostile = '<img src="http://evil.example/x.png" onerror="alert(1)">'
    d = write_run(root, "r1", samples=True, masks=True, eb_epoch=10)
    write_run(root, "r2", repeat=1, eb_epoch=11, energy_method="modelled", meter="model", method="eb-lf")
    write_run(root, "r3", status="failed: out of memory")
    with open(os.path.join(d, "summary.json")) as f:
        summary = json.load(f)
    summary["flags"] = ["warning: " + hostile]
    with open(os.path.join(d, "summary.json"), "w") as f:
        json.dump(summary, f)
    set_settings(d, data_pipeline=hostile)
    out = str(tmp_path / "rep")
    res = report.build_report([root], out)
    page = open(os.path.join(out, "index.html"), encoding="utf-8").read()
    assert hostile not in page and "&lt;img src=&quot;http://evil.example/x.png&quot;" in page
    assert "<script" not in page.lower() and "default-src 'none'" in page
    # every image is an inline SVG, one per SVG the build drew; no link leaves the report's files
    images = re.findall(r'<img src="([^"]*)"', page)
    svgs = [f for f in res.files if f.endswith(".svg")]
    assert len(images) == len(svgs) >= 4 and all(i.startswith("data:image/svg+xml;base64,") for i in images)
    for href in re.findall(r'href="([^"]*)"', page):
        assert href.startswith("#") or not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", href), href
        if not href.startswith("#"):
            assert os.path.isfile(os.path.normpath(os.path.join(out, href))), href
    for name in ("table.csv", "runs.csv", "phases.csv", "report.json"):
        assert 'href="{}"'.format(name) in page
    assert 'href="../results/r1/samples.csv"' in page
    # the table: mean and interval, labels, flags in red; each run's section with its state
    assert '<div class="flag"' in page and "1 run(s) flagged" in page
    assert 'class="modelled"' in page and '<span class="tag">modelled</span>' in page
    assert '<span class="tag">measured</span>' in page
    assert '<span class="bad">failed: out of memory</span>' in page
    for run_id in ("r1", "r2", "r3"):
        assert 'id="run-{}"'.format(run_id) in page
    assert "Power trace, phases shaded" in page and "Pairwise mask distance" in page
    assert "jetson-tx2" in page and "MAXN" in page  # board state


def test_plot_groups_are_found_without_knowing_the_plots():
    runs = [report.Run(path="/x/" + i, run_id=i, config={}, summary=None, status="complete")
            for i in ("a1", "a1_b", "r+2")]
    figures, per_run = __import__("ebedge.report.page", fromlist=["x"]).group_plots(
        ["p/power_a1.svg", "p/power_a1_b.svg", "p/mask_distance_r_2_p0.5.svg", "p/methods_vgg16_cifar10.svg",
         "p/fig1_accuracy_vgg16_cifar10.svg", "p/overview.svg"], runs, ["vgg16", "cifar10"])
    assert per_run == {"a1": {"power": ["p/power_a1.svg"]}, "a1_b": {"power": ["p/power_a1_b.svg"]},
                       "r+2": {"mask_distance": ["p/mask_distance_r_2_p0.5.svg"]}}
    assert figures == {"methods": ["p/methods_vgg16_cifar10.svg"],
                       "fig1_accuracy": ["p/fig1_accuracy_vgg16_cifar10.svg"], "overview": ["p/overview.svg"]}


@pytest.mark.parametrize("module", ["pandas", "matplotlib"])
def test_missing_dependency_is_one_line_naming_the_install_command(tmp_path, module):
    root = str(tmp_path / "results")
    write_run(root, "r1")
    code = ("import sys; sys.modules[{!r}] = None\n"
            "from ebedge.cli import main\n"
            "main(['report', {!r}, '--out', {!r}])").format(module, root, str(tmp_path / "rep"))
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: the report needs {}, not installed here: pip install pandas matplotlib "
        "(or `pip install ebedge` on Python 3.7+)".format(module)]
    assert not os.path.exists(str(tmp_path / "rep"))


RUN_CODE = """
import sys
{block}
from ebedge.cli import main
from ebedge.run import quick
quick.QUICK_SUITE = {suite!r}
main(["run", "--out", {out!r}, "--quiet"])
"""
SMALL = dict(epochs=2, limit_train=128, limit_test=64, idle_seconds="0.0", meters='["model"]')


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ebedge_run_writes_its_report(tmp_path):
    out = str(tmp_path / "default")
    suite = quick_variant(tmp_path / "quick.toml", **SMALL)
    done = subprocess.run([sys.executable, "-c", RUN_CODE.format(block="", out=out, suite=suite)],
                          cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    index = os.path.join(out, "report", "index.html")
    lines = done.stdout.strip().splitlines()
    assert lines[-2] == "report: " + os.path.abspath(index)
    assert lines[-1].startswith("vgg16/synthetic: EB Train at p=0.7 used ")  # the answer, last
    table = pd.read_csv(os.path.join(out, "report", "table.csv"))
    assert sorted(table["method"]) == ["dense", "eb"]
    assert set(table["energy_label"]) == {"modelled (model)"}
    assert "<table" in open(index, encoding="utf-8").read()
    # a board without pandas finishes its runs and says why there is no report
    dense_only = quick_variant(tmp_path / "dense.toml", methods=["dense"], **SMALL)
    again = subprocess.run([sys.executable, "-c", RUN_CODE.format(block="sys.modules['pandas'] = None",
                                                                  out=str(tmp_path / "board"),
                                                                  suite=dense_only)],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "report not written: the report needs pandas" in again.stderr and "Traceback" not in again.stderr
    assert os.path.isfile(str(tmp_path / "board" / "dense" / "summary.json"))


def test_damaged_config_and_summary_fields_do_not_break_the_page(tmp_path):
    root = str(tmp_path / "results")
    d = write_run(root, "r1")
    with open(os.path.join(d, "config.json")) as f:
        config = json.load(f)
    config.update(settings=["not", "a", "dict"], board="<b>board</b>", meters={"x": 1}, versions=None)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(d, "summary.json")) as f:
        summary = json.load(f)
    summary["flags"] = "<i>one flag</i>"
    with open(os.path.join(d, "summary.json"), "w") as f:
        json.dump(summary, f)
    out = str(tmp_path / "rep")
    report.build_report([root], out)
    page = open(os.path.join(out, "index.html"), encoding="utf-8").read()
    assert "&lt;b&gt;board&lt;/b&gt;" in page and "<li>&lt;i&gt;one flag&lt;/i&gt;</li>" in page
    assert "<b>board" not in page and "<i>one flag" not in page
