"""The paper's own numbers fed to the report as runs give the paper's printed derived rows: Table 2's
"EB Train Improv." (You et al., ICLR 2020; docs/reference/paper-tables-2-3.md) and Table 3's Top-1 /
Top-5 gains over the unpruned model."""
import pytest

pd = pytest.importorskip("pandas")  # the report is host side
from ebedge.report.runs import Run  # noqa: E402
from ebedge.report.tables import IMPROV, runs_frame, table_frame  # noqa: E402

pytestmark = pytest.mark.host

METHODS = ("lt", "snip", "ns", "thinet", "eb-reinit", "eb", "eb-lf", "eb-ll")
# Table 2: per method, (accuracy %, energy kJ, PFLOPs) at each ratio; then the printed improvement row.
TABLE2 = {
    ("vgg16", "cifar10"): {
        "ratios": (0.3, 0.5, 0.7),
        "lt": [(93.18, 746.2, 30.3), (93.25, 746.2, 30.3), (93.28, 746.2, 30.3)],
        "snip": [(93.20, 373.1, 15.1), (92.71, 373.1, 15.1), (92.30, 373.1, 15.1)],
        "ns": [(93.05, 617.1, 27.4), (92.96, 590.7, 25.7), (92.70, 553.8, 23.8)],
        "thinet": [(92.82, 298.0, 22.6), (91.92, 383.9, 19.0), (90.40, 380.1, 16.6)],
        "eb-reinit": [(93.11, 290.4, 14.4), (93.23, 237.3, 12.0), (92.71, 200.5, 9.45)],
        "eb": [(93.39, 256.4, 12.7), (93.26, 213.4, 10.8), (92.71, 184.2, 9.85)],
        "eb-lf": [(93.20, 250.1, 12.8), (93.19, 199.4, 10.7), (92.91, 170.3, 8.51)],
        "eb-ll": [(93.25, 56.1, 12.8), (93.13, 43.1, 10.7), (92.60, 36.5, 8.51)],
        # printed: 0.19 / 0.01 / -0.57, 6.6x / 1.2x, 8.6x / 1.4x, 10.2x / 1.8x. At p = 0.3 the paper
        # divides SNIP's energy (6.6x), not the cheapest competitor's (ThiNet, 298.0 kJ: 5.3x); the
        # paper's own inconsistency (paper-tables-2-3.md, N4), so that one cell is checked as computed.
        "improv": [(0.19, 298.0 / 56.1, 1.2), (0.01, 8.6, 1.4), (-0.57, 10.2, 1.8)],
    },
    ("preresnet101", "cifar10"): {
        "ratios": (0.3, 0.5, 0.7),
        "lt": [(93.70, 6322, 14.9), (93.21, 6322, 14.9), (92.78, 6322, 14.9)],
        "snip": [(93.76, 3161, 7.40), (93.31, 3161, 7.40), (92.76, 3161, 7.40)],
        "ns": [(93.83, 5270, 13.9), (93.42, 4641, 12.7), (92.49, 4211, 11.0)],
        "thinet": [(93.39, 3579, 13.2), (93.07, 2656, 10.6), (91.42, 1901, 8.65)],
        "eb-reinit": [(93.88, 2817, 7.75), (93.29, 2382, 7.05), (92.39, 1565, 3.77)],
        "eb": [(93.91, 2370, 6.50), (93.90, 1970, 5.70), (92.49, 1452, 3.50)],
        "eb-lf": [(93.48, 2265, 6.45), (93.31, 1667, 5.39), (92.24, 1338, 3.44)],
        "eb-ll": [(93.24, 489.4, 6.45), (92.85, 410.9, 5.39), (92.12, 281.8, 3.44)],
        "improv": [(0.08, 6.5, 1.1), (0.48, 6.5, 1.4), (-0.29, 6.7, 2.2)],
    },
}
# Table 3, ResNet18: (method, ratio, top-1 %, top-1 gain printed, top-5 %, top-5 gain printed)
TABLE3 = [("ns", 0.1, 69.65, 0.08, 89.20, -0.04), ("ns", 0.3, 67.85, -1.72, 88.07, -1.17),
          ("sfp", 0.3, 67.10, -2.47, 87.78, -1.46), ("eb", 0.1, 69.84, 0.27, 89.39, 0.15),
          ("eb", 0.3, 68.28, -1.29, 88.28, -0.96)]


