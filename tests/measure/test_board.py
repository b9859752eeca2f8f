"""Board snapshots on fake sysfs/procfs trees (a TX2 on JetPack 4.6, a plain Linux box) and fake commands."""
import json
import os
import shutil
import stat

import pytest

from ebedge.measure import board
from ebedge.measure.board_state import BoardState, changes


def _label(state):
    return state.power_mode_label

TX2_CPUS = {  # cpu: (max kHz); cpu1/cpu2 are the Denver cores
    "cpu0": 2035200, "cpu1": 2035200, "cpu2": 2035200, "cpu3": 2035200, "cpu4": 2035200, "cpu5": 2035200}
TX2_ZONES = [("BCPU-therm", 41500, 96500), ("MCPU-therm", 41000, 96500), ("GPU-therm", 39500, 97500),
             ("PLL-therm", 38000, None), ("PMIC-Die", 100000, None), ("thermal-fan-est", 40100, None)]

NVPMODEL_MAXN = "NV Fan Mode:quiet\nNV Power Mode: MAXN\n0\n"
NVPMODEL_MAXQ = "NV Fan Mode:quiet\nNV Power Mode: MAXQ\n1\n"


def put(root, path, text):
    full = os.path.join(str(root), path.lstrip("/"))
    if not os.path.isdir(os.path.dirname(full)):
        os.makedirs(os.path.dirname(full))
    with open(full, "w") as handle:
        handle.write(text)
    return full


def tx2_tree(root, governor="schedutil", pinned=False):
    """The files a Jetson TX2 devkit on JetPack 4.6.1 (L4T 32.7.1) exposes, as far as board.py reads them."""
    put(root, "/proc/device-tree/model", "NVIDIA Jetson TX2 Developer Kit\x00")
    put(root, "/proc/device-tree/compatible", "nvidia,p2771-0000\x00nvidia,tegra186\x00")
    put(root, "/etc/nv_tegra_release", "# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t186ref, "
                                       "EABI: aarch64, DATE: Sat Feb 19 17:05:08 UTC 2022\n")
    put(root, "/etc/hostname", "tx2-lab\n")
    for cpu, top in TX2_CPUS.items():
        base = "/sys/devices/system/cpu/%s/" % cpu
        put(root, base + "online", "1\n")
        put(root, base + "cpufreq/scaling_governor", governor + "\n")
        put(root, base + "cpufreq/scaling_min_freq", "%d\n" % (top if pinned else 345600))
        put(root, base + "cpufreq/scaling_max_freq", "%d\n" % top)
        put(root, base + "cpufreq/scaling_cur_freq", "%d\n" % top)
        put(root, base + "cpufreq/cpuinfo_min_freq", "345600\n")
        put(root, base + "cpufreq/cpuinfo_max_freq", "%d\n" % top)
    gpu = "/sys/class/devfreq/17000000.gp10b/"
    put(root, gpu + "governor", "nvhost_podgov\n")
    put(root, gpu + "min_freq", "%d\n" % (1300500000 if pinned else 114750000))
    put(root, gpu + "max_freq", "1300500000\n")
    put(root, gpu + "cur_freq", "1300500000\n")
    put(root, "/sys/class/devfreq/3d00000.host1x/governor", "userspace\n")  # not the GPU
    for index, (kind, milli, passive) in enumerate(TX2_ZONES):
        base = "/sys/class/thermal/thermal_zone%d/" % index
        put(root, base + "type", kind + "\n")
        put(root, base + "temp", "%d\n" % milli)
        put(root, base + "trip_point_0_type", "critical\n")
        put(root, base + "trip_point_0_temp", "101000\n")
        if passive is not None:
            put(root, base + "trip_point_1_type", "passive\n")
            put(root, base + "trip_point_1_temp", "%d\n" % passive)
    put(root, "/sys/devices/pwm-fan/target_pwm", "77\n")
    return str(root)


