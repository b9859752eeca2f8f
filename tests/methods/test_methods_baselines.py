"""The paper's baselines (NS, LT, SNIP, ThiNet, SFP) and the structured LT/SNIP variants end to end on a
tiny VGG16 and synthetic data."""
import copy
import csv
import os

import numpy as np
import pytest
import torch

from conftest import load_checkpoint
from ebedge.training import flops, stages
from ebedge.prune import weight_masks
from ebedge.methods import lt
from ebedge.run.context import MethodContext
from ebedge.prune.filters import kept_count
from ebedge.prune.filters import zero_weakest_filters
from ebedge.prune.thinet import greedy_removal
from ebedge.models import build_model, default_cfg
from ebedge.run.runner import execute

EPOCHS = 2
RATIO = 0.5
TINY = {"model": "vgg16", "width": 0.0625, "epochs": EPOCHS, "batch_size": 32, "limit_train": 128,
        "limit_test": 64, "device": "cpu", "prune_ratio": [RATIO]}
METHODS = ("ns", "lt", "snip", "thinet", "sfp", "lt-structured", "snip-channel")
STRUCTURED = ("ns", "thinet", "sfp", "lt-structured", "snip-channel")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_thread):
    """One run per method; LT's retrain stage is wrapped to capture the network it starts from,
    LT's magnitude scores are captured, and every epoch records its stage's BN L1 strength."""
    root = tmp_path_factory.mktemp("baselines")
    captured, sparsity = {}, []
    real_retrain = stages.retrain_stage
    real_scores = weight_masks.score_weights
    real_train_one = MethodContext._train_one

    def capturing_retrain(ctx, model, *args, **kwargs):
        captured[ctx.settings["method"]] = copy.deepcopy(model.state_dict())
        return real_retrain(ctx, model, *args, **kwargs)

    def capturing_scores(model, score):  # LT runs before SNIP, which scores weights too
        scores = real_scores(model, score)
        captured.setdefault("lt_scores", scores)
        return scores

    def recording_train_one(self, stage, epoch, last, model, optimizer, s, *rest):
        sparsity.append((self.settings["method"], stage, s))
        return real_train_one(self, stage, epoch, last, model, optimizer, s, *rest)

    patch = pytest.MonkeyPatch()
    patch.setattr(stages, "retrain_stage", capturing_retrain)  # every method's; LT's is kept
    patch.setattr(weight_masks, "score_weights", capturing_scores)
    patch.setattr(MethodContext, "_train_one", recording_train_one)
    out = {}
    try:
        for method in METHODS:
            path = str(root / method)
            out[method] = (path, execute(dict(TINY, method=method), out=path, quiet=True))
    finally:
        patch.undo()
    out["lt_retrain_start"] = captured["lt-structured"]
    out["lt_unstructured_start"] = captured["lt"]
    out["lt_scores"] = captured["lt_scores"]
    out["sparsity"] = sparsity
    return out


def _rows(path, name):
    with open(os.path.join(path, name)) as f:
        return list(csv.DictReader(f))


def _conv_widths(cfg):
    return [c for c in cfg if c != "M"]


@pytest.mark.parametrize("method", METHODS)
def test_runs_end_to_end_with_shared_fields_and_phases(runs, method):
    path, summary = runs[method]
    assert summary["status"] == "complete"
    for key in ("test_acc", "train_flops_search", "train_flops_retrain", "train_flops_total",
                "params_dense", "params_pruned", "forward_flops_dense", "forward_flops_pruned",
                "pruned_cfg", "kept_channels", "total_channels", "eb_epoch", "eb_epochs"):
        assert key in summary, key
    phases = set(r["phase"] for r in _rows(path, "phases.csv"))
    retrain_rows = [r for r in _rows(path, "epochs.csv") if r["phase"] == "retrain"]
    if method == "sfp":  # the paper does not fine-tune
        assert {"search", "prune", "eval"} <= phases and not retrain_rows
    else:  # the retrain is as long as the schedule
        assert {"search", "prune", "retrain", "eval"} <= phases
        assert len(retrain_rows) == EPOCHS
        assert summary["train_flops_retrain"] == \
            EPOCHS * 3 * summary["forward_flops_pruned"] * summary["n_train"]


