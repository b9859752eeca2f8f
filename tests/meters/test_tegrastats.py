"""tegrastats: the published lines in fixtures/ parse to the right rails and totals; the live meter
runs the fake tegrastats as its own child and stops only that child."""
import glob
import os
import time

import pytest

import meters
from conftest import FIXTURES
from meters import boards, tegrastats
from meters.sim import tegrastats as sim_tegrastats
from meters.sim.profile import PowerProfile

TEGRA = os.path.join(FIXTURES, "tegrastats")
needs_fixtures = pytest.mark.skipif(not os.path.isdir(TEGRA), reason="../shared fixtures absent")

# Read off the fixture text by hand: {file: [rails of each line in mW]}.
EXPECTED = {
    "tx2-jp3-l4t28.txt": [
        dict(VDD_IN=5201, VDD_CPU=1847, VDD_GPU=154, VDD_SOC=924, VDD_WIFI=38, VDD_DDR=1305),
        dict(VDD_IN=5203, VDD_CPU=1770, VDD_GPU=154, VDD_SOC=924, VDD_WIFI=38, VDD_DDR=1324)],
    "tx2-jp4-l4t32.txt": [
        dict(VDD_SYS_GPU=152, VDD_SYS_SOC=687, VDD_4V0_WIFI=0, VDD_IN=3056, VDD_SYS_CPU=152,
             VDD_SYS_DDR=883),
        dict(VDD_SYS_GPU=153, VDD_SYS_SOC=383, VDD_4V0_WIFI=0, VDD_IN=1876, VDD_SYS_CPU=229,
             VDD_SYS_DDR=134),
        dict(VDD_SYS_GPU=153, VDD_SYS_SOC=383, VDD_4V0_WIFI=0, VDD_IN=1876, VDD_SYS_CPU=229,
             VDD_SYS_DDR=115)],
    "nano-jp4.txt": [dict(POM_5V_IN=1022, POM_5V_GPU=0, POM_5V_CPU=204),
                     dict(POM_5V_IN=900, POM_5V_GPU=0, POM_5V_CPU=123),
                     dict(POM_5V_IN=877, POM_5V_GPU=0, POM_5V_CPU=125),
                     dict(POM_5V_IN=877, POM_5V_GPU=0, POM_5V_CPU=125)],
    "xavier-agx-jp4.txt": [dict(GPU=0, CPU=311, SOC=932, CV=0, VDDRQ=621, SYS5V=1482)],
    "agx-orin-jp5.txt": [dict(VDD_GPU_SOC=2399, VDD_CPU_CV=400, VIN_SYS_5V0=4032,
                              VDDQ_VDD2_1V8AO=301)],
    "agx-orin-jp7-triple.txt": [dict(VDD_GPU_SOC=5139, VDD_CPU_CV=3268, VIN_SYS_5V0=5500)],
    "orin-nx-jp5-mW.txt": [dict(VDD_IN=5299, VDD_CPU_GPU_CV=773, VDD_SOC=1424)],
    "orin-nano-jp6.txt": [dict(VDD_IN=4761, VDD_CPU_GPU_CV=515, VDD_SOC=1428)] * 3,
    "thor-jp7.txt": [dict(VDD_GPU=1962, VDD_CPU_SOC_MSS=5887, VIN_SYS_5V0=5635, VIN=19780)],
}
# {file: (rails forming the total, total mW of each line)}, per DESIGN.md's board rule.
TOTALS = {
    "tx2-jp3-l4t28.txt": (["VDD_IN"], [5201, 5203]),
    "tx2-jp4-l4t32.txt": (["VDD_IN"], [3056, 1876, 1876]),
    "nano-jp4.txt": (["POM_5V_IN"], [1022, 900, 877, 877]),
    "xavier-agx-jp4.txt": (["GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"], [3346]),
    "agx-orin-jp5.txt": (["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"], [6831]),  # not +301
    "agx-orin-jp7-triple.txt": (["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"], [13907]),
    "orin-nx-jp5-mW.txt": (["VDD_IN"], [5299]),
    "orin-nano-jp6.txt": (["VDD_IN"], [4761] * 3),
    "thor-jp7.txt": (["VIN"], [19780]),
}


def fixture_lines(name):
    with open(os.path.join(TEGRA, name)) as f:
        return f.read().splitlines()


@needs_fixtures
def test_every_fixture_file_is_checked():
    assert sorted(os.path.basename(p) for p in glob.glob(os.path.join(TEGRA, "*.txt"))) == \
        sorted(EXPECTED)


@needs_fixtures
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_lines_parse_to_their_rails(name):
    lines = fixture_lines(name)
    assert [tegrastats.parse_line(line) for line in lines] == EXPECTED[name]


@needs_fixtures
@pytest.mark.parametrize("name", sorted(TOTALS))
def test_fixture_totals_follow_the_board_rule(name):
    rails_used, totals_mw = TOTALS[name]
    for line, total_mw in zip(fixture_lines(name), totals_mw):
        rails_w = {k: v / 1000.0 for k, v in tegrastats.parse_line(line).items()}
        watts, used = boards.total_power(rails_w)
        assert used == rails_used
        assert watts == pytest.approx(total_mw / 1000.0)
    samples = list(tegrastats.replay(fixture_lines(name), interval_s=1.0))
    assert [s.power_w for s in samples if s.rail == "total"] == pytest.approx(
        [t / 1000.0 for t in totals_mw])


