"""The plain-text table `ebedge run` prints: every energy figure carries its label."""
from ebedge.report.summary_table import side_by_side


def _summary(**fields):
    base = {"method": "eb", "prune_ratio": 0.5, "test_acc": 0.9312, "eb_epoch": 12,
            "params_pruned": 1234, "train_flops_total": 5.7e15, "runtime_s": 61.25,
            "energy": {"kj": {"train_total": 12.5}, "method": "measured", "meter": "ina3221"}}
    base.update(fields)
    return base


def test_rows_carry_accuracy_ticket_flops_and_labelled_energy():
    lines = side_by_side([
        _summary(),
        _summary(method="dense", eb_epoch=None, energy={"kj": {"train_total": 30.0},
                                                        "method": "modelled", "meter": "model"}),
        _summary(method="ns", energy=None)]).splitlines()
    assert len(lines) == 5 and lines[0].split()[:3] == ["method", "p", "test"]
    eb, dense, ns = lines[2], lines[3], lines[4]
    assert eb.split()[:4] == ["eb", "0.5", "93.12%", "12"]
    assert "5.7" in eb and "61.2" in eb and "12.5 kJ (measured, ina3221)" in eb
    assert dense.split()[:4] == ["dense", "-", "93.12%", "-"]
    assert "30 kJ (modelled, model)" in dense
    assert ns.endswith("not measured")
