"""Suite files: validation with file/line/key, grid expansion, resume, and `ebedge bench`."""
import glob
import json
import os
import sys
import types

import pytest

from conftest import ROOT
from click.testing import CliRunner

from ebedge.errors import EbedgeError
from ebedge.run.suite import load_suite, run_suite


GOOD = """\
name = "t"
description = "a test suite"

[defaults]
model = "vgg11"
width = 0.125
epochs = 2
seed = 10

[grid]
methods = ["dense", "eb", "ns"]
prune_ratios = [0.3, 0.5]
repeats = 2
"""


def write(tmp_path, text, name="s.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def error_of(path):
    with pytest.raises(EbedgeError) as info:
        load_suite(path)
    return str(info.value)


def test_unknown_key_is_rejected_with_key_and_line(tmp_path):
    path = write(tmp_path, GOOD.replace("epochs = 2", "epochs = 2\nlearning_rate = 0.1"))
    message = error_of(path)
    assert "learning_rate" in message
    assert "%s:8:" % path in message  # the line after "epochs = 2" (line 7)


def test_unknown_grid_key_is_rejected(tmp_path):
    message = error_of(write(tmp_path, GOOD + "ratios = [0.1]\n"))
    assert "grid.ratios" in message and ":14:" in message


def test_impossible_ratio_is_rejected_naming_key(tmp_path):
    message = error_of(write(tmp_path, GOOD.replace("[0.3, 0.5]", "[0.3, 1.5]")))
    assert "grid.prune_ratios" in message and "1.5" in message and ":12:" in message


def test_impossible_default_is_rejected_naming_key(tmp_path):
    message = error_of(write(tmp_path, GOOD.replace("epochs = 2", "epochs = 0")))
    assert "defaults.epochs" in message and ":7:" in message


def test_wrong_type_is_rejected_naming_key(tmp_path):
    message = error_of(write(tmp_path, GOOD.replace("epochs = 2", 'epochs = "ten"')))
    assert "defaults.epochs" in message and "ten" in message and ":7:" in message


def test_unknown_method_in_grid_is_rejected(tmp_path):
    message = error_of(write(tmp_path, GOOD.replace('"ns"', '"magic"')))
    assert "grid.methods" in message and "magic" in message


def test_bad_toml_reports_line(tmp_path):
    message = error_of(write(tmp_path, GOOD.replace("epochs = 2", "epochs = = 2")))
    assert "invalid TOML" in message and ":7:" in message


def test_seeds_must_match_repeats(tmp_path):
    message = error_of(write(tmp_path, GOOD + "seeds = [1]\n"))
    assert "grid.seeds" in message


def test_grid_expansion(tmp_path):
    cells = load_suite(write(tmp_path, GOOD)).cells()
    # per repeat: dense once + eb and ns at two ratios each
    assert len(cells) == 2 * (1 + 2 * 2)
    ids = [c.cell_id for c in cells]
    assert len(set(ids)) == len(ids)
    assert "vgg11-synthetic-eb-p0.5-r1" in ids and "vgg11-synthetic-dense-r0" in ids
    by_id = dict(cells)
    eb = by_id["vgg11-synthetic-eb-p0.3-r1"]
    assert eb["prune_ratio"] == [0.3] and eb["method"] == "eb" and eb["width"] == 0.125
    assert eb["repeat"] == 1 and eb["seed"] == 11  # defaults.seed + repeat
    assert by_id["vgg11-synthetic-ns-p0.5-r0"]["seed"] == 10
    # repeat-major order: every repeat-0 cell before any repeat-1 cell
    repeats = [c.settings["repeat"] for c in cells]
    assert repeats == sorted(repeats)


def test_explicit_seeds_and_extra_cells(tmp_path):
    text = GOOD + "seeds = [7, 9]\n\n[[cells]]\nid = \"special\"\nmethod = \"eb\"\nretrain = \"reinit\"\n"
    by_id = dict(load_suite(write(tmp_path, text)).cells())
    assert by_id["vgg11-synthetic-dense-r1"]["seed"] == 9
    assert by_id["special"]["retrain"] == "reinit" and by_id["special"]["model"] == "vgg11"


def test_duplicate_cell_ids_are_rejected(tmp_path):
    text = GOOD + "\n[[cells]]\nmethod = \"dense\"\n"
    assert "vgg11-synthetic-dense-r0" in error_of(write(tmp_path, text))


def test_multiple_grids(tmp_path):
    text = ('[defaults]\nepochs = 1\n\n[[grid]]\nmodels = ["vgg11"]\nmethods = ["eb"]\nprune_ratios = [0.1]\n\n'
            '[[grid]]\nmodels = ["vgg16"]\nmethods = ["eb"]\nprune_ratios = [0.3, 0.5]\n')
    ids = [c.cell_id for c in load_suite(write(tmp_path, text)).cells()]
    assert ids == ["vgg11-synthetic-eb-p0.1-r0", "vgg16-synthetic-eb-p0.3-r0", "vgg16-synthetic-eb-p0.5-r0"]


def test_error_in_second_grid_points_at_its_line(tmp_path):
    text = ('[[grid]]\nmethods = ["eb"]\n\n[[grid]]\nmethods = ["eb"]\nprune_ratios = [2]\n')
    message = error_of(write(tmp_path, text))
    assert ":6:" in message and "prune_ratios" in message


EXPECTED_CELLS = {"quick.toml": 2, "cifar10-subset-cpu.toml": 3, "fig1-subset-cpu.toml": 13,
                  "paper-table2-cifar10.toml": 50,
                  "paper-table2-cifar100.toml": 50, "paper-table3-imagenet.toml": 13,
                  "paper-table1.toml": 32, "paper-table4.toml": 32, "paper-fig1.toml": 408,
                  "paper-fig2.toml": 44, "paper-fig3.toml": 2, "paper-fig5.toml": 136}


@pytest.mark.parametrize("name", ["paper-fig1.toml", "paper-fig5.toml"])
def test_fig1_and_fig5_panels_are_the_papers(name):
    """VGG16 / CIFAR-100 at p = 0.1/0.3/0.5, the other panels at 0.3/0.5/0.7; draws from epoch 1 to 140."""
    cells = load_suite(os.path.join(ROOT, "benchmarks", name)).cells()
    panels = {}
    for c in cells:
        s = c.settings
        if s["method"] == "eb":
            panel = panels.setdefault((s["model"], s["dataset"]), (set(), set()))
            panel[0].add(s["prune_ratio"][0])
            panel[1].add(s["draw_at"])
    standard = ({0.3, 0.5, 0.7}, {1, 5, 10, 20, 40, 60, 80, 100, 120, 140})
    assert panels == {("vgg16", "cifar10"): standard, ("vgg16", "cifar100"): ({0.1, 0.3, 0.5}, standard[1]),
                      ("preresnet101", "cifar10"): standard, ("preresnet101", "cifar100"): standard}
    assert sum(1 for c in cells if c.settings["method"] == "ns") == 12 * (3 if name == "paper-fig1.toml" else 1)


def test_fig3_detects_at_the_papers_four_ratios():
    cells = load_suite(os.path.join(ROOT, "benchmarks", "paper-fig3.toml")).cells()
    assert [c.settings["prune_ratio"] for c in cells] == [[0.2, 0.4, 0.6, 0.8]] * 2


def test_table3_retrains_as_the_official_scripts():
    cells = {c.cell_id: c.settings for c in load_suite(os.path.join(ROOT, "benchmarks",
                                                                      "paper-table3-imagenet.toml")).cells()}
    for cell_id, s in cells.items():
        r18_retrain = s["model"] == "resnet18" and s["method"] in ("eb", "ns")
        assert s["retrain_batch_size"] == (128 if r18_retrain else None), cell_id
        assert s["retrain_sparsity"] == (0.0 if s["model"] == "resnet50" and s["method"] == "eb" else None), cell_id
        assert s["batch_size"] == 256


def test_a_grids_settings_override_the_defaults_for_its_cells_only(tmp_path):
    text = ('[defaults]\nepochs = 20\n\n[[grid]]\nmethods = ["eb"]\nsettings = {epochs = 8, lr = 0.5}\n\n'
            '[[grid]]\nmethods = ["ns"]\n')
    cells = {c.settings["method"]: c.settings for c in load_suite(write(tmp_path, text)).cells()}
    assert (cells["eb"]["epochs"], cells["eb"]["lr"]) == (8, 0.5)
    assert (cells["ns"]["epochs"], cells["ns"]["lr"]) == (20, 0.1)
    bad = '[[grid]]\nmethods = ["eb"]\nsettings = {epochs = -1}\n'
    assert "epochs" in error_of(write(tmp_path, bad))


def test_table1_searches_under_both_schedules_and_retrains_under_the_standard_one():
    cells = load_suite(os.path.join(ROOT, "benchmarks", "paper-table1.toml")).cells()
    eb = [c.settings for c in cells if c.settings["method"] == "eb"]
    assert sorted(set(s["draw_at"] for s in eb)) == [10, 20, 40]
    assert set(s["lr_schedule"] for s in eb) == {"0:0.01,100:0.001", "0:0.1,80:0.01,120:0.001"}
    assert all(c.settings["retrain_lr_schedule"] == "0:0.1,80:0.01,120:0.001" for c in cells)
    final = [c for c in cells if c.settings["method"] == "ns"]
    assert len(final) == 8 and all(c.settings["draw_at"] is None for c in final)
    assert len(set(c.cell_id for c in cells)) == len(cells)


def test_every_shipped_suite_loads():
    shipped = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "benchmarks", "*.toml")))
    assert shipped == sorted(EXPECTED_CELLS)
    for name, count in EXPECTED_CELLS.items():
        suite = load_suite(os.path.join(ROOT, "benchmarks", name))
        assert len(suite.cells()) == count, name
        assert suite.name == name[:-len(".toml")]


