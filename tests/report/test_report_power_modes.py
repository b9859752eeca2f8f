"""The report of a power-mode sweep: the trade-off table and Pareto plot, the answer first, and the
LaTeX and model-card formats."""
import json
import os
import re
import statistics

import pytest

pytestmark = pytest.mark.host
pd = pytest.importorskip("pandas")
from click.testing import CliRunner

from ebedge.cli.report import report_command
from ebedge.report.build import build_report
from tests.report.test_report import write_run

# (mode recorded, settings' power_mode) -> method -> [(acc, train kJ, train seconds)] per repeat
SWEEP = {
    ("MAXN (0)", "MAXN"): {"dense": [(0.935, 900.0, 100.0), (0.933, 910.0, 104.0)],
                           "eb": [(0.930, 400.0, 45.0), (0.928, 410.0, 47.0)],
                           "ns": [(0.932, 600.0, 70.0), (0.932, 604.0, 72.0)]},
    ("MAXQ (1)", "MAXQ"): {"dense": [(0.935, 700.0, 200.0), (0.933, 706.0, 206.0)],
                           "eb": [(0.930, 300.0, 95.0), (0.928, 304.0, 97.0)],
                           "ns": [(0.931, 650.0, 150.0), (0.931, 660.0, 152.0)]},  # beaten by ns at MAXN
}


def _edit(path, change):
    with open(path) as f:
        doc = json.load(f)
    change(doc)
    with open(path, "w") as f:
        json.dump(doc, f)


def write_sweep(root):
    for (recorded, asked), methods in SWEEP.items():
        for method, repeats in methods.items():
            for repeat, (acc, kj, seconds) in enumerate(repeats):
                run_id = "vgg16-cifar10-{}-pm{}-r{}".format(method, asked, repeat)
                d = write_run(root, run_id, method=method, ratio=None if method == "dense" else 0.5, acc=acc,
                              energy_kj=kj, repeat=repeat, power_mode=recorded)
                _edit(os.path.join(d, "config.json"), lambda c: c["settings"].update(power_mode=asked))
                _edit(os.path.join(d, "summary.json"), lambda s: s.update(
                    phase_seconds={"search": seconds / 2, "prune": 0.0, "retrain": seconds / 2, "eval": 2.0}))


@pytest.fixture
def sweep(tmp_path):
    root = str(tmp_path / "runs")
    write_sweep(root)
    return root


def test_tradeoff_table_gives_each_mode_and_method_its_means_and_the_pareto_front(sweep, tmp_path):
    result = build_report([sweep], str(tmp_path / "report"))
    trade = pd.read_csv(str(tmp_path / "report" / "tradeoff.csv"))
    assert len(trade) == 6 and set(trade["state"]) == {"MAXN (0)", "MAXQ (1)"}
    for (recorded, _), methods in SWEEP.items():
        for method, repeats in methods.items():
            row = trade[(trade["state"] == recorded) & (trade["method"] == method)].iloc[0]
            assert row["n"] == 2 and row["energy_label"] == "measured (ina3221)"
            assert row["energy_kj_mean"] == pytest.approx(statistics.mean(r[1] for r in repeats))
            assert row["train_s_mean"] == pytest.approx(statistics.mean(r[2] for r in repeats))
            assert row["acc_pct_mean"] == pytest.approx(100 * statistics.mean(r[0] for r in repeats))
            assert row["energy_kj_ci95"] == pytest.approx(12.706 * statistics.stdev(r[1] for r in repeats) / 2 ** 0.5, rel=1e-4)
    off_front = trade[~trade["pareto"]]
    assert list(zip(off_front["state"], off_front["method"])) == [("MAXQ (1)", "ns")]
    assert any(os.path.basename(f) == "tradeoff_vgg16_cifar10.png" for f in result.files)
    page = open(str(tmp_path / "report" / "index.html"), encoding="utf-8").read()
    assert 'id="tradeoff"' in page and "Energy, training time and accuracy across power modes" in page


