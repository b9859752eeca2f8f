"""jtop meter against a fake `jtop` module in sys.modules, per jetson-stats version (meters/sim/jtop_client.py)."""
import sys
import time

import pytest

from meters.sim import jtop_client as jtop_fake
import meters
from meters import jtop as jtop_meter


# Real rails (mW, tegrastats order) from fixtures/tegrastats, and the total DESIGN.md's rule gives.
BOARDS = {
    "tx2": ([("VDD_SYS_GPU", 152), ("VDD_SYS_SOC", 687), ("VDD_4V0_WIFI", 0), ("VDD_IN", 3056),
             ("VDD_SYS_CPU", 152), ("VDD_SYS_DDR", 883)], 3056, ["VDD_IN"]),
    "nano": ([("POM_5V_IN", 1022), ("POM_5V_GPU", 0), ("POM_5V_CPU", 204)], 1022, ["POM_5V_IN"]),
    "agx-xavier": ([("GPU", 0), ("CPU", 311), ("SOC", 932), ("CV", 0), ("VDDRQ", 621),
                    ("SYS5V", 1482)], 3346, ["GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"]),
    "orin-nx": ([("VDD_IN", 5299), ("VDD_CPU_GPU_CV", 773), ("VDD_SOC", 1424)], 5299, ["VDD_IN"]),
    "agx-orin": ([("VDD_GPU_SOC", 2399), ("VDD_CPU_CV", 400), ("VIN_SYS_5V0", 4032), ("NC", 0),
                  ("VDDQ_VDD2_1V8AO", 301), ("NC", 0)], 6831,
                 ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"]),
}
JP5_BOARDS = ("orin-nx", "agx-orin")  # mW units: jetson-stats 3.x cannot parse their lines


def read_with(monkeypatch, version, power, **options):
    monkeypatch.setitem(sys.modules, "jtop", jtop_fake.module(version, lambda: power))
    meter = meters.create("jtop", interval_s=0.5, **options)
    meter.open()
    try:
        return {s.rail: s.power_w for s in meter.read()}, meter
    finally:
        meter.close()


CASES = [(v, b) for v in jtop_fake.VERSIONS for b in sorted(BOARDS)
         if not (v == "3.1.4" and b in JP5_BOARDS)]


@pytest.mark.parametrize("version, board", CASES)
def test_every_version_gives_every_rail_and_the_board_total(monkeypatch, version, board):
    rails, total_mw, used = BOARDS[board]
    jetpack = 5 if board in JP5_BOARDS else 4
    got, meter = read_with(monkeypatch, version, jtop_fake.power_of(version, rails, jetpack))
    assert set(got) == {n for n, _ in rails if n != "NC"} | {"total"}
    if jetpack == 4:  # every version passes on the sensor's own mW (4.2+: the in_power file)
        assert got["total"] == total_mw / 1000.0
    else:  # 4.2+ on hwmon: int mV x int mA
        assert got["total"] == pytest.approx(total_mw / 1000.0, abs=0.02)
    assert meter.total_rails == used


def test_v4_2_named_input_and_override_see_the_input_rail(monkeypatch):
    rails = BOARDS["orin-nx"][0]
    power = jtop_fake.power_of("4.2.12", rails)
    assert "VDD_IN" not in power["rail"] and power["tot"]["name"] == "VDD_IN"
    got, meter = read_with(monkeypatch, "4.2.12", power, total_rails="VDD_IN+VDD_SOC")
    assert got["total"] == pytest.approx(5.299 + 1.424, abs=0.02)
    assert meter.total_rails == ["VDD_IN", "VDD_SOC"]


def test_v4_1_sums_everything_but_we_take_vdd_in(monkeypatch):
    power = jtop_fake.power_of("4.1.5", BOARDS["tx2"][0])
    assert power[0]["cur"] == 3056 + 152 + 687 + 152 + 883  # jtop 4.1's own "total" on a TX2
    got, _ = read_with(monkeypatch, "4.1.5", power)
    assert got["total"] == pytest.approx(3.056)


def test_v4_offline_rails_are_skipped(monkeypatch):
    power = jtop_fake.power_of("4.3.1", BOARDS["orin-nx"][0])
    power["rail"]["VDD_SOC"]["online"] = False
    got, _ = read_with(monkeypatch, "4.3.1", power)
    assert set(got) == {"VDD_IN", "VDD_CPU_GPU_CV", "total"}


def test_v4_named_total_of_a_board_the_table_lacks(monkeypatch):
    power = {"rail": {"VDD_MYSTERY": {"power": 1962, "online": True}},
             "tot": {"power": 19780, "name": "VDD_IN"}}
    got, meter = read_with(monkeypatch, "4.3.1", power)
    assert got["total"] == pytest.approx(19.78) and meter.total_rails == ["VDD_IN"]


def test_not_installed_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "jtop", None)  # import jtop -> ImportError
    with pytest.raises(meters.MeterError, match="jetson-stats is not installed"):
        meters.create("jtop").open()
    ok, reason = jtop_meter.JtopMeter.probe()
    assert not ok and "not installed" in reason


def test_missing_service_socket(monkeypatch, tmp_path):
    monkeypatch.setattr(jtop_meter, "SOCKET", str(tmp_path / "none.sock"))
    monkeypatch.setitem(sys.modules, "jtop", jtop_fake.module(
        "4.3.1", dict, fail="[Errno 2] No such file or directory"))
    with pytest.raises(meters.MeterError, match="cannot connect.*none.sock.*is the service running"):
        meters.create("jtop").open()
    assert jtop_meter.JtopMeter.probe() == (
        False, "jtop service not running (%s missing)" % (tmp_path / "none.sock"))


def test_socket_path_is_not_an_option(monkeypatch):
    """The client always connects to /run/jtop.sock; an option that pretends otherwise is refused."""
    monkeypatch.setitem(sys.modules, "jtop", jtop_fake.module("4.3.1", dict))
    with pytest.raises(TypeError):
        meters.create("jtop", socket_path="/tmp/elsewhere.sock")


def test_service_refusal_is_a_meter_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "jtop", jtop_fake.module("4.3.1", dict,
                                                              fail="Permission denied"))
    with pytest.raises(meters.MeterError, match="cannot connect.*Permission denied"):
        meters.create("jtop").open()


def test_meter_lifecycle_closes_jtop(monkeypatch):
    mod = jtop_fake.module("4.3.1", lambda: jtop_fake.power_of("4.3.1", [("VDD_IN", 2000)]))
    monkeypatch.setitem(sys.modules, "jtop", mod)
    with meters.create("jtop", interval_s=0.05) as meter:
        time.sleep(0.2)
    got = meter.samples()
    assert got and all(s.power_w == 2.0 for s in got)
    assert mod.opened[0].closed and mod.opened[0].interval == 0.05
    assert meter.describe()["jtop_version"] == "4.3.1"


def test_unknown_shape_is_reported(monkeypatch):
    monkeypatch.setitem(sys.modules, "jtop", jtop_fake.module("4.3.1", lambda: "weird"))
    meter = meters.create("jtop")
    meter.open()
    with pytest.raises(meters.MeterError, match="unrecognised jetson.power"):
        meter.read()
