"""8-bit block floating point: the grid, the rounding, the transform, the optimizer hooks, and
the eb-lf / eb-ll recipes end to end."""
import math
import os

import numpy as np
import pytest
import torch
import torch.nn as nn

from ebedge.training import lowp
from ebedge.errors import EbedgeError
from ebedge.prune.tickets import compare_tickets
from ebedge.prune.masks import mask_distance
from ebedge.run.rundir import RunDir
from ebedge.training.train import train_epoch

WL = 8
MAX_STEPS = 2 ** (WL - 1) - 1  # 127: sign + 7-bit magnitude


def grid_steps(q):
    """q / step per block along dim 0, with the step derived independently of ebedge.training.lowp:
    e = floor(log2(max|block|)) from math.frexp (exact), step = 2^(e - (wl - 2))."""
    flat = q.detach().double().reshape(q.shape[0] if q.dim() else 1, -1).numpy()
    out = []
    for row in flat:
        peak = np.abs(row).max()
        if peak == 0:
            out.append(row)
            continue
        e = math.frexp(peak)[1] - 1
        out.append(row / 2.0 ** (e - (WL - 2)))
    return np.stack(out)


def assert_on_grid(q):
    steps = grid_steps(q)
    assert np.array_equal(steps, np.round(steps)), "values off the 8-bit BFP grid"
    assert np.abs(steps).max() <= MAX_STEPS


@pytest.mark.parametrize("rounding", lowp.ROUNDINGS)
@pytest.mark.parametrize("shape", [(16, 3, 3, 3), (32, 10), (7,), ()])
def test_values_land_on_the_grid_per_block(rounding, shape):
    torch.manual_seed(0)
    x = torch.randn(shape) * torch.logspace(-3, 3, shape[0] if shape else 1).reshape(
        (-1,) + (1,) * (len(shape) - 1) if shape else ())
    q = lowp.block_quantize(x, WL, rounding)
    assert q.shape == x.shape
    assert_on_grid(q)
    assert torch.equal(lowp.block_quantize(q, WL, rounding), q)  # grid points stay put


def test_exponent_exact_at_powers_of_two_and_zero_blocks():
    just_below = float(np.nextafter(np.float32(1024.0), np.float32(0)))
    x = torch.tensor([[1024.0, 3.0], [just_below, 3.0], [0.0, 0.0], [1e-30, 0.0]])
    q = lowp.block_quantize(x, WL, "nearest")
    assert_on_grid(q[:2])
    assert q[0, 0] == 1024.0  # 2^e itself is exactly 64 steps
    assert q[1, 0] == 127 * 2.0 ** (9 - 6)  # rounds up to 128 steps, clamped to 127
    assert torch.equal(q[2], torch.zeros(2)) and torch.isfinite(q).all()


def test_stochastic_rounding_is_unbiased():
    # Each row [x, 1.0] is one block with e = 0, step = 2^-6; x = 0.3 sits 0.2 of a step above
    # 19 steps, so q(x) is 19 or 20 steps. The rounding error lies in an interval of length
    # `step`, so its variance is at most step^2 / 4 (Popoviciu) and sigma <= step / 2. The mean
    # of N independent roundings then has standard error <= step / (2 sqrt(N)); a 5-sigma bound
    # fails by chance with probability < 1e-6 (normal tail; N is large enough for the CLT).
    # Round-to-nearest would be off by 0.2 step, 25x that tolerance at N = 100000.
    torch.manual_seed(1234)
    n, step, x = 100000, 2.0 ** -6, 0.3
    blocks = torch.tensor([[x, 1.0]]).repeat(n, 1)
    q = lowp.block_quantize(blocks, WL, "stochastic")[:, 0].double()
    assert set(np.unique(np.round(q.numpy() / step)).tolist()) == {19.0, 20.0}
    tolerance = 5 * (step / 2) / math.sqrt(n)
    assert abs(float(q.mean()) - x) < tolerance


def test_nearest_rounding_is_deterministic_and_nearest():
    x = torch.randn(64, 50)
    a = lowp.block_quantize(x, WL, "nearest")
    torch.manual_seed(99)
    b = lowp.block_quantize(x, WL, "nearest")
    assert torch.equal(a, b)
    step = torch.tensor([2.0 ** (math.frexp(float(r.abs().max()))[1] - 1 - (WL - 2)) for r in x])
    assert ((a - x).abs() <= step[:, None] / 2).all()


def test_bad_format_is_refused():
    with pytest.raises(EbedgeError):
        lowp.block_quantize(torch.ones(2), WL, "truncate")
    with pytest.raises(EbedgeError):
        lowp.Quantizer(1)


def _tiny_net():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 4 * 4, 12), nn.ReLU(), nn.Linear(12, 5))


def test_forward_outputs_and_errors_are_quantized_but_not_the_logits():
    torch.manual_seed(0)
    net = _tiny_net()
    raw_grads, outputs, logits_in = {}, {}, {}

    def keep_raw_grad(name):  # registered before the transform: sees the unquantized output
        def hook(module, inputs, output):
            output.register_hook(lambda g: raw_grads.__setitem__(name, g))
        return hook

    for name in ("0", "4"):
        net._modules[name].register_forward_hook(keep_raw_grad(name))
    lowp.make_low_precision(net, WL, "stochastic")
    assert [n for n, _ in lowp.quantized_layers(net)] == ["0", "4"]
    for name in ("0", "4"):
        net._modules[name].register_forward_hook(
            lambda m, i, o, name=name: outputs.__setitem__(name, o))
    net._modules["6"].register_forward_hook(lambda m, i, o: logits_in.__setitem__("x", i[0]))
    out = net(torch.randn(6, 3, 4, 4))
    out.pow(2).sum().backward()
    for name in ("0", "4"):
        assert_on_grid(outputs[name])
        assert_on_grid(raw_grads[name])
        assert raw_grads[name].abs().sum() > 0
    head = net._modules["6"]
    assert torch.equal(out, nn.functional.linear(logits_in["x"], head.weight, head.bias))
    assert all(p.grad is not None for p in net.parameters())
    with pytest.raises(EbedgeError):
        lowp.make_low_precision(net)
    lowp.remove_low_precision(net)
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(net(x), nn.Sequential(*net.children())(x))  # full precision again