def test_the_answer_comes_first_per_mode(sweep, tmp_path):
    result = build_report([sweep], str(tmp_path / "report"))
    eb_vs_dense = [a for a in result.answers if "EB Train at p=0.5 used" in a and "dense training's" in a]
    assert [a.split(":")[0] for a in eb_vs_dense] == ["vgg16/cifar10 at MAXN (0)", "vgg16/cifar10 at MAXQ (1)"]
    maxq = eb_vs_dense[1]
    energy = statistics.mean([300.0, 304.0]) / statistics.mean([700.0, 706.0])
    assert re.search(r"used {:.2f} \(95% CI [\d.]+ to [\d.]+\) of dense training's energy".format(energy), maxq)
    assert maxq.endswith("(energy measured by ina3221; 2 vs 2 runs).")
    page = open(str(tmp_path / "report" / "index.html"), encoding="utf-8").read()
    assert page.index('id="answer"') < page.index('id="table"')
    out = CliRunner().invoke(report_command, [sweep, "--out", str(tmp_path / "again")])
    assert out.exit_code == 0, out.output
    assert out.output.strip().splitlines()[-len(result.answers):] == result.answers


def test_latex_is_a_booktabs_tabular_with_mean_ci_and_labels(sweep, tmp_path):
    modelled = write_run(sweep, "vgg16-cifar10-eb-lf-r0", method="eb-lf", acc=0.925, energy_kj=150.0,
                         energy_method="modelled", meter="model", power_mode="MAXN (0)")
    _edit(os.path.join(modelled, "config.json"), lambda c: c["settings"].update(power_mode="MAXN"))
    out = CliRunner().invoke(report_command, [sweep, "--out", str(tmp_path / "report"), "--format", "latex"])
    assert out.exit_code == 0, out.output
    tex = open(str(tmp_path / "report" / "table.tex")).read()
    lines = tex.splitlines()
    begin = next(i for i, l in enumerate(lines) if l.startswith("\\begin{tabular}"))
    assert lines[begin] == "\\begin{tabular}{lll" + "r" * 6 + "}" and lines[-1] == "\\end{tabular}"
    assert lines[begin + 1] == "\\toprule" and "\\midrule" in lines and "\\bottomrule" in lines
    assert "\\multicolumn{3}{c}{dense} & \\multicolumn{3}{c}{$p=0.5$}" in tex
    eb_maxq = next(l for l in lines if l.startswith("vgg16 & cifar10 & eb, MAXQ (1) & "))
    cells = eb_maxq.rstrip(" \\").split(" & ")
    assert cells[6] == "$92.90 \\pm {:.2f}$".format(12.706 * statistics.stdev([93.0, 92.8]) / 2 ** 0.5)
    assert cells[7] == "$302 \\pm {:.3g}$".format(12.706 * statistics.stdev([300.0, 304.0]) / 2 ** 0.5)
    assert cells[3] == "--"  # eb has no dense column
    lf = next(l for l in lines if "eb-lf" in l)
    assert "$150^{\\dagger}$" in lf  # one run: no interval; modelled: the dagger
    assert "$^{\\dagger}$energy modelled (model), not measured" in tex and "energy measured (ina3221)" in tex
    assert tex.count("&") == sum(l.count("&") for l in lines if "&" in l)
    for line in lines[begin + 2:]:
        if line.endswith("\\\\") and "multicolumn" not in line:
            assert line.count(" & ") == 8, line  # 3 + 6 columns


def test_model_card_says_hardware_mode_meter_phases_and_flags(sweep, tmp_path):
    _edit(os.path.join(sweep, "vgg16-cifar10-eb-pmMAXN-r0", "summary.json"),
          lambda s: s.update(flags=["low coverage: <b>|ina3221|</b> covered 90%"]))
    out = CliRunner().invoke(report_command, [sweep, "--out", str(tmp_path / "report"), "--format", "model-card"])
    assert out.exit_code == 0, out.output
    card = open(str(tmp_path / "report" / "model-card.md"), encoding="utf-8").read()
    assert card.startswith("## Energy\n")
    section = card.split("### vgg16 / cifar10 / eb (power_mode=MAXN), prune ratio 0.5\n")[1].split("###")[0]
    assert "- Hardware: jetson-tx2, JetPack 4.6 (L4T 32.7.1)" in section
    assert "- Power mode: MAXN (0)" in section
    assert "- Meter: ina3221 (measured), qualification: none recorded" in section
    assert "- Training FLOPs: 5 ± 0 PFLOPs" in section
    flags = next(l for l in section.splitlines() if l.startswith("- Flags: "))
    assert flags == "- Flags: low coverage:  b  ina3221  /b  covered 90%"  # board text made inert
    assert "| search | 0.27 ± 0 | 30.0 ± 0.0 |" in section  # 9 W x 30 s per run, both repeats
