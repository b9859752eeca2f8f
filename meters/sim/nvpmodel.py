"""A fake `nvpmodel` whose power modes change a simulated board's power and clocks.

`FakePowerModes(root, modes)` lays out what a Jetson has for its power modes under `root`:
/etc/nvpmodel.conf naming the modes, nvpmodel's status file, cpufreq and GPU devfreq limits,
and an executable `bin/nvpmodel` (`-q` prints the mode as the real one does; `-m ID` switches,
rewriting the status file and the clock limits). `profile` is a ModalProfile: P(t) follows the
mode in force, each mode with its own PowerProfile, so a meter reading a FakeIna3221Tree built on
it sees the switch, and `energy(t0, t1)` is still the exact integral across switches.
"""
import json
import os
import sys

STATUS = "var/lib/nvpmodel/status"
SPEC = "var/lib/nvpmodel/sim.json"  # the simulator's own record of the modes (not on a real board)
CPUS = 2
CPU_HW = (345600, 2035200)  # kHz, a TX2's Denver/A57 cpuinfo range
GPU_NODE = "sys/class/devfreq/17000000.gp10b"
GPU_FREQS = (114750000, 522750000, 854250000, 1300500000)


def _write(path, text):
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory)
    tmp = path + ".new"
    with open(tmp, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)  # atomic, as nvpmodel's own status file


def _link(path, target):
    """The current clock reads as its limit, as a loaded board's does: a cap takes effect at once."""
    if not os.path.islink(path):
        os.symlink(target, path)


class Mode(object):
    """One power mode: id, name, its PowerProfile, CPU max (kHz) and GPU max (Hz)."""

    def __init__(self, mode_id, name, profile, cpu_max_khz, gpu_max_hz):
        self.id, self.name, self.profile = mode_id, name, profile
        self.cpu_max_khz, self.gpu_max_hz = cpu_max_khz, gpu_max_hz


class ModalProfile(object):
    """P(t) of the mode in force; the mode is read from the status file when it changes."""

    def __init__(self, status_path, modes, start_mode):
        self.status_path = status_path
        self.modes = dict((m.id, m) for m in modes)
        self.history = [(0.0, start_mode)]  # (sim time the mode took effect, mode id)

    def _observe(self, t):
        mode = read_status(self.status_path)  # read every time: a few microseconds, no stale cache
        if mode is not None and mode != self.history[-1][1] and t >= self.history[-1][0]:
            self.history.append((t, mode))

    def power(self, t):
        self._observe(t)
        return self.modes[self.history[-1][1]].profile.power(t)

    def energy(self, t0, t1):
        """Exact joules between t0 and t1, each stretch under the profile of its mode."""
        total = 0.0
        for k, (start, mode) in enumerate(self.history):
            end = self.history[k + 1][0] if k + 1 < len(self.history) else float("inf")
            a, b = max(t0, start), min(t1, end)
            if b > a:
                total += self.modes[mode].profile.energy(a, b)
        return total


def read_status(path):
    try:
        with open(path) as handle:
            text = handle.read()
    except (IOError, OSError):
        return None
    for word in text.split():
        if word.startswith("pmode:"):
            return int(word[len("pmode:"):])
    return None


class FakePowerModes(object):
    """A board's power-mode files and a fake `nvpmodel` under `root`; `profile` for the meter tree."""

    def __init__(self, root, modes, start_mode=None):
        self.root = root
        self.modes = list(modes)
        start = self.modes[0].id if start_mode is None else start_mode
        conf = "".join("< POWER_MODEL ID=%d NAME=%s >\nCPU_ONLINE CORE_0 1\n\n" % (m.id, m.name)
                       for m in self.modes)
        _write(os.path.join(root, "etc", "nvpmodel.conf"), conf)
        _write(os.path.join(root, SPEC), json.dumps(
            [{"id": m.id, "name": m.name, "cpu_max_khz": m.cpu_max_khz, "gpu_max_hz": m.gpu_max_hz}
             for m in self.modes]))
        for n in range(CPUS):
            base = os.path.join(root, "sys/devices/system/cpu/cpu%d" % n)
            _write(os.path.join(base, "online"), "1\n")
            for name, value in (("scaling_governor", "schedutil"), ("cpuinfo_min_freq", CPU_HW[0]),
                                ("cpuinfo_max_freq", CPU_HW[1]), ("scaling_min_freq", CPU_HW[0])):
                _write(os.path.join(base, "cpufreq", name), "%s\n" % value)
            _link(os.path.join(base, "cpufreq", "scaling_cur_freq"), "scaling_max_freq")
        gpu = os.path.join(root, GPU_NODE)
        _write(os.path.join(gpu, "governor"), "nvhost_podgov\n")
        _write(os.path.join(gpu, "min_freq"), "%d\n" % GPU_FREQS[0])
        _write(os.path.join(gpu, "available_frequencies"), " ".join(str(f) for f in GPU_FREQS) + "\n")
        _link(os.path.join(gpu, "cur_freq"), "max_freq")
        switch(root, start)
        self.profile = ModalProfile(os.path.join(root, STATUS), self.modes, start)
        self.bin_dir = os.path.join(root, "bin")
        script = os.path.join(self.bin_dir, "nvpmodel")
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        _write(script, "#!%s\nimport sys\nsys.path.insert(0, %r)\nfrom meters.sim.nvpmodel import main\n"
                       "sys.exit(main(%r, sys.argv[1:]))\n" % (sys.executable, here, root))
        os.chmod(script, 0o755)

    def mode(self):
        return read_status(os.path.join(self.root, STATUS))


def switch(root, mode_id):
    """What `nvpmodel -m ID` does here: the status file and the mode's clock limits; False if unknown."""
    with open(os.path.join(root, SPEC)) as handle:
        modes = dict((m["id"], m) for m in json.load(handle))
    if mode_id not in modes:
        return False
    mode = modes[mode_id]
    for n in range(CPUS):
        base = os.path.join(root, "sys/devices/system/cpu/cpu%d/cpufreq" % n)
        _write(os.path.join(base, "scaling_max_freq"), "%d\n" % mode["cpu_max_khz"])
    _write(os.path.join(root, GPU_NODE, "max_freq"), "%d\n" % mode["gpu_max_hz"])
    _write(os.path.join(root, STATUS), "pmode:%04d fmode:quiet\n" % mode_id)
    return True


def main(root, args):
    """The fake command: `-q` prints the mode, `-m ID` switches; a `deny` file makes `-m` fail as non-root."""
    status = os.path.join(root, STATUS)
    if args[:1] == ["-q"]:
        mode = read_status(status)
        with open(os.path.join(root, SPEC)) as handle:
            names = dict((m["id"], m["name"]) for m in json.load(handle))
        sys.stdout.write("NV Fan Mode:quiet\nNV Power Mode: %s\n%d\n" % (names.get(mode, "?"), mode))
        return 0
    if args[:1] == ["-m"] and len(args) == 2 and args[1].isdigit():
        if os.path.exists(os.path.join(root, "deny")):
            sys.stdout.write("NVPM ERROR: failed to write /var/lib/nvpmodel/status: Permission denied\n")
            return 1
        if not switch(root, int(args[1])):
            sys.stdout.write("NVPM ERROR: Invalid mode %s\n" % args[1])
            return 1
        return 0
    sys.stdout.write("usage: nvpmodel -q | -m ID\n")
    return 2