def paper_run(model, dataset, method, ratio, acc, kj, pflops, acc5=None):
    """A complete run as its directory would be read, carrying one of the paper's cells."""
    settings = {"method": method, "model": model, "dataset": dataset, "epochs": 160, "batch_size": 256,
                "prune_ratio": [ratio] if ratio is not None else [0.5]}
    summary = {"status": "complete", "method": method, "model": model, "dataset": dataset, "prune_ratio": ratio,
               "test_acc": acc / 100.0, "best_test_acc": acc / 100.0 + 0.01,
               "test_acc_top5": None if acc5 is None else acc5 / 100.0, "train_flops_total": pflops * 1e15,
               "energy": {"method": "measured", "meter": "paper", "kj": {"train_total": kj}}, "flags": []}
    run_id = "{}-{}-{}-p{}".format(model, dataset, method, ratio)
    return Run(path="/nonexistent/" + run_id, run_id=run_id, config={"settings": settings}, summary=summary,
               status="complete")


@pytest.mark.parametrize("setting", sorted(TABLE2))
def test_table2_improvement_row_is_the_papers(setting):
    model, dataset = setting
    block = TABLE2[setting]
    runs = [paper_run(model, dataset, m, p, *block[m][i]) for m in METHODS for i, p in enumerate(block["ratios"])]
    table = table_frame(runs_frame(runs))
    improv = table[table["method"] == IMPROV].iloc[0]
    for p, (acc, energy_x, flops_x) in zip(block["ratios"], block["improv"]):
        col = "{}[p=%g]" % p
        assert improv[col.format("improv_acc_pct")] == pytest.approx(acc, abs=0.005)
        assert improv[col.format("energy_x")] == pytest.approx(energy_x, abs=0.065)  # printed to one decimal
        assert improv[col.format("flops_x")] == pytest.approx(flops_x, abs=0.065)
        assert improv[col.format("cost_of")] == "eb-ll"
    assert improv["energy_x[p=0.5]"] != pytest.approx(  # not the most accurate competitor's cost (17.3x)
        block["lt"][1][1] / block["eb-ll"][1][1], abs=0.1)


def test_table3_top1_and_top5_gains_over_the_unpruned_model():
    runs = [paper_run("resnet18", "imagefolder", "dense", None, 69.57, 98140, 1259.13, acc5=89.24)]
    runs += [paper_run("resnet18", "imagefolder", m, p, a1, 1.0, 1.0, acc5=a5) for m, p, a1, _, a5, _ in TABLE3]
    table = table_frame(runs_frame(runs)).set_index("method")
    for method, p, a1, gain1, a5, gain5 in TABLE3:
        row = table.loc[method]
        assert row["acc_pct_mean[p=%g]" % p] == pytest.approx(a1)
        assert row["acc5_pct_mean[p=%g]" % p] == pytest.approx(a5)
        assert row["acc_gain_pct[p=%g]" % p] == pytest.approx(gain1, abs=0.005)
        assert row["acc5_gain_pct[p=%g]" % p] == pytest.approx(gain5, abs=0.005)


def test_best_accuracy_is_shown_when_asked_and_said():
    runs = [paper_run("vgg16", "cifar10", "eb", 0.5, 93.26, 213.4, 10.8)]
    final, best = (table_frame(runs_frame(runs), accuracy=a).iloc[0] for a in ("final", "best"))
    assert final["accuracy"] == "final" and final["acc_pct_mean[p=0.5]"] == pytest.approx(93.26)
    assert best["accuracy"] == "best" and best["acc_pct_mean[p=0.5]"] == pytest.approx(94.26)


def test_a_run_without_a_ticket_is_flagged_in_its_cell():
    from ebedge.run.runner import NO_TICKET_FLAG
    run = paper_run("vgg16", "cifar10", "eb", 0.5, 80.0, 100.0, 5.0)
    run.summary.update(no_ticket=True, flags=[NO_TICKET_FLAG])
    row = table_frame(runs_frame([run])).iloc[0]
    assert row["n_flagged[p=0.5]"] == 1 and row["flags[p=0.5]"].startswith("no ticket:")
