"""The paper's experiments as run settings: EB Train's retrain variants, fixed draw epochs, runs
without a ticket, learning-rate schedules, ThiNet on residual nets, and the EB epoch of real runs
recomputed from their masks.npz by a second, deliberately simple implementation of the rule."""
import csv
import json
import os

import numpy as np
import pytest

from ebedge.errors import EbedgeError
from ebedge.training import stages
from ebedge.run.runner import execute
from ebedge.config.settings import resolve

TINY = {"model": "vgg11", "width": 0.0625, "batch_size": 32, "limit_train": 128, "limit_test": 64,
        "device": "cpu", "prune_ratio": [0.5]}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _rows(path, name):
    with open(os.path.join(path, name), newline="") as f:
        return list(csv.DictReader(f))


def _phase_epochs(path, phase):
    return [r for r in _rows(path, "epochs.csv") if r["phase"] == phase]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_thread):
    """EB runs at several seeds, ratios and epsilons (some fire, one never does)."""
    root = tmp_path_factory.mktemp("paper")
    cells = {
        "eb-s1": dict(TINY, method="eb", epochs=8, epsilon=0.5, seed=1),
        "eb-s2": dict(TINY, method="eb", epochs=8, epsilon=0.3, seed=2, prune_ratio=[0.3, 0.7]),
        "reinit": dict(TINY, method="eb-reinit", epochs=8, epsilon=0.5, seed=1),
        "reinit-rem": dict(TINY, method="eb-reinit", epochs=8, epsilon=0.5, seed=1,
                           reinit_epochs="remaining"),
        "study": dict(TINY, method="eb", epochs=8, epsilon=0.2, seed=3, keep_searching=True),
        "never": dict(TINY, method="eb", epochs=6, epsilon=1e-9, seed=1),
        "draw3": dict(TINY, method="eb", epochs=6, draw_at=3, epsilon=0.5,
                      lr_schedule="0:0.05,4:0.005", retrain_lr_schedule="0:0.2,5:0.02"),
    }
    out = {}
    for name, settings in cells.items():
        path = str(root / name)
        out[name] = (path, execute(settings, out=path, quiet=True))
    return out


def simple_eb_epoch(epochs, masks, epsilon, window=5):
    """The paper's rule, written out plainly: the first epoch whose mask differs from each of the
    previous window - 1 masks in at most a fraction epsilon of the channels."""
    for t in range(window - 1, len(masks)):
        if all(np.mean(masks[t] != masks[t - k]) <= epsilon for k in range(1, window)):
            return int(epochs[t])
    return None


@pytest.mark.parametrize("name", ["eb-s1", "eb-s2", "reinit", "study", "never", "draw3"])
def test_eb_epoch_recomputed_from_masks_npz(runs, name):
    path, summary = runs[name]
    settings = json.load(open(os.path.join(path, "config.json")))["settings"]
    with np.load(os.path.join(path, "masks.npz")) as npz:
        for ratio in settings["prune_ratio"]:
            key = "ratio_%g" % ratio
            expected = simple_eb_epoch(npz[key + "_epochs"], npz[key + "_masks"], settings["epsilon"])
            assert summary["eb_epochs"]["%g" % ratio] == expected
    assert summary["eb_epoch"] == summary["eb_epochs"]["%g" % settings["prune_ratio"][0]]


def test_the_checked_runs_cover_tickets_and_no_ticket(runs):
    found = [runs[n][1]["eb_epoch"] for n in ("eb-s1", "eb-s2", "reinit", "study")]
    assert all(e is not None for e in found) and len(set(found)) >= 2
    assert runs["never"][1]["eb_epoch"] is None


def test_fine_tuning_retrains_the_remaining_epochs(runs):
    path, summary = runs["eb-s1"]
    assert len(_phase_epochs(path, "retrain")) == 8 - summary["eb_epoch"]
    assert summary["retrain"] == "finetune"


