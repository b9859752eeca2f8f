"""The catalog: a method is one module. The toy method below is registered here and nowhere
else, and it is a valid setting, runs end to end, is priced, planned by suites, checked before a
run and named in reports, in the catalog's order."""
import subprocess
import sys

import pytest

from ebedge.config import catalog
from ebedge.config.schedules import method_epochs
from ebedge.config.settings import resolve
from ebedge.errors import EbedgeError
from ebedge.report.answer import sentences
from ebedge.run.suite import cell_epochs, load_suite

TINY = {"model": "vgg11", "width": 0.0625, "epochs": 3, "batch_size": 32, "limit_train": 64,
        "limit_test": 32, "device": "cpu", "prune_ratio": [0.5]}


def _toy_recipe(ctx):
    """Plain training up to draw_at, then half the filters of every layer by L1 norm, then the
    rest of the schedule: a method ebedge does not ship."""
    import torch
    from ebedge.prune.filters import channel_scores, per_layer_mask
    from ebedge.training.stages import Search, prune_stage, pruned_fields, retrain_stage
    s = ctx.settings
    search = Search(ctx, draw_at=s.draw_at, sparsity=0.0)
    trained = search.run()
    mask = per_layer_mask(channel_scores(trained, torch.abs), s.prune_ratio[0])
    pruned = prune_stage(ctx, trained, mask)
    retrain_stage(ctx, pruned, s.draw_at, sparsity=0.0)
    return ctx.result(eb_epoch=None, eb_epochs=search.eb_epochs(), searched_epochs=s.draw_at,
                      ticket_epoch=s.draw_at, draw_at=s.draw_at, **pruned_fields(ctx))


@pytest.fixture
def toy(monkeypatch):
    """The toy method registered for one test (the catalog as it was afterwards)."""
    monkeypatch.setattr(catalog, "_registered", dict((m.name, m) for m in catalog.methods()))
    catalog.method("toy", "toy L1 pruning", lambda n, e: (e, n - e, "E dense + (N - E) pruned"),
                   draws_ticket=True, mask_kind="per-layer filters", order=75)(_toy_recipe)
    return catalog.get("toy")


def test_listing_methods_loads_no_torch():
    code = ("import sys; from ebedge.config import catalog; names = catalog.method_names(); "
            "assert 'eb' in names and 'dense' in names, names; "
            "assert 'torch' not in sys.modules, 'torch loaded'")
    done = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT)
    assert done.returncode == 0, done.stdout.decode()


def test_an_unregistered_method_is_refused_in_one_line_naming_those_there_are():
    with pytest.raises(EbedgeError) as err:
        resolve({"method": "toy"})
    assert "unknown method 'toy'" in str(err.value) and "eb-reinit" in str(err.value)
    with pytest.raises(ValueError):
        method_epochs("toy", 10, 4)


def test_a_registered_method_is_a_setting_priced_and_planned(toy, tmp_path):
    assert resolve({"method": "toy", "draw_at": 2}).method == "toy"
    assert method_epochs("toy", 10, 4) == (4, 6, "E dense + (N - E) pruned")
    with pytest.raises(ValueError):  # it draws a ticket: pricing needs the epoch
        method_epochs("toy", 10)
    assert cell_epochs({"method": "toy", "epochs": 8, "draw_at": 2}) == 8
    suite = tmp_path / "s.toml"
    suite.write_text('[defaults]\nepochs = 4\n[grid]\nmethods = ["toy", "ns"]\n'
                     'draw_ats = [1, 2]\n')
    draws = sorted((c.settings["method"], c.settings["draw_at"])
                   for c in load_suite(str(suite)).cells())
    assert draws == [("ns", None), ("toy", 1), ("toy", 2)]  # draw_ats: methods that draw only


def test_a_registered_method_is_checked_run_and_named(toy, tmp_path, one_thread):
    from ebedge.run.precheck import check_cell
    from ebedge.run.runner import execute
    settings = dict(TINY, method="toy", draw_at=1)
    assert "->" in check_cell(resolve(settings))  # its mask kind prunes per layer
    with pytest.raises(EbedgeError):  # only methods that draw a ticket take draw_at
        check_cell(resolve(dict(settings, method="ns")))
    summary = execute(settings, out=str(tmp_path / "toy"), quiet=True)
    assert summary["status"] == "complete" and summary["method"] == "toy"
    assert summary["params_pruned"] < summary["params_dense"]
    assert summary["searched_epochs"] == 1
    dense = dict(summary, method="dense", params_pruned=summary["params_dense"])
    said = " ".join(sentences([summary, dense]))
    assert "toy L1 pruning" in said


@pytest.mark.host  # the report's tables (pandas)
def test_report_tables_place_a_registered_method_in_catalog_order(toy):
    from ebedge.report.runs import _method_rank, is_eb_method
    assert is_eb_method("toy")  # it draws a ticket: an EB-style method in the report's tables
    ranks = sorted(["eb", "toy", "unknown", "snip-channel", "dense"], key=_method_rank)
    assert ranks == ["dense", "snip-channel", "toy", "eb", "unknown"]


def test_registration_is_checked(toy):
    with pytest.raises(ValueError):
        catalog.method("bad", "bad", lambda n, e: (n, 0, ""), mask_kind="diagonal")(_toy_recipe)

    def elsewhere(ctx):
        return {}
    elsewhere.__module__ = "somewhere.else"
    with pytest.raises(ValueError) as err:  # one name, two modules: which would run?
        catalog.method("toy", "again", lambda n, e: (n, 0, ""))(elsewhere)
    assert "registered by" in str(err.value)