def plain_tree(root):
    """An x86 laptop: cpufreq and thermal zones, no device tree, no L4T, hwmon fan."""
    put(root, "/etc/hostname", "laptop\n")
    for cpu in ("cpu0", "cpu1"):
        base = "/sys/devices/system/cpu/%s/cpufreq/" % cpu
        put(root, base + "scaling_governor", "powersave\n")
        put(root, base + "scaling_min_freq", "400000\n")
        put(root, base + "scaling_max_freq", "4200000\n")
        put(root, base + "scaling_cur_freq", "1800000\n")
    put(root, "/sys/class/thermal/thermal_zone0/type", "x86_pkg_temp\n")
    put(root, "/sys/class/thermal/thermal_zone0/temp", "52000\n")
    put(root, "/sys/class/hwmon/hwmon3/pwm1", "120\n")
    return str(root)


def fake_command(bin_dir, name, output, code=0, delay_s=0):
    """An executable that prints `output` (PATH holds only bin_dir, so it uses shell builtins)."""
    delay = "/bin/sleep %s\n" % delay_s if delay_s else ""
    path = put(bin_dir, name, "#!/bin/sh\n%sprintf '%%s' '%s'\nexit %d\n" % (delay, output, code))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)


@pytest.fixture
def bin_dir(tmp_path, monkeypatch):
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", str(path))
    return str(path)


def jetson_clocks_show(pinned):
    lines = ["SOC family:tegra186  Machine:quill", "Online CPUs: 0-5"]
    for cpu, top in sorted(TX2_CPUS.items()):
        lines.append("%s: Online=1 Governor=schedutil MinFreq=%d MaxFreq=%d CurrentFreq=%d IdleStates: C1=1 c7=1"
                     % (cpu, top if pinned else 345600, top, top))
    lines.append("GPU MinFreq=%d MaxFreq=1300500000 CurrentFreq=1300500000" % (1300500000 if pinned else 114750000))
    lines.append("EMC MinFreq=40800000 MaxFreq=1866000000 CurrentFreq=1866000000 FreqOverride=%d" % int(pinned))
    lines.append("Fan: PWM=77")
    lines.append("NV Power Mode: MAXN")
    return "\n".join(lines) + "\n"


def test_tx2_snapshot(tmp_path, bin_dir):
    root = tx2_tree(tmp_path / "tx2")
    fake_command(bin_dir, "nvpmodel", NVPMODEL_MAXN)
    fake_command(bin_dir, "jetson_clocks", jetson_clocks_show(pinned=True))
    snap = board.snapshot(root=root)
    data = snap.to_json()  # config.json["board"]; it reads back as written
    assert BoardState.from_json(json.loads(json.dumps(data))).to_json() == data
    assert data["is_jetson"] and data["model"] == "NVIDIA Jetson TX2 Developer Kit"
    assert data["l4t"] == "32.7.1" and data["jetpack"] == "4.6.1"
    assert data["hostname"] == "tx2-lab"
    assert (data["nvpmodel"]["name"], data["nvpmodel"]["id"], data["nvpmodel"]["fan_mode"]) == ("MAXN", 0, "quiet")
    assert _label(snap) == "MAXN (0)"
    assert data["jetson_clocks"]["pinned"] is True and "GPU MinFreq" in data["jetson_clocks"]["raw"]
    assert sorted(data["cpus"]) == sorted(TX2_CPUS)
    assert data["cpus"]["cpu1"] == {"online": True, "governor": "schedutil", "cur": 2035200, "min": 345600,
                                    "max": 2035200, "hw_min": 345600, "hw_max": 2035200}
    assert data["gpu"]["device"] == "17000000.gp10b" and data["gpu"]["max"] == 1300500000
    temps = {z["type"]: z["temp_c"] for z in data["thermal"]}
    assert temps["BCPU-therm"] == 41.5 and temps["PMIC-Die"] == 100.0
    assert [z["passive_trip_c"] for z in data["thermal"]][:3] == [96.5, 96.5, 97.5]
    assert data["fan"] == {"source": "/sys/devices/pwm-fan/target_pwm", "pwm": 77}
    assert snap.throttled() is False