def test_quick_suite_is_eb_and_dense():
    cells = load_suite(os.path.join(ROOT, "benchmarks", "quick.toml")).cells()
    assert {c.settings["method"] for c in cells} == {"eb", "dense"}
    assert all(c.settings["dataset"] == "synthetic" for c in cells)


class FakeExecute(object):
    """Stands in for ebedge.run.runner.execute: records calls, writes summary.json, can stop mid-suite."""

    def __init__(self, interrupt_at=None):
        self.calls = []
        self.interrupt_at = interrupt_at

    def __call__(self, settings, out, resume=False, overwrite=False, quiet=False):
        self.calls.append((os.path.basename(out), resume))
        if not os.path.isdir(out):
            os.makedirs(out)
        if len(self.calls) == self.interrupt_at:  # it got going (config.json), then Ctrl-C
            for name, data in (("config.json", {"settings": settings}),
                               ("summary.json", {"status": "running"})):
                with open(os.path.join(out, name), "w") as handle:
                    json.dump(data, handle)
            raise KeyboardInterrupt()
        summary = {"status": "complete", "method": settings["method"]}
        with open(os.path.join(out, "summary.json"), "w") as handle:
            json.dump(summary, handle)
        return summary


def test_run_suite_resumes_interrupted_cells(tmp_path):
    suite = load_suite(write(tmp_path, GOOD))
    ids = [c.cell_id for c in suite.cells()]
    out = str(tmp_path / "out")
    first = FakeExecute(interrupt_at=3)
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, out, first, progress=lambda line: None)
    assert first.calls == [(ids[0], False), (ids[1], False), (ids[2], False)]

    second = FakeExecute()
    results = run_suite(suite, out, second, progress=lambda line: None)
    # the two complete cells are skipped, the interrupted one resumed, the rest run fresh
    assert second.calls == [(ids[2], True)] + [(i, False) for i in ids[3:]]
    assert results[:2] == [(ids[0], "skipped"), (ids[1], "skipped")]
    assert all(status == "complete" for _, status in results[2:])


