"""jtop meter against a fake `jtop` module in sys.modules, in both jetson-stats shapes."""
import sys
import time
import types

import pytest

import meters
from meters import jtop as jtop_meter


class FakeJtopException(Exception):
    pass


def fake_module(power, fail=None):
    mod = types.ModuleType("jtop")
    mod.JtopException = FakeJtopException
    mod.opened = []

    class jtop(object):
        def __init__(self, interval=1.0):
            self.interval = interval
            self.closed = False
            mod.opened.append(self)

        def start(self):
            if fail:
                raise FakeJtopException(fail)

        def close(self):
            self.closed = True

        @property
        def power(self):
            return power

    mod.jtop = jtop
    return mod


@pytest.fixture
def sock(tmp_path):
    path = tmp_path / "jtop.sock"
    path.write_text("")
    return str(path)


def read_with(monkeypatch, sock, power):
    monkeypatch.setitem(sys.modules, "jtop", fake_module(power))
    meter = meters.create("jtop", interval_s=0.5, socket_path=sock)
    meter.open()
    try:
        return {s.rail: s.power_w for s in meter.read()}, meter
    finally:
        meter.close()


def rail4(mw, avg):
    return {"volt": 5000, "curr": mw // 5, "power": mw, "avg": avg, "online": True,
            "type": "INA3221"}


def test_v4_agx_orin_total_is_the_documented_sum_not_jtops(monkeypatch, sock):
    power = {"rail": {"VDD_GPU_SOC": rail4(2399, 1000), "VDD_CPU_CV": rail4(400, 1000),
                      "VIN_SYS_5V0": rail4(4032, 1000), "VDDQ_VDD2_1V8AO": rail4(301, 1000)},
             "tot": {"power": 7132, "avg": 4000}}  # jtop's blind sum double counts VDDQ
    got, meter = read_with(monkeypatch, sock, power)
    assert got["total"] == pytest.approx(6.831)
    assert got["VDD_CPU_CV"] == pytest.approx(0.4)  # 'power', never 'avg'
    assert meter.total_rails == ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"]


def test_v4_tx2_total_is_vdd_in(monkeypatch, sock):
    power = {"rail": {"VDD_IN": rail4(3056, 2000), "VDD_SYS_GPU": rail4(152, 100),
                      "VDD_SYS_CPU": rail4(152, 100)},
             "tot": {"power": 3056, "avg": 2000, "name": "VDD_IN"}}
    got, meter = read_with(monkeypatch, sock, power)
    assert got == pytest.approx({"VDD_IN": 3.056, "VDD_SYS_GPU": 0.152, "VDD_SYS_CPU": 0.152,
                                 "total": 3.056})
    assert meter.total_rails == ["VDD_IN"]


def test_v4_named_total_of_a_board_the_table_lacks(monkeypatch, sock):
    power = {"rail": {"VDD_GPU": rail4(1962, 0)}, "tot": {"power": 19780, "name": "VIN"}}
    got, meter = read_with(monkeypatch, sock, power)
    assert got["total"] == pytest.approx(19.78) and meter.total_rails == ["VIN"]


def test_v4_offline_rails_are_skipped(monkeypatch, sock):
    off = dict(rail4(500, 0), online=False)
    power = {"rail": {"VDD_IN": rail4(1000, 0), "VDD_SOC": off}, "tot": {"power": 1000}}
    got, _ = read_with(monkeypatch, sock, power)
    assert set(got) == {"VDD_IN", "total"}


@pytest.mark.parametrize("short, total_w, names", [
    ({"5V IN": 1022, "5V GPU": 0, "5V CPU": 204}, 1.022, {"POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"}),
    ({"IN": 3056, "SYS GPU": 152, "SYS DDR": 883}, 3.056, {"VDD_IN", "VDD_SYS_GPU", "VDD_SYS_DDR"}),
    ({"GPU": 0, "CPU": 311, "SOC": 932, "CV": 0, "VDDRQ": 621, "SYS5V": 1482}, 3.346,
     {"GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"}),
])
def test_v3_tuple_shape(monkeypatch, sock, short, total_w, names):
    rails = {k: {"cur": v, "avg": v // 2 + 7} for k, v in short.items()}
    total = {"cur": 99999, "avg": 1}  # ignored: our board rule forms the total
    got, _ = read_with(monkeypatch, sock, (total, rails))
    assert set(got) == names | {"total"}
    assert got["total"] == pytest.approx(total_w)


def test_not_installed_is_a_clear_error(monkeypatch, sock):
    monkeypatch.setitem(sys.modules, "jtop", None)  # import jtop -> ImportError
    with pytest.raises(meters.MeterError, match="jetson-stats is not installed"):
        meters.create("jtop", socket_path=sock).open()
    ok, reason = jtop_meter.JtopMeter.probe()
    assert not ok and "not installed" in reason


def test_missing_service_socket(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "jtop", fake_module({}))
    with pytest.raises(meters.MeterError, match="service socket .* missing"):
        meters.create("jtop", socket_path=str(tmp_path / "none.sock")).open()
    monkeypatch.setattr(jtop_meter, "SOCKET", str(tmp_path / "none.sock"))
    assert jtop_meter.JtopMeter.probe() == (
        False, "jtop service not running (%s missing)" % (tmp_path / "none.sock"))


def test_service_refusal_is_a_meter_error(monkeypatch, sock):
    monkeypatch.setitem(sys.modules, "jtop", fake_module({}, fail="Permission denied"))
    with pytest.raises(meters.MeterError, match="cannot connect.*Permission denied"):
        meters.create("jtop", socket_path=sock).open()


def test_meter_lifecycle_closes_jtop(monkeypatch, sock):
    mod = fake_module({"rail": {"VDD_IN": rail4(2000, 0)}, "tot": {"power": 2000}})
    monkeypatch.setitem(sys.modules, "jtop", mod)
    with meters.create("jtop", interval_s=0.05, socket_path=sock) as meter:
        time.sleep(0.2)
    got = meter.samples()
    assert got and all(s.power_w == 2.0 for s in got)
    assert mod.opened[0].closed and mod.opened[0].interval == 0.05


def test_unknown_shape_is_reported(monkeypatch, sock):
    monkeypatch.setitem(sys.modules, "jtop", fake_module("weird"))
    meter = meters.create("jtop", socket_path=sock)
    meter.open()
    with pytest.raises(meters.MeterError, match="unrecognised jetson.power"):
        meter.read()
