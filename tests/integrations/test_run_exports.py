"""`ebedge train --log-to ... --prometheus-port ...`: a tiny run's phases and summary in
TensorBoard match its energy.csv and summary.json, and the endpoint answers while it runs."""
import csv
import json
import os
import threading
import time
import urllib.request

import pytest
from click.testing import CliRunner

from support.remote_sshd import free_port
from ebedge.cli import main

pytest.importorskip("tensorboard")

TINY = ["--model", "vgg11", "--width", "0.0625", "--limit-train", "128", "--limit-test", "64",
        "--batch-size", "32", "--device", "cpu", "--quiet", "--meter", "model",
        "--meter-interval", "0.05"]


def test_train_sends_phases_and_summary_and_serves_prometheus(tmp_path, one_thread):
    out, tb, port = str(tmp_path / "run"), str(tmp_path / "tb"), free_port()
    scrapes = []
    done = threading.Event()

    def scrape():
        while not done.is_set():
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
                    text = r.read().decode()
                if 'ebedge_power_watts{meter="model",rail="total"}' in text:
                    scrapes.append(text)
            except OSError:
                pass
            time.sleep(0.05)

    thread = threading.Thread(target=scrape)
    thread.start()
    try:
        result = CliRunner().invoke(main, ["train", "--method", "dense", "--epochs", "2",
                                           "--out", out, "--log-to", "tensorboard:" + tb,
                                           "--prometheus-port", str(port)] + TINY,
                                    catch_exceptions=False)
    finally:
        done.set()
        thread.join()
    assert result.exit_code == 0, result.output
    assert scrapes, "the endpoint never answered during the run"
    assert "ebedge_energy_joules_total{meter=\"model\",rail=\"total\"}" in scrapes[-1]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(tb)
    acc.Reload()
    tags = acc.Tags()["scalars"]
    with open(os.path.join(out, "energy.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["meter"] == "model" and r["rail"] == "total"]
    assert {r["phase"] for r in rows} >= {"eval", "train_total", "run_total"}
    for r in rows:
        assert acc.Scalars("energy/%s/joules" % r["phase"])[0].value == pytest.approx(
            float(r["energy_j"]), rel=1e-6)
        assert acc.Scalars("energy/%s/measured" % r["phase"])[0].value == 0.0  # modelled
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    assert acc.Scalars("summary/energy_kj/train_total")[0].value == pytest.approx(
        summary["energy"]["kj"]["train_total"], rel=1e-6)
    assert acc.Scalars("summary/test_acc")[0].value == pytest.approx(summary["test_acc"])
    assert "summary/runtime_s" in tags


@pytest.mark.parametrize("args, message", [
    (["--log-to", "neptune:x"], "--log-to wants tensorboard:DIR"),
    (["--prometheus-port", "http"], "--prometheus-port wants PORT"),
    (["--log-to", "tensorboard:x", "--nproc", "2"], "work with one process"),
])
def test_bad_export_options_are_refused_before_the_run(tmp_path, args, message):
    out = str(tmp_path / "run")
    result = CliRunner().invoke(main, ["train", "--out", out] + TINY + args)
    assert result.exit_code == 1 and message in result.output
    assert not os.path.exists(out)
