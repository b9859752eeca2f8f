"""The Transformers EnergyCallback on a real Trainer (a tiny BERT from a config, random tokens)
against a fake TX2 in its own process: windows match the exact integral, the energy entries reach
log_history and a report_to target (TensorBoard, read back), and a crash still writes log_dir."""
import csv
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from support.sim_process import check_against_truth, ina3221_process

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
pytest.importorskip("tensorboard")
sys.path.insert(0, os.path.join(ROOT, "examples"))
from transformers_energy import RandomTokens  # noqa: E402 (the example's data)

from ebedge.errors import EbedgeError  # noqa: E402
from ebedge.integrations.transformers import EnergyCallback  # noqa: E402


def make_trainer(tmp_path, report_to=(), epochs=2):
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, num_labels=2)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=epochs,
                             per_device_train_batch_size=32, eval_strategy="epoch",
                             logging_strategy="epoch", save_strategy="no",
                             report_to=list(report_to),
                             use_cpu=True, disable_tqdm=True)
    return Trainer(model=BertForSequenceClassification(config), args=args,
                   train_dataset=RandomTokens(128, 0), eval_dataset=RandomTokens(64, 1))


def test_train_epochs_and_evaluation_reach_the_logs(tmp_path, one_thread):
    trainer = make_trainer(tmp_path, report_to=["tensorboard"])
    with ina3221_process(str(tmp_path / "sys"), "5-12:0.7,12-5:0.7") as tx2:
        cb = EnergyCallback(["ina3221"], {"ina3221": {"root": tx2.root}}, interval_s=0.05)
        cb.attach(trainer)
        trainer.train()
        after = trainer.evaluate()  # after training: measured too
        cb.close()
    names = [m.name for m in cb.measurements]
    assert names == ["epoch", "evaluation", "epoch", "evaluation", "train", "evaluation"]
    check_against_truth(cb.measurements, tx2)
    logged = [e for e in trainer.state.log_history if "energy/epoch/joules" in e]
    assert [e["energy/epoch/joules"] for e in logged] == pytest.approx(
        [m.energy_j for m in cb.measurements if m.name == "epoch"])
    assert [e["step"] for e in logged] == [4, 8]
    train = [e for e in trainer.state.log_history if "energy/train/joules" in e][0]
    assert train["energy/train/measured"] == 1.0
    assert train["energy/train/rail/VDD_SYS_GPU_joules"] == pytest.approx(
        cb.measurements[4].per_rail["VDD_SYS_GPU"])
    assert "eval_loss" in after
    # the report_to target got them: TensorBoard's own reader
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    runs = [p for p, _, files in os.walk(str(tmp_path / "out")) if any("tfevents" in f for f in files)]
    acc = EventAccumulator(runs[0])
    acc.Reload()
    tags = acc.Tags()["scalars"]
    tag = [t for t in tags if t.endswith("energy/evaluation/joules")][0]
    assert [e.value for e in acc.Scalars(tag)] == pytest.approx(
        [m.energy_j for m in cb.measurements if m.name == "evaluation"], rel=1e-6)


def test_a_callback_given_to_the_trainer_without_attach_says_how(tmp_path):
    trainer = make_trainer(tmp_path)
    trainer.add_callback(EnergyCallback(["model"]))
    with pytest.raises(EbedgeError, match=r"EnergyCallback\(...\).attach\(trainer\)"):
        trainer.train()


CRASH = """
import sys
sys.path.insert(0, %(examples)r)
sys.path.insert(0, %(tests)r)
from integrations.test_transformers import make_trainer
from ebedge.integrations.transformers import EnergyCallback
import pathlib
trainer = make_trainer(pathlib.Path(%(tmp)r))
data = trainer.train_dataset
calls = []
class Crashing(type(data)):
    def __getitem__(self, i):
        calls.append(i)
        if len(calls) == 32 * 6:  # batch 2 of epoch 2
            raise RuntimeError("simulated crash in epoch 2")
        return data[i]
trainer.train_dataset = Crashing.__new__(Crashing)
trainer.train_dataset.__dict__.update(data.__dict__)
EnergyCallback(["model"], interval_s=0.05, log_dir=%(log_dir)r).attach(trainer)
trainer.train()
"""


@pytest.mark.slow  # a fresh interpreter importing the framework: ~40 s on a loaded 2-core box
def test_a_crash_still_writes_what_was_measured(tmp_path):
    log_dir = str(tmp_path / "energy")
    code = CRASH % {"examples": os.path.join(ROOT, "examples"), "tests": os.path.join(ROOT, "tests"),
                    "tmp": str(tmp_path), "log_dir": log_dir}
    proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, cwd=str(tmp_path))
    assert proc.returncode != 0 and "simulated crash in epoch 2" in proc.stderr
    with open(os.path.join(log_dir, "windows.csv")) as f:
        windows = [r["phase"] for r in csv.DictReader(f)]
    assert windows.count("epoch") == 2 and "train" in windows and "evaluation" in windows
    with open(os.path.join(log_dir, "energy.csv")) as f:
        assert {r["phase"] for r in csv.DictReader(f)} == {"epoch", "evaluation", "train"}
    with open(os.path.join(log_dir, "summary.json")) as f:
        summary = json.load(f)
    assert summary["status"] == "complete"
    assert any("window still open at close()" in flag for flag in summary["flags"])


@pytest.mark.slow  # a fresh interpreter importing the framework: ~40 s on a loaded 2-core box
def test_the_example_runs_and_logs_energy(tmp_path):
    example = os.path.join(ROOT, "examples", "transformers_energy.py")
    out = subprocess.check_output([sys.executable, example, "--meter", "model", "--epochs", "1",
                                   "--log-dir", str(tmp_path / "hf")],
                                  universal_newlines=True, cwd=str(tmp_path))
    assert "energy/epoch/joules" in out and "train:" in out and "modelled by model" in out
    assert os.path.exists(str(tmp_path / "hf" / "energy.csv"))