def test_run_suite_reports_failed_cell_and_goes_on(tmp_path):
    suite = load_suite(write(tmp_path, GOOD))

    def execute(settings, out, resume=False):
        if settings["method"] == "ns":
            raise EbedgeError("no data")
        return {"status": "complete"}

    statuses = dict(run_suite(suite, str(tmp_path / "out"), execute, progress=lambda line: None))
    assert statuses["vgg11-synthetic-ns-p0.3-r0"] == "failed: no data"
    assert statuses["vgg11-synthetic-eb-p0.3-r1"] == "complete"


@pytest.fixture
def fake_runner(monkeypatch):
    """A fake ebedge.run.runner module, so the CLI tests do not depend on the real runner."""
    execute = FakeExecute()
    module = types.ModuleType("ebedge.run.runner")
    module.execute = execute
    monkeypatch.setitem(sys.modules, "ebedge.run.runner", module)
    import ebedge
    monkeypatch.setattr(ebedge, "runner", module, raising=False)
    return execute


def test_cli_dry_run_lists_cells(tmp_path, fake_runner):
    from ebedge.cli.bench import bench_command

    result = CliRunner().invoke(bench_command, [write(tmp_path, GOOD), "--dry-run"])
    assert result.exit_code == 0, result.output
    for cell in load_suite(write(tmp_path, GOOD)).cells():
        assert cell.cell_id in result.output
    assert "results/t" in result.output
    assert fake_runner.calls == []


