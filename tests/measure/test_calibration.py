"""Calibration profiles: stored per board, applied only under the same L4T and power mode, and a
run records raw and calibrated energy side by side, naming the profile."""
import csv
import json
import os
import socket

import pytest

from ebedge.measure.board_state import BoardState
from ebedge.measure import calibration
from ebedge.run.runner import execute
from meters.sim.profile import PowerProfile

BOARD = {"model": "NVIDIA Jetson TX2", "serial": "1422019012345", "hostname": "tx2-a",
         "l4t": "32.7.1", "power_mode": "MAXN (0)"}


def _profile(board=BOARD, meter="ina3221", gain=1.1, offset_w=0.8, rail="total"):
    result = {"meter": meter, "reference": "scpi", "verdict": "pass after calibration",
              "tolerance_pct": 2.0, "fit": {"gain": gain, "offset_w": offset_w},
              "rates": {meter: {"rail": rail}, "scpi": {"rail": "total"}}}
    return calibration.make_profile(result, dict(board))


def test_a_profile_applies_on_its_board_under_the_same_l4t_and_power_mode(tmp_path):
    d = str(tmp_path)
    calibration.save(_profile(), d)
    chosen, warnings = calibration.lookup(dict(BOARD), ["ina3221", "tegrastats"], d)
    assert warnings == []
    assert chosen["ina3221"]["gain"] == 1.1
    assert calibration.describe(chosen) == {
        "ina3221": "NVIDIA_Jetson_TX2-1422019012345-ina3221", "tegrastats": "uncalibrated"}


@pytest.mark.parametrize("change", [{"l4t": "32.6.1"}, {"power_mode": "MAXQ (1)"}])
def test_a_profile_from_another_l4t_or_power_mode_is_not_applied_and_says_so(tmp_path, change):
    d = str(tmp_path)
    calibration.save(_profile(), d)
    chosen, warnings = calibration.lookup(dict(BOARD, **change), ["ina3221"], d)
    assert chosen == {"ina3221": "uncalibrated"}
    (warning,) = warnings
    assert "not applied" in warning and list(change.values())[0] in warning


def test_another_boards_profile_is_silently_someone_elses(tmp_path):
    d = str(tmp_path)
    calibration.save(_profile(dict(BOARD, serial="999")), d)
    assert calibration.lookup(dict(BOARD), ["ina3221"], d) == ({"ina3221": "uncalibrated"}, [])


@pytest.mark.parametrize("text", ["not json", "[]", '{"board": {}, "gain": -1, "offset_w": 0}',
                                  '{"board": {}, "gain": 1, "offset_w": 1e9}'])
def test_a_garbage_profile_file_is_skipped_with_a_warning(tmp_path, text):
    (tmp_path / "bad.json").write_text(text)
    calibration.save(_profile(), str(tmp_path))
    chosen, warnings = calibration.lookup(dict(BOARD), ["ina3221"], str(tmp_path))
    assert chosen["ina3221"]["gain"] == 1.1
    assert len(warnings) == 1 and "bad.json skipped" in warnings[0]


def test_apply_integrates_the_offset_over_covered_time_only_on_the_profiles_rail():
    rows = [{"meter": "ina3221", "rail": "total", "energy_j": 100.0, "duration_s": 20.0,
             "covered_frac": 0.5},
            {"meter": "ina3221", "rail": "VDD_SYS_GPU", "energy_j": 10.0, "duration_s": 20.0,
             "covered_frac": 1.0},
            {"meter": "tegrastats", "rail": "total", "energy_j": 90.0, "duration_s": 20.0,
             "covered_frac": 1.0}]
    calibration.apply(rows, calibration.applied({"ina3221": _profile()}))
    assert rows[0]["calibrated_energy_j"] == pytest.approx(1.1 * 100.0 + 0.8 * 10.0)
    assert rows[1]["calibrated_energy_j"] is None and rows[2]["calibrated_energy_j"] is None


@pytest.mark.parametrize("hostile", [["x"], {"ina3221": "tx2"}, {"ina3221": {"rail": "total"}},
                                     {"ina3221": {"rail": "total", "gain": "2", "offset_w": 0}},
                                     {"ina3221": {"rail": 1, "gain": 2.0, "offset_w": 0.0}},
                                     {"ina3221": {"rail": "total", "gain": float("nan"),
                                                  "offset_w": 0.0}}])
def test_calibration_a_board_wrote_badly_is_not_applied_and_raises_nothing(hostile):
    rows = [{"meter": "ina3221", "rail": "total", "energy_j": 100.0, "duration_s": 20.0,
             "covered_frac": 1.0}]
    assert calibration.apply(rows, hostile)[0]["calibrated_energy_j"] is None


def test_a_run_records_raw_and_calibrated_energy_and_names_the_profile(
        tmp_path, fake_tx2, monkeypatch, one_thread):
    cfg = tmp_path / "cfg"
    monkeypatch.setenv("EBEDGE_CONFIG_DIR", str(cfg))
    here = BoardState(hostname=socket.gethostname())  # this machine, as the run's snapshot sees it
    ident = calibration.identity(here)
    calibration.save(_profile(ident, gain=1.25, offset_w=0.5), str(cfg / "calibration"))
    tx2 = fake_tx2(PowerProfile([(5.0, 5.0, 1.0), (9.0, 9.0, 1.0)]))
    out = str(tmp_path / "run")
    summary = execute({"method": "dense", "model": "vgg11", "width": 0.0625, "limit_train": 64,
                       "limit_test": 32, "batch_size": 32, "epochs": 1, "device": "cpu",
                       "idle_seconds": 0.3, "meters": ["ina3221"], "meter_interval": 0.02,
                       "meter_options": {"ina3221": {"root": tx2.root}}}, out=out, quiet=True)
    assert summary["status"] == "complete"
    name = calibration.profile_name(ident, "ina3221")
    assert summary["calibration"] == {"ina3221": name}
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["calibration"] == {"ina3221": name}
    assert config["calibration_profiles"]["ina3221"]["gain"] == 1.25
    rows = list(csv.DictReader(open(os.path.join(out, "energy.csv"))))
    totals = [r for r in rows if r["rail"] == "total"]
    assert totals
    for r in totals:
        covered = float(r["covered_frac"]) * float(r["duration_s"])
        assert float(r["calibrated_energy_j"]) == pytest.approx(
            1.25 * float(r["energy_j"]) + 0.5 * covered)
        assert r["energy_1hz_j"] == "" or float(r["energy_1hz_j"]) >= 0
    assert all(r["calibrated_energy_j"] == "" for r in rows if r["rail"] != "total")
    run_total = next(r for r in totals if r["phase"] == "run_total")
    assert summary["energy"]["kj"]["run_total"] == pytest.approx(float(run_total["energy_j"]) / 1e3)
    assert summary["energy"]["calibrated_kj"]["run_total"] == pytest.approx(
        float(run_total["calibrated_energy_j"]) / 1e3)