def test_optimizer_hooks_quantize_grads_weights_and_momentum():
    torch.manual_seed(0)
    net = _tiny_net()
    hooks = lowp.LowPrecisionOptimizerHooks(WL, "stochastic")
    with pytest.raises(EbedgeError):
        hooks.after_step(net)
    opt = hooks.bind(torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4))
    assert not all(np.array_equal(grid_steps(p), np.round(grid_steps(p)))
                   for p in net.parameters() if p.dim() > 1)  # init is off the grid
    grads = []
    data = [(torch.randn(8, 3, 4, 4), torch.randint(0, 5, (8,))) for _ in range(2)]

    def after_backward(model):
        hooks.after_backward(model)
        grads.extend(p.grad.clone() for p in model.parameters())

    train_epoch(net, data, opt, torch.device("cpu"), after_backward=after_backward,
                after_step=hooks.after_step)
    for g in grads:
        assert_on_grid(g)
    for p in net.parameters():
        assert_on_grid(p)
        assert_on_grid(opt.state[p]["momentum_buffer"])


def test_modelled_energy_scales_each_phase_by_its_bits():
    summary = {"lowp_bits": {"search": 8, "prune": 32, "retrain": 32},
               "energy": {"meter": "m", "rail": "total", "method": "measured",
                          "kj": {"search": 4.0, "prune": 1.0, "retrain": 8.0, "eval": 2.0,
                                 "train_total": 13.0, "run_total": 15.0},
                          "net_kj": {"search": None}}}
    modelled = lowp.modelled_energy(summary)
    assert modelled["method"] == "modelled"
    assert modelled["kj"] == {"search": 1.0, "prune": 1.0, "retrain": 8.0, "eval": 2.0,
                              "train_total": 10.0, "run_total": 12.0}
    assert modelled["net_kj"] == {"search": None}
    assert lowp.modelled_energy(dict(summary, energy=None)) is None
    assert lowp.bit_scaled_flops({"search": 320, "prune": 5, "retrain": 64},
                                 {"search": 8, "retrain": 8}) == 80 + 5 + 16


def _run(tmp_path, method):
    from ebedge.run.runner import execute
    out = str(tmp_path / method)
    summary = execute({"method": method, "model": "vgg16", "width": 0.125, "dataset": "synthetic",
                       "limit_train": 128, "limit_test": 64, "epochs": 3, "batch_size": 128,
                       "window": 2, "epsilon": 0.5, "device": "cpu", "meters": ["model"]},
                      out=out, quiet=True)
    return out, summary


def _retrained_convs(run_dir):
    state = RunDir(run_dir, os.path.basename(run_dir)).load_checkpoint()["model_state"]
    return [v for k, v in state.items() if v.dim() == 4]


@pytest.mark.slow
def test_lf_and_ll_run_end_to_end_and_lf_ticket_is_compared_with_ff(tmp_path):
    ff_dir, ff = _run(tmp_path, "eb")
    lf_dir, lf = _run(tmp_path, "eb-lf")
    ll_dir, ll = _run(tmp_path, "eb-ll")
    for s in (ff, lf, ll):
        assert s["status"] == "complete" and s["eb_epoch"] is not None
    assert lf["lowp_bits"] == {"search": 8, "prune": 32, "retrain": 32}
    assert ll["lowp_bits"]["retrain"] == 8
    for s in (lf, ll):
        bits = s["lowp_bits"]
        assert s["train_flops_total"] == (s["train_flops_search"] + s["train_flops_prune"]
                                          + s["train_flops_retrain"])
        assert s["train_flops_total_bitscaled"] == round(
            s["train_flops_search"] * bits["search"] / 32.0 + s["train_flops_prune"]
            + s["train_flops_retrain"] * bits["retrain"] / 32.0)
        assert s["modelled_energy"]["method"] == "modelled"
        assert s["modelled_energy"]["kj"]["search"] == pytest.approx(
            s["energy"]["kj"]["search"] / 4)
    assert "modelled_energy" not in ff
    # LL retrains on the 8-bit grid; LF retrains in FP32 (its weights leave the grid)
    for w in _retrained_convs(ll_dir):
        assert_on_grid(w)
    assert not all(np.array_equal(grid_steps(w), np.round(grid_steps(w)))
                   for w in _retrained_convs(lf_dir))

    report = compare_tickets(lf_dir, ff_dir)
    assert report["a"]["eb_epoch"] == lf["eb_epoch"] and report["b"]["eb_epoch"] == ff["eb_epoch"]
    masks_lf, masks_ff = np.load(os.path.join(lf_dir, "masks.npz")), np.load(
        os.path.join(ff_dir, "masks.npz"))
    key = "ratio_%g" % ff["prune_ratio"]
    mask_at = lambda m, epoch: m[key + "_masks"][list(m[key + "_epochs"]).index(epoch)]
    assert report["mask_distance"] == mask_distance(mask_at(masks_lf, report["a"]["mask_epoch"]),
                                                    mask_at(masks_ff, report["b"]["mask_epoch"]))
    assert 0.0 <= report["mask_distance"] <= 1.0
    assert compare_tickets(lf_dir, lf_dir)["mask_distance"] == 0.0
