"""INA3221 sysfs meter on fake trees laid out as on the boards (both driver layouts)."""
import csv
import os
import random

import pytest
from click.testing import CliRunner

import meters
from ebedge.measure import energy
from ebedge.cli.meters import meters_group
from meters import boards, ina3221
from meters.sim.profile import PowerProfile
from meters.sim.sysfs import BOARDS, FakeIna3221Tree

# DESIGN.md's rule per board, and the rails the sensors carry (NC and in7 never appear).
TOTAL_RAILS = {
    "tx2": ["VDD_IN"], "nano": ["POM_5V_IN"], "xavier-nx": ["VDD_IN"], "orin-nx": ["VDD_IN"],
    "agx-xavier": ["GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"],
    "agx-orin": ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"], "thor": ["VIN"],
}
RAILS = {
    "tx2": {"VDD_SYS_GPU", "VDD_SYS_SOC", "VDD_4V0_WIFI", "VDD_IN", "VDD_SYS_CPU", "VDD_SYS_DDR"},
    "nano": {"POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"},
    "xavier-nx": {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"},
    "orin-nx": {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"},
    "agx-xavier": {"GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"},
    "agx-orin": {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"},
    "thor": {"VDD_GPU", "VDD_CPU_SOC_MSS", "VIN_SYS_5V0", "VIN"},
}


def test_every_simulated_board_is_checked():
    assert sorted(BOARDS) == sorted(TOTAL_RAILS)


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_layouts_are_discovered_with_the_board_total(tmp_path, board):
    prof = PowerProfile.parse("2-12:10")
    tree = FakeIna3221Tree(str(tmp_path), board, prof, t0=0.0)
    tree.write(7.5)
    meter = meters.create("ina3221", root=str(tmp_path))
    meter.open()
    samples = meter.read()
    assert {s.rail for s in samples} == RAILS[board] | {"total"}
    assert meter.total_rails == TOTAL_RAILS[board]
    total = [s for s in samples if s.rail == "total"][0]
    assert total.power_w == pytest.approx(prof.power(7.5), abs=0.01)
    for s in samples:  # V x I agrees with the power everywhere (hwmon: that is the power)
        if s.voltage_v and s.rail != "total":
            assert s.power_w == pytest.approx(s.voltage_v * s.current_a, abs=0.01)


def test_hwmon_layout_skips_nc_and_the_shunt_sum(tmp_path):
    FakeIna3221Tree(str(tmp_path), "agx-orin")
    dev = tmp_path / "sys/bus/i2c/drivers/ina3221/1-0041/hwmon/hwmon4"
    assert (dev / "in1_label").read_text().strip() == "NC"
    assert (tmp_path / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3/in7_label").exists()
    rails = [c.rail for c in ina3221.discover(str(tmp_path))]
    assert "NC" not in rails and "sum of shunt voltages" not in rails


def test_jp4_values_with_unit_suffix_and_power_file(tmp_path):
    dev = tmp_path / "sys/bus/i2c/drivers/ina3221x/0-0041/iio:device1"
    dev.mkdir(parents=True)
    (dev / "rail_name_0").write_text("VDD_IN\n")
    (dev / "in_power0_input").write_text("3056\n")
    (dev / "in_voltage0_input").write_text("19144\n")
    (dev / "in_current0_input").write_text("160 ma\n")
    meter = meters.create("ina3221", root=str(tmp_path))
    meter.open()
    by = {s.rail: s for s in meter.read()}
    assert by["VDD_IN"].power_w == 3.056  # the power file wins over V x I
    assert by["VDD_IN"].current_a == pytest.approx(0.160)
    assert by["total"].power_w == 3.056 and by["total"].voltage_v == pytest.approx(19.144)


def test_unknown_rails_give_no_total(tmp_path):
    dev = tmp_path / "sys/bus/i2c/drivers/ina3221x/1-0040/iio:device0"
    dev.mkdir(parents=True)
    (dev / "rail_name_0").write_text("VDD_MYSTERY\n")
    (dev / "in_power0_input").write_text("1000\n")
    meter = meters.create("ina3221", root=str(tmp_path))
    meter.open()
    assert [s.rail for s in meter.read()] == ["VDD_MYSTERY"]
    assert "no documented total-power rule" in meter.describe()["total_error"]
    override = meters.create("ina3221", root=str(tmp_path), total_rails="VDD_MYSTERY")
    override.open()
    assert override.read()[-1].rail == "total"


def test_empty_root_is_a_clear_error(tmp_path):
    with pytest.raises(meters.MeterError, match="no INA3221 rails under"):
        meters.create("ina3221", root=str(tmp_path)).open()


def test_board_model_is_read_from_the_device_tree(tmp_path):
    FakeIna3221Tree(str(tmp_path), "tx2")
    assert boards.board_model(str(tmp_path)) == "NVIDIA Jetson TX2"
    assert boards.board_model(str(tmp_path / "nowhere")) is None


def poll_in_sim_time(monkeypatch, tmp_path, board, drop=0.0):
    """Drive the tree and the meter on one virtual clock: 10 Hz with jitter over the 20 s
    default profile, so that the result depends on layout, total rule and integration only."""
    rng = random.Random(board)
    clock = [0.0]
    monkeypatch.setattr(ina3221, "now", lambda: (clock[0], 1e9 + clock[0]))
    prof = PowerProfile.default()
    tree = FakeIna3221Tree(str(tmp_path), board, prof, t0=0.0)
    meter = meters.create("ina3221", root=str(tmp_path))
    meter.open()
    samples = []
    for k in range(202):
        clock[0] = 0.1 * k + rng.uniform(-0.02, 0.02)
        tree.write(clock[0], lsb=(-1) ** k)  # one LSB of noise: a steady load is not frozen
        if rng.random() >= drop:
            samples.extend(s for s in meter.read() if s.rail == "total")
    return prof, energy.integrate(samples, 0.05, 20.05, nominal_interval_s=0.1)


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_sampled_energy_matches_the_profile(monkeypatch, tmp_path, board):
    prof, w = poll_in_sim_time(monkeypatch, tmp_path, board)
    assert w.energy_j == pytest.approx(prof.energy(0.05, 20.05), rel=0.005)
    assert w.covered_frac == pytest.approx(1.0)


@pytest.mark.parametrize("board", ["tx2", "agx-orin"])
def test_five_percent_lost_polls_stay_within_2pct_and_show_as_gaps(monkeypatch, tmp_path, board):
    prof, w = poll_in_sim_time(monkeypatch, tmp_path, board, drop=0.05)
    assert w.energy_j == pytest.approx(prof.energy(0.05, 20.05), rel=0.02)
    assert w.max_gap_s > 0.15 and w.n_samples < 195


@pytest.mark.slow
def test_meters_record_in_real_time_matches_the_profile(tmp_path):
    """The one real-time run: TX2 tree rewritten at 100 Hz, read at the native 10 Hz, 20 s."""
    prof = PowerProfile.default()
    out = str(tmp_path / "run")
    with FakeIna3221Tree(str(tmp_path / "root"), "tx2", prof).start(rate_hz=100.0) as tree:
        res = CliRunner().invoke(meters_group, [
            "record", "--meter", "ina3221", "--option", "root=%s" % tree.root,
            "--interval", "0.1", "--duration", str(prof.period), "--out", out])
    assert res.exit_code == 0, res.output
    with open(os.path.join(out, "phases.csv")) as f:
        phase = list(csv.DictReader(f))[0]
    with open(os.path.join(out, "energy.csv")) as f:
        row = [r for r in csv.DictReader(f) if r["rail"] == "total"][0]
    truth = tree.truth(float(phase["t_start_mono"]), float(phase["t_end_mono"]))
    assert float(row["energy_j"]) == pytest.approx(truth, rel=0.005)
    assert float(row["covered_frac"]) > 0.99 and 9.0 < float(row["rate_hz"]) < 11.0
