"""Long work says how long it has left: epochs of a run (also through the agent's log that
`ebedge remote run` streams) and cells of a suite."""
import io
import json
import os
import time

import pytest

from ebedge import agent
from ebedge.util.eta import Eta, format_duration
from ebedge.run.suite import cell_epochs, load_suite, run_suite


def test_eta_is_the_mean_timed_unit_times_the_units_left():
    eta = Eta(4)
    assert eta.remaining_s() is None and eta.text() == ""
    eta.done(10.0)
    assert eta.remaining_s() == 30.0 and eta.text() == "ETA 30s"
    eta.done()  # finished without timing (a suite cell already complete)
    assert eta.remaining_s() == 20.0
    eta.done(20.0)
    assert eta.remaining_s() == 15.0
    eta.done(1.0)
    assert eta.text() == ""
    assert [format_duration(s) for s in (42.4, 185, 3725)] == ["42s", "3m05s", "1h02m"]


def test_weighted_units_expect_time_in_proportion_to_their_weight():
    eta = Eta(weights=[90, 90, 180])  # dense, eb, ns of a 90-epoch suite
    eta.done(600.0)
    assert eta.remaining_s() == 270 * 600.0 / 90
    eta.done(500.0)
    assert eta.remaining_s() == 180 * 1100.0 / 180


def test_a_cells_weight_is_the_epochs_its_method_trains():
    assert cell_epochs({"method": "dense", "epochs": 90}) == 90
    assert cell_epochs({"method": "ns", "epochs": 90}) == 180  # N dense + N pruned
    assert cell_epochs({"method": "lt", "epochs": 90}) == 180  # train, rewind, retrain
    assert cell_epochs({"method": "eb", "epochs": 90}) == 90  # E + (N - E), whatever E
    assert cell_epochs({"method": "eb-reinit", "epochs": 90, "draw_at": 10}) == 100  # E + N
    assert cell_epochs({"method": "eb-reinit", "epochs": 80}) == 100  # E guessed as N/4
    assert cell_epochs({"method": "eb", "epochs": 80, "keep_searching": True}) == 140  # N + N - E
    assert cell_epochs({"method": "unheard-of", "epochs": 7}) == 7


def test_suite_time_left_weighs_cells_by_their_epochs(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('name = "s"\n[defaults]\nepochs = 3\n[grid]\nmethods = ["dense", "ns"]\n'
                    'prune_ratios = [0.5]\n')

    def execute(settings, out, resume):
        time.sleep(1.0)
        return {"status": "complete"}

    lines = []
    run_suite(load_suite(str(path)), str(tmp_path / "out"), execute, progress=lines.append)
    first = next(line for line in lines if line.startswith("[1/2]") and "complete" in line)
    # the dense cell took ~1 s for 3 epochs; NS trains 6: about 2 s left, not the 1 s of a plain mean
    assert "(suite ETA 2s)" in first or "(suite ETA 3s)" in first, lines


def test_suite_progress_shows_the_time_left(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('name = "s"\n[grid]\nmethods = ["dense"]\nrepeats = 3\n')
    out = str(tmp_path / "out")
    done_dir = os.path.join(out, "vgg16-synthetic-dense-r0")
    os.makedirs(done_dir)
    with open(os.path.join(done_dir, "summary.json"), "w") as f:
        json.dump({"status": "complete"}, f)

    def execute(settings, out, resume):
        time.sleep(0.3)
        return {"status": "complete"}

    lines = []
    run_suite(load_suite(str(path)), out, execute, progress=lines.append)
    finished = [line for line in lines if line.endswith("complete") or "(suite ETA" in line]
    assert "skipped" in lines[0]
    # cell 2 took ~0.3 s and one cell is left; the last cell has nothing left to estimate
    assert finished[0].startswith("[2/3]") and "(suite ETA 0s)" in finished[0]
    assert finished[1].startswith("[3/3]") and "ETA" not in finished[1]


@pytest.mark.slow
def test_a_run_started_by_the_agent_logs_an_eta_per_epoch(tmp_path):
    settings = {"method": "dense", "model": "vgg11", "width": 0.0625, "batch_size": 32,
                "limit_train": 64, "limit_test": 32, "epochs": 3, "device": "cpu",
                "meters": ["model"]}
    root = str(tmp_path / "runs")
    agent.start(json.dumps(settings), "r", root=root)
    deadline = time.monotonic() + 60  # until the child has exec'd, run_state cannot see it yet
    while not os.path.exists(os.path.join(root, "r", "summary.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    out = io.StringIO()
    final = agent.watch("r", root, out=out, poll_s=0.2)
    assert final["state"] == "complete", out.getvalue()
    epochs = [line for line in out.getvalue().splitlines() if line.startswith("search epoch ")]
    assert len(epochs) == 3
    assert "ETA" in epochs[0] and "ETA" in epochs[1] and "ETA" not in epochs[2]