def test_reinit_retrains_the_full_schedule_by_default(runs):
    path, summary = runs["reinit"]
    retrain = _phase_epochs(path, "retrain")
    assert summary["retrain"] == "reinit" and summary["eb_epoch"] is not None
    assert [int(r["epoch"]) for r in retrain] == list(range(8))  # a fresh 8-epoch schedule
    assert summary["train_flops_retrain"] == 8 * 3 * summary["forward_flops_pruned"] * 128
    short_path, short = runs["reinit-rem"]
    assert len(_phase_epochs(short_path, "retrain")) == 8 - short["eb_epoch"]
    assert short["train_flops_total"] < summary["train_flops_total"]


def test_draw_at_searches_exactly_that_long_then_retrains_the_rest(runs):
    path, summary = runs["draw3"]
    search, retrain = _phase_epochs(path, "search"), _phase_epochs(path, "retrain")
    assert len(search) == 3 and [int(r["epoch"]) for r in retrain] == [3, 4, 5]
    assert summary["ticket_epoch"] == 3 and summary["draw_at"] == 3
    assert summary["no_ticket"] is False
    # the search's own schedule, the retrain's own schedule at the same absolute epochs
    assert [float(r["lr"]) for r in search] == pytest.approx([0.05, 0.05, 0.05])
    assert [float(r["lr"]) for r in retrain] == pytest.approx([0.2, 0.2, 0.02])


def test_no_ticket_is_said_and_the_pruned_network_is_evaluated(tmp_path, one_thread):
    seen = []
    real = stages.evaluate

    def recording(model, loader, device):
        result = real(model, loader, device)
        seen.append((list(model.cfg), result.accuracy))
        return result

    patch = pytest.MonkeyPatch()
    patch.setattr(stages, "evaluate", recording)
    try:
        out = str(tmp_path / "run")
        summary = execute(dict(TINY, method="eb", epochs=5, epsilon=1e-9), out=out, quiet=True)
    finally:
        patch.undo()
    assert summary["eb_epoch"] is None and summary["no_ticket"] is True
    assert not _phase_epochs(out, "retrain")
    assert seen and seen[-1][0] == summary["pruned_cfg"]  # the pruned network, not the dense one
    assert summary["test_acc"] == seen[-1][1]
    # one evaluation of the pruned network: it is the best of its own stage too
    assert summary["best_test_acc"] == summary["test_acc"] and summary["accuracy_stage"] == "pruned"
    phases = [r["phase"] for r in _rows(out, "phases.csv")]
    assert phases.index("eval", phases.index("prune")) > phases.index("prune")
    saved = json.load(open(os.path.join(out, "summary.json")))
    assert [f for f in saved["flags"] if f.startswith("no ticket:")], saved["flags"]


def test_best_accuracy_is_the_retrains_and_top5_is_reported(runs):
    """best_test_acc is the retrain's best epoch (not the search's), test_acc its last epoch."""
    for name in ("eb-s1", "reinit", "draw3"):
        path, summary = runs[name]
        retrain = [float(r["test_acc"]) for r in _phase_epochs(path, "retrain")]
        search = [float(r["test_acc"]) for r in _phase_epochs(path, "search")]
        assert summary["accuracy_stage"] == "retrain"
        assert summary["test_acc"] == pytest.approx(retrain[-1], abs=1e-6)
        assert summary["best_test_acc"] == pytest.approx(max(retrain), abs=1e-6)
        if max(search) > max(retrain):  # the search's epochs do not count
            assert summary["best_test_acc"] < max(search)
        assert summary["test_acc"] <= summary["test_acc_top5"] <= 1.0
        assert summary["best_test_acc"] <= summary["best_test_acc_top5"] <= 1.0
        assert not [f for f in json.load(open(os.path.join(path, "summary.json")))["flags"]
                    if f.startswith("no ticket:")]


def test_milestones_and_gamma_shape_the_schedule(tmp_path, one_thread):
    out = str(tmp_path / "run")
    execute(dict(TINY, method="dense", epochs=5, lr=0.4, milestones="2,4", lr_gamma=0.5),
            out=out, quiet=True)
    assert [float(r["lr"]) for r in _phase_epochs(out, "search")] == \
        pytest.approx([0.4, 0.4, 0.2, 0.2, 0.1])