@pytest.mark.parametrize("method", STRUCTURED)
def test_pruned_network_is_physically_smaller_and_counted_from_its_cfg(runs, method):
    path, summary = runs[method]
    cfg = summary["pruned_cfg"]
    rebuilt = build_model("vgg16", 10, cfg=cfg)
    assert summary["params_pruned"] == flops.count_params(rebuilt) < summary["params_dense"]
    assert summary["forward_flops_pruned"] == flops.forward_flops(rebuilt, (3, 32, 32)) \
        < summary["forward_flops_dense"]
    assert sum(_conv_widths(cfg)) == summary["kept_channels"]
    final = load_checkpoint(os.path.join(path, "checkpoints", "last.pt"))
    rebuilt.load_state_dict(final["model_state"])  # the trained network has exactly that shape


@pytest.mark.parametrize("method", ("ns", "lt-structured"))
def test_slimming_baselines_prune_by_the_final_global_bn_mask(runs, method):
    path, summary = runs[method]
    masks = np.load(os.path.join(path, "masks.npz"))
    assert list(masks["ratio_0.5_epochs"]) == list(range(1, EPOCHS + 1))  # never stopped early
    assert summary["ticket_epoch"] == EPOCHS and summary["eb_epoch"] is None
    last = masks["ratio_0.5_masks"][-1]
    widths = _conv_widths(default_cfg("vgg16", TINY["width"]))
    kept = [max(1, int(part.sum())) for part in np.split(last, np.cumsum(widths)[:-1])]
    assert _conv_widths(summary["pruned_cfg"]) == kept


@pytest.mark.parametrize("method", ("sfp", "thinet"))
def test_per_layer_methods_keep_the_same_fraction_in_every_layer(runs, method):
    _, summary = runs[method]
    widths = _conv_widths(default_cfg("vgg16", TINY["width"]))
    assert _conv_widths(summary["pruned_cfg"]) == [kept_count(w, RATIO) for w in widths]


def test_snip_channel_keeps_its_global_channel_mask(runs):
    path, summary = runs["snip-channel"]
    carry = load_checkpoint(os.path.join(path, "checkpoints", "last.pt"))["carry"]
    bits, size = carry["snip_mask"]
    keep = np.unpackbits(bits)[:size].astype(bool)
    assert size == summary["total_channels"] and keep.sum() == size - int(size * RATIO)
    widths = _conv_widths(default_cfg("vgg16", TINY["width"]))
    kept = [max(1, int(part.sum())) for part in np.split(keep, np.cumsum(widths)[:-1])]
    assert _conv_widths(summary["pruned_cfg"]) == kept
    assert summary["train_flops_search"] == 3 * summary["forward_flops_dense"] * TINY["batch_size"]


def test_structured_lottery_ticket_retrains_from_the_initial_weights_of_the_kept_channels(runs):
    path, summary = runs["lt-structured"]
    initial = torch.load(os.path.join(path, lt.INITIAL_FILE), map_location="cpu")
    final_search_mask = np.load(os.path.join(path, "masks.npz"))["ratio_0.5_masks"][-1]
    start = runs["lt_retrain_start"]
    widths = _conv_widths(default_cfg("vgg16", TINY["width"]))
    keeps = np.split(final_search_mask, np.cumsum(widths)[:-1])
    conv_keys = [k for k in initial if k.startswith("features.") and initial[k].dim() == 4]
    previous = torch.arange(3)
    for key, keep in zip(conv_keys, keeps):
        kept = torch.as_tensor(np.flatnonzero(keep))
        expected = initial[key].index_select(0, kept).index_select(1, previous)
        assert torch.equal(start[key].cpu(), expected), key
        bn = "features.%d" % (int(key.split(".")[1]) + 1)
        assert torch.equal(start[bn + ".weight"].cpu(), initial[bn + ".weight"][kept])
        previous = kept
    assert torch.equal(start["classifier.weight"].cpu(),
                       initial["classifier.weight"].index_select(1, previous))
    assert summary["retrain"] == "rewind"


