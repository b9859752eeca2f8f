"""The Lightning EnergyCallback on a real Lightning Trainer against a fake TX2 whose power has
an exact integral; what it logs, what it keeps, and what a crash leaves."""
import csv
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from support.sim_process import check_against_truth, ina3221_process

pl = pytest.importorskip("lightning.pytorch")
sys.path.insert(0, os.path.join(ROOT, "examples"))
from lightning_energy import TinyClassifier, loader  # noqa: E402 (the example's model and data)

from ebedge.integrations.lightning import EnergyCallback  # noqa: E402


class Keep(pl.loggers.Logger):
    """A Lightning logger that keeps what it is given."""

    def __init__(self):
        super().__init__()
        self.metrics, self.params = [], {}

    name = "keep"
    version = 0

    def log_metrics(self, metrics, step=None):
        self.metrics.append((step, dict(metrics)))

    def log_hyperparams(self, params, *args, **kwargs):
        self.params.update(params)


def fit(callback, module, epochs=2, logger=None):
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=logger or False,
                         callbacks=[callback], enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False,
                         num_sanity_val_steps=1)
    trainer.fit(module, loader(256, 0), loader(64, 1))
    return trainer


def test_fit_epochs_and_validation_are_measured_and_logged(tmp_path, one_thread):
    keep = Keep()
    with ina3221_process(str(tmp_path / "sys"), "5-12:0.7,12-5:0.7") as tx2:
        cb = EnergyCallback(["ina3221"], {"ina3221": {"root": tx2.root}}, interval_s=0.05,
                            log_dir=str(tmp_path / "energy"))
        trainer = fit(cb, TinyClassifier(), logger=keep)
    names = [m.name for m in cb.measurements]
    assert names.count("train_epoch") == 2 and names.count("validation") == 2  # no sanity check
    assert names[-1] == "fit"
    check_against_truth(cb.measurements, tx2)
    fit_m = cb.measurements[-1]
    assert all(fit_m.t_start <= m.t_start and m.t_end <= fit_m.t_end for m in cb.measurements)
    assert keep.params == {"energy_meter": "ina3221"}
    logged = [(step, v) for step, d in keep.metrics for k, v in d.items()
              if k == "energy/train_epoch/joules"]
    epochs = [m for m in cb.measurements if m.name == "train_epoch"]
    assert [v for _, v in logged] == pytest.approx([m.energy_j for m in epochs])
    assert [s for s, _ in logged] == [8, 16]  # the global step at each epoch's end
    final = [d for _, d in keep.metrics if "energy/fit/joules" in d][0]
    assert final["energy/fit/joules"] == pytest.approx(fit_m.energy_j)
    assert final["energy/fit/measured"] == 1.0
    assert final["energy/fit/rail/VDD_SYS_GPU_joules"] == pytest.approx(fit_m.per_rail["VDD_SYS_GPU"])
    with open(str(tmp_path / "energy" / "summary.json")) as f:
        assert json.load(f)["status"] == "complete"
    assert trainer.state.finished


class Crashing(TinyClassifier):
    def training_step(self, batch, batch_idx):
        if self.current_epoch == 1 and batch_idx == 3:
            raise RuntimeError("out of memory (simulated)")
        return super().training_step(batch, batch_idx)


def test_a_crash_still_writes_what_was_measured(tmp_path, one_thread):
    cb = EnergyCallback(["model"], interval_s=0.05, log_dir=str(tmp_path / "energy"))
    with pytest.raises(RuntimeError, match="simulated"):
        fit(cb, Crashing())
    with open(str(tmp_path / "energy" / "windows.csv")) as f:
        windows = [r["phase"] for r in csv.DictReader(f)]
    assert windows.count("train_epoch") == 2 and "fit" in windows  # epoch 1 up to the crash
    with open(str(tmp_path / "energy" / "energy.csv")) as f:
        energy = dict((r["phase"], float(r["energy_j"])) for r in csv.DictReader(f))
    assert energy["fit"] >= energy["train_epoch"] > 0
    with open(str(tmp_path / "energy" / "summary.json")) as f:
        summary = json.load(f)
    assert any("window still open at close()" in flag for flag in summary["flags"])
    crashed = [m for m in cb.measurements if m.name == "train_epoch"][-1]
    assert "window still open at close(), ended there" in crashed.flags


@pytest.mark.slow  # a fresh interpreter importing the framework: ~40 s on a loaded 2-core box
def test_the_example_runs_and_logs_energy(tmp_path):
    example = os.path.join(ROOT, "examples", "lightning_energy.py")
    out = subprocess.check_output([sys.executable, example, "--meter", "model", "--epochs", "1",
                                   "--log-dir", str(tmp_path / "pl"), "--logs", str(tmp_path / "logs")],
                                  universal_newlines=True, cwd=str(tmp_path))
    assert "fit:" in out and "modelled by model" in out
    metrics = [p for p, _, files in os.walk(str(tmp_path / "logs")) if "metrics.csv" in files]
    with open(os.path.join(metrics[0], "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    assert any(r["energy/fit/joules"] for r in rows)
    assert os.path.exists(str(tmp_path / "pl" / "energy.csv"))