@pytest.mark.parametrize("model,dataset,expected", [
    ("vgg16", "cifar10", [0.1] * 80 + [0.01] * 40 + [0.001] * 40),
    ("resnet18", "imagefolder", [0.1] * 30 + [0.01] * 30 + [0.001] * 30)])
def test_default_milestones_are_the_papers_per_dataset(model, dataset, expected):
    from ebedge.config.schedules import schedule_for
    s = resolve({"model": model, "dataset": dataset, "epochs": len(expected)})
    assert [schedule_for(s).lr_at(e) for e in range(len(expected))] == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["10:0.1", "0:0.1,0:0.01", "0:-1", "0:x", "0.1", "0:0.1,50"])
def test_bad_lr_schedules_are_refused_in_one_line(bad):
    with pytest.raises(EbedgeError) as err:
        resolve({"lr_schedule": bad})
    assert "lr_schedule" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("bad", [{"draw_at": 160}, {"draw_at": 0}, {"milestones": "60,30"},
                                 {"reinit_epochs": "half"}, {"lr_gamma": 0}])
def test_bad_paper_settings_are_refused(bad):
    with pytest.raises(EbedgeError):
        resolve(bad)


def test_draw_at_is_refused_for_methods_that_draw_no_ticket(tmp_path):
    out = str(tmp_path / "run")
    with pytest.raises(EbedgeError) as err:
        execute(dict(TINY, method="ns", epochs=4, draw_at=2), out=out, quiet=True)
    assert "draw_at" in str(err.value) and not os.path.exists(out)


@pytest.mark.parametrize("model", ["preresnet101", "resnet50"])
def test_thinet_prunes_the_inner_block_layers_of_residual_nets(tmp_path, one_thread, model):
    from ebedge.prune.filters import kept_count
    from ebedge.prune.thinet import consumers
    from ebedge.models import build_model
    from ebedge.prune.masks import bn_layers
    width = 0.125 if model == "preresnet101" else 0.0625
    out = str(tmp_path / model)
    settings = dict(TINY, model=model, width=width, method="thinet", epochs=1, limit_train=16,
                    limit_test=8, batch_size=8)
    summary = execute(settings, out=out, quiet=True)
    assert summary["status"] == "complete"
    dense = build_model(model, 10, width=width)
    widths = [bn.num_features for _, bn in bn_layers(dense)]
    inside = [c is not None for c in consumers(dense)]
    assert any(inside) and not all(inside)  # trunk BNs (block inputs, stem, final) stay whole
    pruned = build_model(model, 10, cfg=summary["pruned_cfg"], width=width)
    kept = [bn.num_features for _, bn in bn_layers(pruned)]
    if model == "preresnet101":  # bn1 is selected, not narrowed: count what the selection keeps
        kept = [len(dict(pruned.named_modules())[n.rpartition(".")[0] + ".select" if "." in n
                                                  else "select"].indices)
                if not c else k for (n, _), k, c in zip(bn_layers(pruned), kept, inside)]
    assert kept == [kept_count(w, 0.5) if c else w for w, c in zip(widths, inside)]


def test_the_retrain_trains_with_its_own_batch_size_and_l1_strength(tmp_path, one_thread):
    """The official ImageNet retrains: ResNet-18 at batch 128, ResNet-50 without the L1 term."""
    from ebedge.run import context
    sizes, strengths = [], []
    real = context.train_epoch

    def recording(model, batches, *args, **kwargs):
        sizes.append(len(next(iter(batches))[0]))
        strengths.append(kwargs["sparsity"])
        return real(model, batches, *args, **kwargs)

    patch = pytest.MonkeyPatch()
    patch.setattr(context, "train_epoch", recording)
    try:
        summary = execute(dict(TINY, method="eb", epochs=4, draw_at=2, retrain_batch_size=64, retrain_sparsity=0),
                          out=str(tmp_path / "run"), quiet=True)
    finally:
        patch.undo()
    assert sizes == [32, 32, 64, 64]  # search at batch_size, retrain at retrain_batch_size
    assert strengths == [1e-4, 1e-4, 0.0, 0.0]
    # a training FLOP does not depend on the batch: the retrain's epochs cost the pruned network's
    assert summary["train_flops_retrain"] == 2 * 3 * summary["forward_flops_pruned"] * 128
