"""The board's state (power mode, clocks, temperatures) recorded with every run, so runs stay comparable.

Energy per epoch depends on the nvpmodel power mode, on whether jetson_clocks pinned the clocks, and on
thermal throttling as much as on the code, so a run records all of it before and after, and two runs
with different settings are never compared silently. Everything is read from files and two commands;
on a plain Linux box, or without permission, a missing piece is None, never an exception.
`root` redirects every file read, so tests build the sysfs/procfs layout of a board in a directory.
"""
import glob
import os
import re
import shutil
import socket
import subprocess
import time

from ebedge.measure.board_state import IGNORED_ZONE_TYPES, BoardState, PowerMode

COMMAND_TIMEOUT_S = 5.0
COMMAND_INTERVAL_S = 30.0  # the guard runs nvpmodel / jetson_clocks at most this often

NVPMODEL_STATUS = "/var/lib/nvpmodel/status"  # nvpmodel's record of the mode it set: "pmode:0000 ..."
NVPMODEL_CONF = "/etc/nvpmodel.conf"  # "< POWER_MODEL ID=0 NAME=MAXN >" lines name the modes


# L4T release -> JetPack (NVIDIA's release notes); other releases get the family only, e.g. "4.x".
JETPACK_BY_L4T = {
    "28.2.0": "3.2", "28.2.1": "3.3", "32.1.0": "4.2", "32.2.0": "4.2.1", "32.3.1": "4.3", "32.4.3": "4.4",
    "32.4.4": "4.4.1", "32.5.0": "4.5", "32.5.1": "4.5.1", "32.6.1": "4.6", "32.7.1": "4.6.1",
    "32.7.2": "4.6.2", "32.7.3": "4.6.3", "32.7.4": "4.6.4", "32.7.5": "4.6.5", "32.7.6": "4.6.6",
    "35.1.0": "5.0.2", "35.2.1": "5.1", "35.3.1": "5.1.1", "35.4.1": "5.1.2", "35.5.0": "5.1.3",
    "35.6.0": "5.1.4", "36.3.0": "6.0", "36.4.0": "6.1", "36.4.3": "6.2",
}
JETPACK_FAMILY = {"28": "3.x", "31": "4.x", "32": "4.x", "34": "5.x", "35": "5.x", "36": "6.x", "38": "7.x"}

GPU_DEVFREQ_NAMES = ("gpu", "gp10b", "gv11b", "ga10b", "gm20b", "gb10b")


def _path(root, path):
    return os.path.join(root, path.lstrip("/"))


def _read(root, path):
    """Text of a file under `root`, stripped of whitespace and NULs; None if unreadable."""
    try:
        with open(_path(root, path), "rb") as handle:
            return handle.read().decode("utf-8", "replace").replace("\x00", "").strip()
    except (IOError, OSError):
        return None


def _read_int(root, path):
    text = _read(root, path)
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def run_command(args):
    """Output of `args` (looked up on PATH) if it ran and exited 0 within the timeout, else None."""
    executable = shutil.which(args[0])
    if executable is None:
        return None
    try:
        done = subprocess.run([executable] + list(args[1:]), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=COMMAND_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def parse_l4t(text):
    """'# R32 (release), REVISION: 7.1, ...' -> '32.7.1'; None if not that format."""
    found = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)(?:\.(\d+))?", text or "")
    if not found:
        return None
    return "%s.%s.%s" % (found.group(1), found.group(2), found.group(3) or "0")


def jetpack_guess(l4t):
    """The JetPack that ships `l4t` ("32.7.1" -> "4.6.1"), or its family ("4.x"); None if unknown."""
    if not l4t:
        return None
    return JETPACK_BY_L4T.get(l4t) or JETPACK_FAMILY.get(l4t.split(".")[0])


def parse_nvpmodel(text):
    """`nvpmodel -q` output -> PowerMode (its raw text kept); None if it names no power mode."""
    found = re.search(r"NV Power Mode:[ \t]*([^\r\n]*[^\s])[ \t]*(?:\r?\n[ \t]*(\d+))?", text or "")
    if not found:
        return None
    fan = re.search(r"NV Fan Mode:\s*(\S+)", text)
    return PowerMode(found.group(1), int(found.group(2)) if found.group(2) else None,
                     fan.group(1) if fan else None, raw=text)


