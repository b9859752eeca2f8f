"""`ebedge train` end to end on tiny settings, and its answers to bad input."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from ebedge.cli import main
from ebedge.training.stages import mask_overhead_flops
from ebedge.models import default_cfg

TINY = ["--model", "vgg11", "--width", "0.0625", "--limit-train", "128", "--limit-test", "64",
        "--batch-size", "32", "--device", "cpu", "--quiet"]


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _invoke(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_eb_run_writes_the_whole_run_directory(tmp_path):
    out = str(tmp_path / "run")
    result = _invoke(["train", "--method", "eb", "--epochs", "6", "--epsilon", "0.5",
                      "--prune-ratio", "0.5", "--prune-ratio", "0.3", "--out", out] + TINY)
    assert result.exit_code == 0, result.output
    for name in ("config.json", "phases.csv", "epochs.csv", "samples.csv", "energy.csv",
                 "summary.json", "masks.npz", "checkpoints/last.pt"):
        assert os.path.exists(os.path.join(out, name)), name
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["status"] == "complete"
    for key in ("method", "model", "dataset", "prune_ratio", "eb_epoch", "test_acc",
                "params_dense", "params_pruned", "train_flops_search", "train_flops_retrain",
                "train_flops_total", "runtime_s"):
        assert key in summary, key
    assert summary["params_pruned"] < summary["params_dense"]
    epochs = _rows(os.path.join(out, "epochs.csv"))
    search = [r for r in epochs if r["phase"] == "search"]
    retrain = [r for r in epochs if r["phase"] == "retrain"]
    # the search stopped at the ticket and the retrain took the remaining epochs
    assert summary["eb_epoch"] == len(search) < 6
    assert len(search) + len(retrain) == 6
    # search FLOPs = its training epochs + one mask (sort and distance) per ratio per epoch
    overhead = len(search) * 2 * mask_overhead_flops(summary["total_channels"])
    assert summary["train_flops_search"] == sum(int(r["train_flops"]) for r in search) + overhead
    assert summary["train_flops_retrain"] == sum(int(r["train_flops"]) for r in retrain)
    per_epoch_search = int(search[0]["train_flops"])
    assert per_epoch_search == 3 * summary["forward_flops_dense"] * 128
    assert int(retrain[0]["train_flops"]) == 3 * summary["forward_flops_pruned"] * 128
    masks = np.load(os.path.join(out, "masks.npz"))
    assert list(masks["ratio_0.5_epochs"]) == list(range(1, len(search) + 1))
    assert set(summary["eb_epochs"]) == {"0.5", "0.3"}
    phases = {r["phase"] for r in _rows(os.path.join(out, "phases.csv"))}
    assert {"search", "prune", "retrain", "eval"} <= phases


def test_dense_trains_the_whole_schedule_without_pruning(tmp_path):
    out = str(tmp_path / "dense")
    result = _invoke(["train", "--method", "dense", "--epochs", "2", "--out", out] + TINY)
    assert result.exit_code == 0, result.output
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["params_pruned"] == summary["params_dense"]
    assert summary["train_flops_total"] == 2 * 3 * summary["forward_flops_dense"] * 128


@pytest.mark.parametrize("args, message", [
    (["--model", "alexnet"], "'alexnet' is not one of"),
    (["--dataset", "mnist"], "'mnist' is not one of"),
    (["--prune-ratio", "1.5"], "prune ratio must be in (0, 1)"),
    (["--prune-ratio", "0"], "prune ratio must be in (0, 1)"),
    (["--dataset", "imagefolder", "--data-dir", "/nonexistent/data"], "data directory not found"),
    (["--method", "magic"], "'magic' is not one of"),
])
def test_bad_input_is_one_line_and_non_zero(tmp_path, args, message):
    result = _invoke(["train", "--out", str(tmp_path / "x")] + args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    # a library error is its one line; a usage error (exit code 2) adds click's usage hint
    assert len(errors) == 1 and (result.exit_code == 2 or len(result.output.strip().splitlines()) == 1)


def _image_tree(root, per_class, broken_class=None):
    """train/ and test/ with two classes of `per_class` real CIFAR JPEGs each; `broken_class`
    gets a folder without a single image (what torchvision refuses)."""
    from conftest import CIFAR_JPEG
    import shutil
    for split in ("train", "test"):
        for cls in ("airplane", "bird"):
            os.makedirs(os.path.join(root, split, cls))
            if cls == broken_class:
                continue
            for name in sorted(os.listdir(os.path.join(CIFAR_JPEG, split, cls)))[:per_class]:
                shutil.copy(os.path.join(CIFAR_JPEG, split, cls, name),
                            os.path.join(root, split, cls, name))


def test_a_start_whose_data_cannot_load_says_why_and_the_same_command_runs_once_fixed(tmp_path):
    data, out = str(tmp_path / "data"), str(tmp_path / "run")
    _image_tree(data, 16, broken_class="bird")
    args = ["train", "--method", "dense", "--epochs", "1", "--dataset", "imagefolder",
            "--data-dir", data, "--out", out, "--meter", "model", "--idle-seconds", "0"] + TINY
    failed = _invoke(args)
    assert failed.exit_code == 1 and "Traceback" not in failed.output
    lines = failed.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: %s: " % os.path.join(data, "train"))
    assert "classes bird" in lines[0]  # torchvision's own words: which class has no image
    summary = json.load(open(os.path.join(out, "summary.json")))  # the run directory says why
    assert summary["status"].startswith("failed: ") and "classes bird" in summary["status"]
    assert not os.path.exists(os.path.join(out, "config.json"))
    import shutil
    shutil.rmtree(data)
    _image_tree(data, 16)
    again = _invoke(args)  # nothing ran: no --overwrite or --resume needed
    assert again.exit_code == 0, again.output
    assert json.load(open(os.path.join(out, "summary.json")))["status"] == "complete"


def test_a_directory_of_other_files_is_never_cleared(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "summary.json").write_text('{"status": "failed: mine"}')
    (out / "thesis.tex").write_text("keep me")
    result = _invoke(["train", "--method", "dense", "--epochs", "1", "--out", str(out)] + TINY)
    assert result.exit_code == 1 and "holds an unfinished run" in result.output
    assert (out / "thesis.tex").read_text() == "keep me"


def test_completed_run_is_refused_without_overwrite(tmp_path):
    out = str(tmp_path / "run")
    args = ["train", "--method", "dense", "--epochs", "1", "--out", out] + TINY
    assert _invoke(args).exit_code == 0
    again = _invoke(args)
    assert again.exit_code != 0
    assert "already holds a completed run" in again.output
    assert _invoke(args + ["--overwrite"]).exit_code == 0


@pytest.mark.slow
def test_unreadable_checkpoint_is_reported(tmp_path):
    out = str(tmp_path / "run")
    subprocess.check_call([sys.executable, "-m", "ebedge.cli", "train", "--method", "dense",
                           "--epochs", "1", "--out", out] + TINY)
    summary_path = os.path.join(out, "summary.json")
    summary = json.load(open(summary_path))
    summary["status"] = "interrupted"
    json.dump(summary, open(summary_path, "w"))
    with open(os.path.join(out, "checkpoints", "last.pt"), "wb") as f:
        f.write(b"not a checkpoint")
    result = _invoke(["train", "--resume", out])
    assert result.exit_code != 0
    assert "unreadable checkpoint" in result.output
    assert "Traceback" not in result.output


def test_flops_json_reproduces_table2():
    result = _invoke(["flops", "--model", "vgg16", "--dataset", "cifar10", "--epochs", "160",
                      "--json"])
    data = json.loads(result.output)
    assert abs(data["train_flops"] / 1e15 - 15.03) / 15.03 < 0.01
    assert {"forward_macs", "forward_flops", "params", "train_flops"} <= set(data)
    pruned = json.loads(_invoke(["flops", "--model", "vgg16", "--prune-ratio", "0.5",
                                 "--json"]).output)
    assert pruned["train_flops"] < data["train_flops"]
    assert pruned["params"] < data["params"]


def test_repeats_report_mean_std_and_interval(tmp_path):
    out = str(tmp_path / "rep")
    result = _invoke(["train", "--method", "dense", "--epochs", "1", "--repeats", "3",
                      "--out", out] + TINY)
    assert result.exit_code == 0, result.output
    summaries = [json.load(open(os.path.join(out, "r%d" % i, "summary.json"))) for i in range(3)]
    assert [s["seed"] for s in summaries] == [1, 2, 3]
    accs = [s["test_acc"] for s in summaries]
    stats = json.load(open(os.path.join(out, "repeats.json")))["statistics"]["test_acc"]
    mean = sum(accs) / 3
    std = (sum((a - mean) ** 2 for a in accs) / 2) ** 0.5
    assert stats["mean"] == pytest.approx(mean)
    assert stats["std"] == pytest.approx(std)
    assert stats["ci95"] == pytest.approx(4.3027 * std / 3 ** 0.5, rel=1e-3)


@pytest.mark.slow
def test_keep_searching_still_prunes_the_ticket_drawn_at_the_eb_epoch(tmp_path):
    schedule = 10
    out = str(tmp_path / "study")
    # 10 epochs: the ticket (drawn from epoch 5 on) and the last search epoch's masks are far
    # enough apart to differ on every torch (at 7 they coincided on torch 1.10)
    result = _invoke(["train", "--method", "eb", "--epochs", str(schedule), "--epsilon", "0.5",
                      "--keep-searching", "--out", out] + TINY + ["--width", "0.25"])
    assert result.exit_code == 0, result.output
    summary = json.load(open(os.path.join(out, "summary.json")))
    epochs = _rows(os.path.join(out, "epochs.csv"))
    assert len([r for r in epochs if r["phase"] == "search"]) == schedule  # searched on
    eb = summary["eb_epoch"]
    assert eb is not None and eb < schedule
    masks = np.load(os.path.join(out, "masks.npz"))
    at_eb = masks["ratio_0.5_masks"][list(masks["ratio_0.5_epochs"]).index(eb)]
    sizes = [c for c in default_cfg("vgg11", 0.25) if c != "M"]
    per_layer = [max(1, int(part.sum())) for part in np.split(at_eb, np.cumsum(sizes)[:-1])]
    last = masks["ratio_0.5_masks"][-1]
    per_layer_last = [max(1, int(part.sum())) for part in np.split(last, np.cumsum(sizes)[:-1])]
    assert per_layer != per_layer_last  # so the check below tells the two tickets apart
    assert [c for c in summary["pruned_cfg"] if c != "M"] == per_layer
    assert len([r for r in epochs if r["phase"] == "retrain"]) == schedule - eb


def test_final_line_says_when_no_ticket_was_drawn():
    from ebedge.cli.train import _one_line
    base = {"method": "eb", "model": "vgg11", "test_acc": 0.5, "eb_epoch": None, "train_flops_total": 1e15,
            "runtime_s": 2.0}
    assert "NO TICKET" in _one_line(dict(base, no_ticket=True))
    assert "NO TICKET" not in _one_line(dict(base, no_ticket=False, eb_epoch=3))
