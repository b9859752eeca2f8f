"""Monitor and runs send their figures to TensorBoard, MLflow and W&B: read back with each
tracker's own reader (event files, MLflow's client on a local SQLite store, W&B's offline run)."""
import os
import time

import pytest

from ebedge import Monitor
from ebedge.errors import EbedgeError
from ebedge.export.trackers import Sink, Sinks, WindowRecord
from support.sim_process import check_against_truth, ina3221_process
from support.wandb_offline import read_offline_run

INTERVAL = 0.05


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """W&B offline in a tmp dir: nothing leaves the machine."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.makedirs(str(tmp_path / "wb"))
    return str(tmp_path / "wb")


def tensorboard_scalars(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(log_dir)
    acc.Reload()
    return acc, {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def mlflow_run(uri):
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("ebedge").experiment_id])
    assert len(runs) == 1
    return client, runs[0]


@pytest.mark.slow
def test_monitor_windows_reach_all_three_trackers(tmp_path, offline_wandb):
    for package in ("tensorboard", "mlflow", "wandb"):
        pytest.importorskip(package)
    tb, ml = str(tmp_path / "tb"), "sqlite:///%s" % (tmp_path / "ml.db")
    with ina3221_process(str(tmp_path / "sys"), "4-11:0.6,11-6:0.6") as tx2:
        with Monitor(["ina3221"], {"ina3221": {"root": tx2.root}}, interval_s=INTERVAL,
                     log_to=["tensorboard:" + tb, "mlflow:" + ml, "wandb:ebedge-test"],
                     run_id="trk") as mon:
            for _ in range(2):
                with mon.window("epoch"):
                    time.sleep(1.1)
    epochs = mon.measurements
    check_against_truth(epochs, tx2, at_least=1)  # what was sent was measured right
    joules = [m.energy_j for m in epochs]

    acc, scalars = tensorboard_scalars(tb)
    assert [s for s, _ in scalars["energy/epoch/joules"]] == [0, 1]
    assert [v for _, v in scalars["energy/epoch/joules"]] == pytest.approx(joules, rel=1e-6)
    assert [v for _, v in scalars["energy/epoch/watts"]] == pytest.approx(
        [m.power_w for m in epochs], rel=1e-6)
    assert [v for _, v in scalars["energy/epoch/rail/VDD_SYS_GPU_joules"]] == pytest.approx(
        [m.per_rail["VDD_SYS_GPU"] for m in epochs], rel=1e-6)
    assert [v for _, v in scalars["energy/epoch/measured"]] == [1.0, 1.0]
    assert scalars["summary/windows"] == [(0, 2.0)]
    assert "energy/epoch/label/text_summary" in acc.Tags()["tensors"]

    client, run = mlflow_run(ml)
    history = client.get_metric_history(run.info.run_id, "energy/epoch/joules")
    assert [(h.step, h.value) for h in history] == [(0, pytest.approx(joules[0])),
                                                     (1, pytest.approx(joules[1]))]
    assert run.data.tags["energy/epoch/label"] == "measured by ina3221"
    assert run.data.metrics["summary/windows"] == 2.0
    assert run.info.run_name == "trk" and run.info.status == "FINISHED"

    history, summary, project = read_offline_run(offline_wandb)
    assert project == "ebedge-test"
    assert history["energy/epoch/joules"] == pytest.approx(joules)
    assert history["energy/epoch/rail/VDD_IN_joules"] == pytest.approx(joules)
    assert summary["energy/epoch/label"] == "measured by ina3221"
    assert summary["summary/windows"] == 2.0


class Failing(Sink):
    def _scalars(self, metrics, step):
        raise RuntimeError("tracker down")

    def _text(self, tag, text, step):
        pass


class Keeping(Sink):
    def __init__(self):
        Sink.__init__(self)
        self.scalars, self.texts = [], []

    def _scalars(self, metrics, step):
        self.scalars.append((step, metrics))

    def _text(self, tag, text, step):
        self.texts.append((tag, text))


def test_a_failing_tracker_is_dropped_with_a_flag_and_the_others_keep_going():
    keep = Keeping()
    sinks = Sinks([Failing(), keep], "r")
    record = WindowRecord("eval", 2.0, "model", "modelled", 10.0, 5.0, None, {"total": 10.0},
                          ["warning: short"])
    sinks.window(record)
    sinks.window(record)
    sinks.summary({"status": "complete", "runtime_s": 3.0, "flags": [],
                   "energy": {"meter": "model", "rail": "total", "method": "modelled",
                              "kj": {"train_total": 0.5, "eval": None}}})
    sinks.close()
    assert sinks.flags == ["tracker Failing dropped: RuntimeError: tracker down"]
    (s0, first), (s1, _), (_, summary) = keep.scalars
    assert (s0, s1) == (0, 1)  # the step counts windows of the same name
    assert first == {"energy/eval/joules": 10.0, "energy/eval/watts": 5.0,
                     "energy/eval/seconds": 2.0, "energy/eval/measured": 0.0,
                     "energy/eval/rail/total_joules": 10.0}  # no net energy: left out, not 0
    assert summary == {"summary/runtime_s": 3.0, "summary/energy_kj/train_total": 0.5}
    assert keep.texts[0] == ("energy/eval/label", "modelled by model; flags: warning: short")
    assert keep.texts[-1] == ("summary/label",
                              "status complete, energy modelled by model/total")


@pytest.mark.parametrize("spec", ["tensorboard", "neptune:x", "mlflow:", ":dir"])
def test_bad_specs_are_refused_before_anything_opens(spec, tmp_path):
    with pytest.raises(EbedgeError, match="--log-to wants tensorboard:DIR, mlflow:URI or "
                                          "wandb:PROJECT"):
        Sinks(["tensorboard:%s" % tmp_path, spec], "r")
    assert not os.listdir(str(tmp_path))  # the good spec before it was not opened


def test_a_tracker_that_cannot_open_is_one_line(tmp_path):
    pytest.importorskip("mlflow")
    with pytest.raises(EbedgeError, match="^cannot open tracker mlflow:nosuchscheme://x: "):
        Monitor(["model"], log_to=["mlflow:nosuchscheme://x"])