def test_pinned_guess_without_jetson_clocks_reads_sysfs(tmp_path, bin_dir):
    free = board.snapshot(root=tx2_tree(tmp_path / "a"))
    assert free.to_json()["nvpmodel"] is None and free.to_json()["jetson_clocks"]["raw"] is None
    assert (free.to_json()["jetson_clocks"]["pinned"], free.to_json()["jetson_clocks"]["pinned_from"]) == (False, "sysfs")
    pinned = board.snapshot(root=tx2_tree(tmp_path / "b", pinned=True))
    assert pinned.to_json()["jetson_clocks"]["pinned"] is True
    performance = board.snapshot(root=tx2_tree(tmp_path / "c", governor="performance"))
    assert performance.to_json()["jetson_clocks"]["pinned"] is False  # the GPU still scales


def test_failing_or_hanging_command_is_none(tmp_path, bin_dir, monkeypatch):
    fake_command(bin_dir, "jetson_clocks", "Error: run as root\n", code=1)
    fake_command(bin_dir, "nvpmodel", NVPMODEL_MAXN, delay_s=5)
    monkeypatch.setattr(board, "COMMAND_TIMEOUT_S", 0.3)
    snap = board.snapshot(root=tx2_tree(tmp_path / "tx2"))
    assert snap.to_json()["nvpmodel"] is None and snap.to_json()["jetson_clocks"]["raw"] is None


def test_plain_linux_snapshot(tmp_path, bin_dir):
    snap = board.snapshot(root=plain_tree(tmp_path / "pc"))
    data = json.loads(json.dumps(snap.to_json()))
    assert data["is_jetson"] is False
    assert data["model"] is None and data["l4t"] is None and data["jetpack"] is None and data["nvpmodel"] is None
    assert data["gpu"] is None and data["hostname"] == "laptop"
    assert data["cpus"]["cpu1"]["governor"] == "powersave" and data["cpus"]["cpu1"]["online"] is True
    assert data["thermal"] == [{"zone": "thermal_zone0", "type": "x86_pkg_temp", "temp_c": 52.0,
                                "passive_trip_c": None}]
    assert data["fan"] == {"source": "/sys/class/hwmon/hwmon3/pwm1", "pwm": 120}
    assert snap.throttled() is False  # cur is above min, governor not 'performance'
    assert changes(snap, snap) == []


def test_empty_root_gives_nones_not_errors(tmp_path, bin_dir):
    snap = board.snapshot(root=str(tmp_path))
    assert snap.to_json()["cpus"] == {} and snap.to_json()["thermal"] == [] and snap.to_json()["fan"] is None
    assert snap.to_json()["jetson_clocks"]["pinned"] is None and snap.throttled() is None


def test_changes_detects_mode_and_clock_changes(tmp_path, bin_dir):
    root = tx2_tree(tmp_path / "tx2")
    fake_command(bin_dir, "nvpmodel", NVPMODEL_MAXN)
    before = board.snapshot(root=root)
    fake_command(bin_dir, "nvpmodel", NVPMODEL_MAXQ)
    put(root, "/sys/devices/system/cpu/cpu3/cpufreq/scaling_max_freq", "1267200\n")
    put(root, "/sys/devices/system/cpu/cpu1/online", "0\n")  # an offline core loses its cpufreq directory
    shutil.rmtree(os.path.join(root, "sys/devices/system/cpu/cpu1/cpufreq"))
    put(root, "/sys/class/thermal/thermal_zone0/temp", "60000\n")  # temperatures are not settings
    after = board.snapshot(root=root)
    found = changes(before, after)
    assert found[0] == "power mode changed: MAXN (0) -> MAXQ (1)"
    assert "cpu1 went offline" in found
    assert "cpu3 max freq changed: 2035200 -> 1267200 kHz" in found
    assert len(found) == 3
    # the runner keeps only the comparable part of the first snapshot; that compares the same way
    assert changes(before.comparable(), after.comparable()) == found
    assert changes(before.comparable(), after) == found