def parse_jetson_clocks(text):
    """`jetson_clocks --show` -> ({cpuN: {online, governor, min, max, cur}} in kHz, {min, max, cur} in Hz)."""
    cpus = {}
    for line in (text or "").splitlines():
        cpu = re.match(r"\s*(cpu\d+):\s*(.*)", line)
        if cpu:
            fields = dict(re.findall(r"(\w+)=(\S+)", cpu.group(2)))
            cpus[cpu.group(1)] = {"online": fields.get("Online") == "1", "governor": fields.get("Governor"),
                                  "min": _int(fields.get("MinFreq")), "max": _int(fields.get("MaxFreq")),
                                  "cur": _int(fields.get("CurrentFreq"))}
    gpu_line = re.search(r"^\s*GPU\s+(.*)$", text or "", re.MULTILINE)
    gpu = None
    if gpu_line:
        fields = dict(re.findall(r"(\w+)=(\S+)", gpu_line.group(1)))
        gpu = {"min": _int(fields.get("MinFreq")), "max": _int(fields.get("MaxFreq")),
               "cur": _int(fields.get("CurrentFreq"))}
    return cpus, gpu


def read_nvpmodel(root="/"):
    """The PowerMode from nvpmodel's status file and config; None without the status file. Same
    type as parse_nvpmodel's, so either source labels a run alike."""
    status = _read(root, NVPMODEL_STATUS)
    found = re.search(r"pmode:\s*(\d+)", status or "")
    if not found:
        return None
    mode = int(found.group(1))
    names = dict((int(i), n) for i, n in re.findall(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^\s>]+)",
                                                    _read(root, NVPMODEL_CONF) or ""))
    fan = re.search(r"fmode:\s*(\S+)", status)
    return PowerMode(names.get(mode, "mode %d" % mode), mode, fan.group(1) if fan else None)


class StateWatcher(object):
    """The state the power-mode guard compares, cheap enough to read at every phase mark.

    Power mode, clocks and governors come from files (nvpmodel's status file, cpufreq, devfreq);
    only where a file is missing does it fall back to `nvpmodel -q` / `jetson_clocks --show`, and
    runs each command at most every `interval_s` (their output is reused in between), so a TX2
    does not spend measured CPU time forking them three times per epoch. `command_runs` counts them.
    """

    def __init__(self, root="/", runner=None, interval_s=None, clock=time.monotonic):
        self.root = root
        self.runner = runner or run_command
        self.interval_s = COMMAND_INTERVAL_S if interval_s is None else interval_s
        self.clock = clock
        self.command_runs = 0
        self._last = {}  # command -> (when it ran, its output)

    def _command(self, args):
        now = self.clock()
        last = self._last.get(args)
        if last is None or now - last[0] >= self.interval_s:
            self.command_runs += 1
            last = (now, self.runner(list(args)))
            self._last[args] = last
        return last[1]

    def read(self):
        """A BoardState with what `comparable()` and `throttled()` read."""
        mode = read_nvpmodel(self.root) or parse_nvpmodel(self._command(("nvpmodel", "-q")))
        cpus, gpu = read_cpus(self.root), read_gpu(self.root)
        if cpus or gpu:
            pinned, source = pinned_guess(cpus, gpu), "sysfs"
        else:
            pinned = pinned_guess(*parse_jetson_clocks(self._command(("jetson_clocks", "--show"))))
            source = "jetson_clocks --show"
        return BoardState(power_mode=mode, clocks_pinned=pinned, pinned_from=source, cpus=cpus,
                          gpu=gpu, thermal=read_thermal(self.root))


