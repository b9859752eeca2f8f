"""Analytic MACs/FLOPs: hand-computed layers, the paper's reference numbers, and FlopCounterMode."""
import pytest
import torch
import torch.nn as nn

from ebedge.training.flops import count_params, flops_from_cfg, forward_macs, layer_macs, summary, train_flops
from ebedge.models import build_model, input_size
from ebedge.prune.physical import prune_by_ratio

CIFAR10_TRAIN = 50000
EPOCHS = 160


def test_hand_computed_small_network():
    net = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
                        nn.Conv2d(6, 6, 3, stride=2, padding=1, groups=3), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(6 * 2 * 2, 5))
    rows = layer_macs(net, (4, 8, 8))
    by_name = dict((r["name"], r) for r in rows)
    assert by_name["0"]["macs"] == 3 * 3 * 4 * 6 * 8 * 8
    assert by_name["3"]["macs"] == 3 * 3 * (6 // 3) * 6 * 4 * 4
    assert by_name["6"]["macs"] == 24 * 5
    assert by_name["3"]["out_shape"] == (6, 4, 4)
    assert by_name["1"]["macs"] == 0 and by_name["1"]["other_ops"] == 2 * 6 * 8 * 8
    assert by_name["2"]["other_ops"] == 6 * 8 * 8 and by_name["4"]["other_ops"] == 4 * 6 * 2 * 2
    assert forward_macs(net, (4, 8, 8)) == 3 * 3 * 4 * 6 * 64 + 3 * 3 * 2 * 6 * 16 + 120
    assert sum(r["params"] for r in rows) == count_params(net)


def test_train_flops_convention():
    assert train_flops(10, 7, 3) == 3 * 10 * 7 * 3


@pytest.mark.parametrize("name, macs_m, params_m, train_pflops", [
    ("vgg16", 313.20, 14.72, 15.03),
    ("preresnet101", 154.06, 1.05, 7.395),
    ("preresnet164", 247.65, 1.70, 11.89),
])
def test_paper_reference_numbers(name, macs_m, params_m, train_pflops):
    s = summary(build_model(name), (3, 32, 32), CIFAR10_TRAIN, EPOCHS)
    assert s["forward_macs"] / 1e6 == pytest.approx(macs_m, rel=1e-3)
    assert s["forward_flops"] == 2 * s["forward_macs"]
    assert s["params"] / 1e6 == pytest.approx(params_m, rel=5e-3)
    assert s["train_flops"] / 1e15 == pytest.approx(train_pflops, rel=1e-3)


def test_pruned_flops_are_lower_and_equal_the_cfg_built_model():
    dense = build_model("vgg16", width=0.25)
    for m in dense.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0, 1)
    pruned, report = prune_by_ratio(dense, 0.5)
    pruned_macs = forward_macs(pruned, (3, 32, 32))
    assert pruned_macs < forward_macs(dense, (3, 32, 32))
    from_cfg = flops_from_cfg("vgg16", report.cfg)
    assert from_cfg["forward_macs"] == pruned_macs and from_cfg["params"] == count_params(pruned)


def test_counting_leaves_the_model_as_it_was():
    model = build_model("vgg11", width=0.125).train()
    before = [p.clone() for p in model.parameters()]
    forward_macs(model, (3, 32, 32))
    assert model.training and all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("name, width", [("vgg16", 0.25), ("preresnet101", 0.25), ("resnet18", 0.125)])
def test_matches_torch_flop_counter(name, width):
    flop_counter = pytest.importorskip("torch.utils.flop_counter")
    if not hasattr(flop_counter.FlopCounterMode, "get_total_flops"):
        pytest.skip("FlopCounterMode.get_total_flops needs torch >= 2.1")
    model = build_model(name, width=width).eval()
    size = input_size(name) if name != "resnet18" else (3, 64, 64)
    counter = flop_counter.FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros((1,) + size))
    assert counter.get_total_flops() == 2 * forward_macs(model, size)