def test_changes_detects_governor_and_gpu(tmp_path, bin_dir):
    before = board.snapshot(root=tx2_tree(tmp_path / "a"))
    after = board.snapshot(root=tx2_tree(tmp_path / "b", governor="performance", pinned=True))
    found = changes(before, after)
    assert "cpu0 governor changed: schedutil -> performance" in found
    assert "gpu min freq changed: 114750000 -> 1300500000 Hz" in found
    assert "clocks pinned (jetson_clocks) changed: False -> True" in found


def test_throttled_by_trip_point_and_by_capped_clock(tmp_path, bin_dir):
    root = tx2_tree(tmp_path / "hot")
    put(root, "/sys/class/thermal/thermal_zone2/temp", "98000\n")  # GPU-therm past its 97.5 C passive trip
    assert board.snapshot(root=root).throttled() is True
    root = tx2_tree(tmp_path / "capped", governor="performance", pinned=True)
    assert board.snapshot(root=root).throttled() is False
    put(root, "/sys/devices/system/cpu/cpu4/cpufreq/scaling_cur_freq", "1420800\n")  # below its pinned floor
    assert board.snapshot(root=root).throttled() is True


def test_parsers_on_other_formats():
    assert board.parse_l4t("# R28 (release), REVISION: 2.1, GCID: 11272647") == "28.2.1"
    assert board.jetpack_guess("28.2.1") == "3.3" and board.jetpack_guess("32.9.9") == "4.x"
    assert board.parse_l4t("garbage") is None and board.jetpack_guess(None) is None
    assert board.parse_nvpmodel("NVPM WARN: unreadable") is None


@pytest.mark.parametrize("sent", [None, [], "MAXN", {"nvpmodel": "MAXN", "jetson_clocks": [1],
                                                     "cpus": {"cpu0": 5}, "thermal": "hot",
                                                     "model": 7, "is_jetson": "yes"},
                                  {"nvpmodel": {"name": 3, "id": "0"}}])
def test_board_state_from_a_hostile_board_reads_as_unknown(sent):
    state = BoardState.from_json(sent)
    assert state.power_mode is None and state.model is None and state.is_jetson is None
    assert state.cpus == {} and state.thermal == [] and state.pool == [None, None]
    assert state.throttled() is None and changes(state, state) == []


def test_cooldown_waits_until_every_zone_is_below_target(tmp_path):
    root = tx2_tree(tmp_path / "tx2")  # PMIC-Die's constant 100 C placeholder must not block it
    temp_file = os.path.join(root, "sys/class/thermal/thermal_zone1/temp")
    put(root, "/sys/class/thermal/thermal_zone1/temp", "70000\n")
    slept = []

    def fake_sleep(seconds):  # the board cools by 5 C per poll
        slept.append(seconds)
        with open(temp_file) as handle:
            milli = int(handle.read())
        with open(temp_file, "w") as handle:
            handle.write("%d\n" % (milli - 5000))

    reached, hottest = board.cooldown(50.0, timeout_s=60, root=root, poll_s=2.0, sleep=fake_sleep)
    assert reached is True and hottest == 45.0  # 70 -> 45 in five polls; next zone is 41.5
    assert slept == [2.0] * 5


def test_cooldown_gives_up_after_timeout(tmp_path):
    root = tx2_tree(tmp_path / "tx2")
    slept = []
    reached, hottest = board.cooldown(30.0, timeout_s=5, root=root, poll_s=2.0, sleep=slept.append)
    assert reached is False and hottest == 41.5
    assert sum(slept) == 5 and slept == [2.0, 2.0, 1.0]


def test_cooldown_without_zones_returns_at_once(tmp_path):
    assert board.cooldown(40.0, 10, root=str(tmp_path), sleep=lambda s: pytest.fail("slept")) == (True, None)