def _int(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def pinned_guess(cpus, gpu):
    """True when every online CPU runs 'performance' or has min == max, and the GPU min == max.

    That is what jetson_clocks leaves behind; None when there is nothing to judge by.
    """
    online = [c for c in cpus.values() if c.get("online", True)]
    if not online and not gpu:
        return None
    cpus_pinned = all(c.get("governor") == "performance" or
                      (c.get("min") is not None and c.get("min") == c.get("max")) for c in online)
    gpu_pinned = gpu is None or (gpu.get("min") is not None and gpu.get("min") == gpu.get("max"))
    return cpus_pinned and gpu_pinned


def read_cpus(root="/"):
    """Per CPU: online, governor, cur/min/max (scaling_*) and hw_min/hw_max (cpuinfo_*) in kHz."""
    cpus = {}
    for cpu_dir in sorted(glob.glob(_path(root, "/sys/devices/system/cpu/cpu[0-9]*")),
                          key=lambda p: int(re.sub(r"\D", "", os.path.basename(p)))):
        name = os.path.basename(cpu_dir)
        base = "/sys/devices/system/cpu/%s/" % name
        online = _read_int(root, base + "online")
        freq = base + "cpufreq/"
        if online != 0 and not os.path.isdir(_path(root, freq)):
            continue  # no cpufreq, nothing to record; offline cores are kept (power modes switch cores off)
        cpus[name] = {"online": online != 0, "governor": _read(root, freq + "scaling_governor"),
                      "cur": _read_int(root, freq + "scaling_cur_freq"),
                      "min": _read_int(root, freq + "scaling_min_freq"),
                      "max": _read_int(root, freq + "scaling_max_freq"),
                      "hw_min": _read_int(root, freq + "cpuinfo_min_freq"),
                      "hw_max": _read_int(root, freq + "cpuinfo_max_freq")}
    return cpus


def read_gpu(root="/"):
    """The GPU's devfreq node: device, governor, cur/min/max in Hz; None where there is none."""
    for node in sorted(glob.glob(_path(root, "/sys/class/devfreq/*"))):
        device = os.path.basename(node)
        if any(name in device.lower() for name in GPU_DEVFREQ_NAMES):
            base = "/sys/class/devfreq/%s/" % device
            return {"device": device, "governor": _read(root, base + "governor"),
                    "cur": _read_int(root, base + "cur_freq"), "min": _read_int(root, base + "min_freq"),
                    "max": _read_int(root, base + "max_freq")}
    return None


def read_thermal(root="/"):
    """Every thermal zone: zone, type, temp_c, and passive_trip_c (where throttling starts) if it has one."""
    zones = []
    for zone_dir in sorted(glob.glob(_path(root, "/sys/class/thermal/thermal_zone*")),
                           key=lambda p: int(re.sub(r"\D", "", os.path.basename(p)) or 0)):
        zone = os.path.basename(zone_dir)
        base = "/sys/class/thermal/%s/" % zone
        milli = _read_int(root, base + "temp")
        passive = []
        for trip_type in glob.glob(os.path.join(zone_dir, "trip_point_*_type")):
            if _read(root, base + os.path.basename(trip_type)) == "passive":
                trip = _read_int(root, base + os.path.basename(trip_type).replace("_type", "_temp"))
                if trip is not None:
                    passive.append(trip / 1000.0)
        zones.append({"zone": zone, "type": _read(root, base + "type"),
                      "temp_c": None if milli is None else milli / 1000.0,
                      "passive_trip_c": min(passive) if passive else None})
    return zones


def read_fan(root="/"):
    """Fan PWM (0-255) and where it was read: pwm-fan's target_pwm (JetPack 4) or a hwmon pwm1."""
    candidates = ["/sys/devices/pwm-fan/target_pwm"]
    candidates += sorted(p[len(root.rstrip("/")):] for p in glob.glob(_path(root, "/sys/class/hwmon/hwmon*/pwm1")))
    for path in candidates:
        pwm = _read_int(root, path)
        if pwm is not None:
            return {"source": path, "pwm": pwm}
    return None


def _hostname(root):
    if os.path.abspath(root) == "/":
        return socket.gethostname()
    return _read(root, "/etc/hostname")


def snapshot(root="/", runner=None):
    """Everything that makes two runs comparable or not, as a BoardState."""
    runner = runner or run_command
    model = _read(root, "/proc/device-tree/model")
    compatible = _read(root, "/proc/device-tree/compatible") or ""
    l4t = parse_l4t(_read(root, "/etc/nv_tegra_release"))
    nvpmodel = parse_nvpmodel(runner(["nvpmodel", "-q"]))
    cpus = read_cpus(root)
    gpu = read_gpu(root)
    clocks_raw = runner(["jetson_clocks", "--show"])
    shown_cpus, shown_gpu = parse_jetson_clocks(clocks_raw)
    if shown_cpus or shown_gpu:
        pinned, pinned_from = pinned_guess(shown_cpus, shown_gpu), "jetson_clocks --show"
    else:
        pinned, pinned_from = pinned_guess(cpus, gpu), "sysfs"
    return BoardState(
        is_jetson=bool(l4t or "jetson" in (model or "").lower() or "nvidia,tegra" in compatible),
        model=model or None, hostname=_hostname(root),
        serial=_read(root, "/proc/device-tree/serial-number") or None, l4t=l4t, jetpack=jetpack_guess(l4t),
        power_mode=nvpmodel, clocks_pinned=pinned, pinned_from=pinned_from, clocks_raw=clocks_raw,
        cpus=cpus, gpu=gpu, thermal=read_thermal(root), fan=read_fan(root))


def hottest_c(root="/"):
    """The hottest real thermal zone in degrees C (placeholder zones skipped), or None without zones."""
    temps = [z["temp_c"] for z in read_thermal(root)
             if z["temp_c"] is not None and z["type"] not in IGNORED_ZONE_TYPES]
    return max(temps) if temps else None


def cooldown(target_c, timeout_s, root="/", poll_s=1.0, sleep=time.sleep):
    """Wait until every thermal zone reads below `target_c`, so runs start from the same thermal state.

    Returns (reached, hottest temperature seen at the last poll in C). A board without thermal zones
    has nothing to wait for: (True, None). Time is counted in polls, so an injected `sleep` works.
    """
    waited = 0.0
    while True:
        hottest = hottest_c(root)
        if hottest is None or hottest < target_c:
            return True, hottest
        if waited >= timeout_s:
            return False, hottest
        step = min(poll_s, timeout_s - waited)
        sleep(step)
        waited += step