def test_cli_runs_into_out_dir(tmp_path, fake_runner):
    from ebedge.cli.bench import bench_command

    out = str(tmp_path / "res")
    result = CliRunner().invoke(bench_command, [write(tmp_path, GOOD), "--out", out, "--quiet"])
    assert result.exit_code == 0, result.output
    assert len(fake_runner.calls) == 10
    assert os.path.isfile(os.path.join(out, "vgg11-synthetic-dense-r0", "summary.json"))


def test_cli_default_is_the_quick_suite(fake_runner):
    from ebedge.cli.bench import bench_command

    result = CliRunner().invoke(bench_command, ["--dry-run"])
    assert result.exit_code == 0, result.output
    assert "vgg16-synthetic-eb-p0.7-r0" in result.output and "results/quick" in result.output


def test_cli_bad_suite_is_one_line_error(tmp_path, fake_runner):
    from ebedge.cli.bench import bench_command

    result = CliRunner().invoke(bench_command, [write(tmp_path, GOOD + "bogus = 1\n")])
    assert result.exit_code == 1
    assert "bogus" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_every_shipped_suite_passes_its_pre_run_check():
    """`ebedge bench SUITE --check` on every suite in benchmarks/: no shipped cell may fail to run."""
    from ebedge.cli.bench import bench_command
    shipped = sorted(glob.glob(os.path.join(ROOT, "benchmarks", "*.toml")))
    assert len(shipped) >= 10
    for path in shipped:
        result = CliRunner().invoke(bench_command, [path, "--check"])
        assert result.exit_code == 0, result.output
        assert " 0 failed" in result.output.splitlines()[-1]


def test_check_names_a_cell_that_cannot_run(tmp_path):
    from ebedge.cli.bench import bench_command
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\n[defaults]\nepochs = 4\n[grid]\nmethods = ["ns"]\n'
                    'draw_ats = [2]\n')
    result = CliRunner().invoke(bench_command, [str(path), "--check"])
    assert result.exit_code == 0, result.output  # draw_ats only multiplies EB variants: ns runs once
    path.write_text('name = "bad"\n[defaults]\nepochs = 4\n[[cells]]\nmethod = "ns"\ndraw_at = 2\n')
    result = CliRunner().invoke(bench_command, [str(path), "--check"])
    assert result.exit_code != 0 and "FAIL" in result.output and "draw_at" in result.output


def test_suite_line_says_when_a_cell_drew_no_ticket(tmp_path):
    suite = load_suite(write(tmp_path, GOOD))
    lines = []

    def no_ticket(settings, out, resume=False):
        return {"status": "complete", "no_ticket": settings["method"] == "eb"}

    run_suite(suite, str(tmp_path / "out"), no_ticket, progress=lines.append)
    done = [line for line in lines if ": complete" in line]
    assert done and all(("NO TICKET" in line) == ("-eb-" in line) for line in done)


def test_a_cell_that_failed_before_its_config_starts_again_instead_of_resuming(tmp_path):
    """Its data could not load, say: nothing ran, so there is nothing to resume (a resume would
    fail with `no config.json`); the cell runs fresh and the runner clears the leftovers."""
    suite = load_suite(write(tmp_path, GOOD))
    ids = [c.cell_id for c in suite.cells()]
    out = str(tmp_path / "out")
    os.makedirs(os.path.join(out, ids[0]))
    with open(os.path.join(out, ids[0], "summary.json"), "w") as handle:
        json.dump({"status": "failed: data directory not found: /data"}, handle)
    fake = FakeExecute()
    run_suite(suite, out, fake, progress=lambda line: None)
    assert fake.calls[0] == (ids[0], False)