TX2_NVPMODEL_CONF = ("< PARAM TYPE=FILE NAME=CPU_ONLINE >\nCORE_0 /sys/devices/system/cpu/cpu0/online\n"
                     "< POWER_MODEL ID=0 NAME=MAXN >\nCPU_ONLINE CORE_0 1\n"
                     "< POWER_MODEL ID=1 NAME=MAXQ >\nCPU_ONLINE CORE_0 1\n< PM_CONFIG DEFAULT=3 >\n")


def counting_command(bin_dir, name, output_file, count_file):
    """An executable that logs each call to `count_file` and prints `output_file`."""
    path = put(bin_dir, name, "#!/bin/sh\necho call >> '%s'\nwhile IFS= read -r line; do echo \"$line\"; done < '%s'\n"
               % (count_file, output_file))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)


def calls(count_file):
    return len(open(count_file).read().splitlines()) if os.path.exists(count_file) else 0


def test_watcher_reads_the_power_mode_from_nvpmodel_status_without_commands(tmp_path, bin_dir):
    root = tx2_tree(tmp_path / "tx2")
    put(root, board.NVPMODEL_CONF, TX2_NVPMODEL_CONF)
    put(root, board.NVPMODEL_STATUS, "pmode:0000 fmode:quiet\n")
    output, count = put(tmp_path, "out", NVPMODEL_MAXQ), str(tmp_path / "count")
    counting_command(bin_dir, "nvpmodel", output, count)
    counting_command(bin_dir, "jetson_clocks", output, count)
    watcher = board.StateWatcher(root=root)
    first = watcher.read()
    assert _label(first) == "MAXN (0)" and first.power_mode.fan_mode == "quiet"
    assert (first.clocks_pinned, first.pinned_from) == (False, "sysfs")
    put(root, board.NVPMODEL_STATUS, "pmode:0001 fmode:quiet\n")
    put(root, "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "performance\n")
    second = watcher.read()
    assert changes(first, second) == ["power mode changed: MAXN (0) -> MAXQ (1)",
                                            "cpu0 governor changed: schedutil -> performance"]
    assert calls(count) == 0 and watcher.command_runs == 0
    put(root, board.NVPMODEL_STATUS, "pmode:0007\n")  # a mode the config does not name
    assert _label(watcher.read()) == "mode 7 (7)"


def test_watcher_falls_back_to_nvpmodel_at_most_every_30_seconds(tmp_path, bin_dir):
    root = tx2_tree(tmp_path / "tx2")  # no nvpmodel status file
    output, count = put(tmp_path, "out", NVPMODEL_MAXN), str(tmp_path / "count")
    counting_command(bin_dir, "nvpmodel", output, count)
    now = [100.0]
    watcher = board.StateWatcher(root=root, clock=lambda: now[0])
    assert _label(watcher.read()) == "MAXN (0)" and calls(count) == 1
    put(tmp_path, "out", NVPMODEL_MAXQ)
    for step in range(29):  # three phase marks per epoch for a while: no new process
        now[0] += 1.0
        assert _label(watcher.read()) == "MAXN (0)"
    assert calls(count) == 1 and watcher.command_runs == 1
    now[0] += 1.0  # 30 s after the first call
    assert _label(watcher.read()) == "MAXQ (1)" and calls(count) == 2


def test_watcher_without_sysfs_clocks_asks_jetson_clocks_rate_limited(tmp_path, bin_dir):
    output, count = put(tmp_path, "out", jetson_clocks_show(pinned=True)), str(tmp_path / "count")
    counting_command(bin_dir, "jetson_clocks", output, count)
    now = [0.0]
    watcher = board.StateWatcher(root=str(tmp_path / "empty"), clock=lambda: now[0], interval_s=10)
    for _ in range(5):
        state = watcher.read()
    assert (state.clocks_pinned, state.pinned_from) == (True, "jetson_clocks --show")
    assert calls(count) == 1  # nvpmodel is absent: tried (not found) once, like jetson_clocks
    now[0] = 10.0
    watcher.read()
    assert calls(count) == 2