@pytest.mark.parametrize("method", ("lt", "snip"))
def test_unstructured_methods_keep_the_dense_shape_and_count_dense_flops(runs, method):
    path, summary = runs[method]
    assert summary["unstructured"] is True
    assert summary["params_pruned"] == summary["params_dense"]
    assert summary["forward_flops_pruned"] == summary["forward_flops_dense"]
    total = summary["total_weights"]
    assert summary["kept_weights"] == total - int(total * RATIO)
    state = load_checkpoint(os.path.join(path, "checkpoints", "last.pt"))["model_state"]
    weights = [v for k, v in state.items() if v.dim() > 1]
    assert sum(v.numel() for v in weights) == total
    assert sum(int((w == 0).sum()) for w in weights) >= total - summary["kept_weights"]


def test_lottery_ticket_rewinds_the_largest_trained_weights_to_their_initial_values(runs):
    path, summary = runs["lt"]
    initial = torch.load(os.path.join(path, lt.INITIAL_FILE), map_location="cpu")
    start = runs["lt_unstructured_start"]
    scores = runs["lt_scores"]
    keep = torch.zeros(scores.numel(), dtype=torch.bool)
    keep[torch.argsort(scores, descending=True)[:summary["kept_weights"]]] = True
    offset = 0
    for key in [k for k in initial if initial[k].dim() > 1]:
        n = initial[key].numel()
        part = keep[offset:offset + n].reshape(initial[key].shape)
        offset += n
        assert torch.equal(start[key].cpu(), torch.where(part, initial[key], torch.zeros(()))), key
    assert offset == scores.numel() and summary["retrain"] == "rewind"


@pytest.mark.parametrize("method", ("ns", "lt", "snip", "thinet", "lt-structured", "snip-channel"))
def test_baselines_retrain_without_the_bn_sparsity_term(runs, method):
    stages = [(stage, s) for m, stage, s in runs["sparsity"] if m == method]
    assert [s for stage, s in stages if stage == "retrain"] == [0.0] * EPOCHS
    slimming = method in ("ns", "lt-structured")  # their search is the slimming search
    assert all((s > 0) == slimming for stage, s in stages if stage == "search")


def test_greedy_removal_prefers_channels_that_cancel():
    torch.manual_seed(0)
    a = torch.randn(50)
    small = 0.1 * torch.randn(50, 2)
    z = torch.stack([a, 5 * torch.randn(50), -a, small[:, 0], small[:, 1]], dim=1)
    assert sorted(greedy_removal(z, 1)) in ([3], [4])
    assert sorted(greedy_removal(z, 4)) == [0, 2, 3, 4]  # a and -a cancel; the large one stays


def test_sfp_zeroes_the_weakest_filters_of_every_layer_and_nothing_else():
    model = build_model("vgg16", 10, width=0.125)
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    norms = [c.weight.detach().reshape(c.out_channels, -1).norm(dim=1).clone() for c in convs]
    bns = [copy.deepcopy(m.state_dict()) for m in model.features if isinstance(m, torch.nn.BatchNorm2d)]
    zero_weakest_filters(model, RATIO)
    for conv, before in zip(convs, norms):
        zeroed = conv.weight.detach().reshape(conv.out_channels, -1).abs().sum(1) == 0
        assert int(zeroed.sum()) == conv.out_channels - kept_count(conv.out_channels, RATIO)
        assert before[zeroed].max() <= before[~zeroed].min()
    after = [m.state_dict() for m in model.features if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(torch.equal(a[k], b[k]) for a, b in zip(after, bns) for k in a)


def test_sfp_zeroed_filters_keep_learning():
    """Soft pruning: a zeroed filter gets a non-zero gradient and comes back after a step (where
    its BN shift lets ReLU pass gradient, as after some training: at init every shift is 0)."""
    torch.manual_seed(0)
    model = build_model("vgg16", 10, width=0.125)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.bias.uniform_(0.1, 0.5)
    zero_weakest_filters(model, RATIO)
    conv = model.features[0]
    zeroed = conv.weight.detach().reshape(conv.out_channels, -1).abs().sum(1) == 0
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    assert conv.weight.grad[zeroed].abs().sum() > 0
    optimizer.step()
    assert conv.weight.detach()[zeroed].abs().sum() > 0