@needs_fixtures
def test_date_prefix_is_parsed_and_times_the_replay():
    lines = fixture_lines("orin-nano-jp6.txt")
    wall, _ = tegrastats.parse_record(lines[0])
    assert time.localtime(wall)[:6] == (2026, 4, 27, 14, 59, 41)
    totals = [s for s in tegrastats.replay(lines) if s.rail == "total"]
    assert [s.t_mono for s in totals] == [0.0, 1.0, 2.0]
    assert totals[1].t_wall == wall + 1
    assert tegrastats.parse_record(fixture_lines("tx2-jp4-l4t32.txt")[0])[0] is None


TX2_LINE = ("RAM 2344/7852MB (lfb 1154x4MB) CPU [1%@345,off] EMC_FREQ 4%@1600 GR3D_FREQ 0%@624 "
            "APE 150 PLL@37.5C Tboard@32C VDD_SYS_GPU 152/152 VDD_IN 3056/3056")


def test_engine_tokens_and_space_runs():
    line = TX2_LINE.replace("APE 150", "APE 150 NVENC 716 NVDEC 716 MTS fg 0% bg 1%")
    line = line.replace("VDD_IN 3056", "VDD_IN   3056") + "  \n"
    assert tegrastats.parse_line(line) == {"VDD_SYS_GPU": 152, "VDD_IN": 3056}


def test_non_tegrastats_line_is_reported_with_its_line_number():
    with pytest.raises(tegrastats.TegrastatsLineError, match="not a tegrastats line"):
        tegrastats.parse_line("Linux 4.9.253-tegra aarch64")
    with pytest.raises(tegrastats.TegrastatsLineError, match="line 3:") as info:
        list(tegrastats.replay([TX2_LINE, "", "garbage here", TX2_LINE], interval_s=1.0))
    assert info.value.lineno == 3
    errors = []
    samples = list(tegrastats.replay([TX2_LINE, "garbage", TX2_LINE], interval_s=0.5,
                                     on_error=errors.append))
    assert [e.lineno for e in errors] == [2]
    assert sorted({s.t_mono for s in samples}) == [0.0, 1.0]  # line 3 keeps its own time


def test_line_without_rails_is_an_error():
    with pytest.raises(tegrastats.TegrastatsLineError, match="without power rails"):
        tegrastats.parse_line("RAM 2344/7852MB (lfb 1154x4MB) SWAP 0/3926MB (cached 0MB) GPU@35C")


def test_unknown_board_gives_rails_but_no_total():
    line = TX2_LINE.replace("VDD_SYS_GPU", "FOO").replace("VDD_IN", "BAR")
    rails = sorted(s.rail for s in tegrastats.replay([line], interval_s=1.0))
    assert rails == ["BAR", "FOO"]
    with pytest.raises(boards.UnknownBoard, match="no documented total-power rule"):
        boards.total_power({"BAR": 1.0, "FOO": 2.0})


def test_fake_lines_parse_back_to_the_profile():
    prof = PowerProfile.parse("2-12:10")
    for board in sim_tegrastats.BOARDS:
        maker = sim_tegrastats.LineMaker(board, prof)
        maker.line(1.0)
        rails = tegrastats.parse_line(maker.line(5.0))
        assert boards.total_power({k: v / 1000.0 for k, v in rails.items()})[0] == \
            pytest.approx(prof.power(5.0), abs=4e-3)  # +-1 mW of noise on up to 3 rails


@pytest.fixture
def fake_env(monkeypatch):
    def setup(spec="4:100", board="tx2", t0=None, **faults):
        env = sim_tegrastats.sim_env(PowerProfile.parse(spec), board, t0=t0, **faults)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
    return setup


def test_meter_runs_its_own_tegrastats_and_stops_it(fake_env):
    fake_env(board="agx-orin", garbage=0.2)
    meter = meters.create("tegrastats", interval_s=0.05, executable=sim_tegrastats.BIN)
    with meter:
        proc = meter._proc
        deadline = time.monotonic() + 10
        got = []
        while time.monotonic() < deadline and len([s for s in got if s.rail == "total"]) < 8:
            time.sleep(0.05)
            got.extend(meter.samples())
    assert proc.returncode is not None  # our child is gone
    assert meter.error is None
    totals = [s for s in got if s.rail == "total"]
    assert len(totals) >= 8
    assert all(s.power_w == pytest.approx(4.0, abs=0.01) for s in totals)
    assert meter.total_rails == ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"]
    assert meter.bad_lines >= 1  # the garbage lines were counted, not parsed
    ts = [s.t_mono for s in totals]
    assert ts == sorted(ts)


def test_meter_reports_a_tegrastats_that_dies(monkeypatch):
    monkeypatch.setenv("EBEDGE_SIM_BOARD", "no-such-board")
    meter = meters.create("tegrastats", interval_s=0.05, executable=sim_tegrastats.BIN)
    with meter:
        deadline = time.monotonic() + 10
        while meter.error is None and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "exited with code 1" in str(meter.error)
    assert "no-such-board" in str(meter.error)


def test_meter_refuses_a_missing_executable(tmp_path):
    with pytest.raises(meters.MeterError, match="not an executable"):
        meters.create("tegrastats", executable=str(tmp_path / "nope")).open()
