"""Putting the board into a run's power mode (nvpmodel), clock caps and jetson_clocks, and back.

On a Jetson the power mode moves energy per epoch more than most code changes, so a suite may
sweep it. Before a cell the board is switched with `nvpmodel -m ID`, capped (devfreq/cpufreq
max), pinned if asked (`jetson_clocks`), left to settle (clocks steady, thermal zones below
`--cooldown`), and checked: a board that does not report the mode asked for is refused. At the
end the original mode, caps and clock state come back, also after a failure or Ctrl-C.

nvpmodel and jetson_clocks need root. Each command is tried as it is, then through `sudo -n`
(never a password prompt); the sudoers line that allows it is SUDOERS_LINE (docs/power-modes.md).
Without either, the switch is refused in one line. `root` redirects every file read and written,
so tests use a fake board tree (meters/sim/nvpmodel.py).
"""
import collections
import os
import re
import subprocess
import tempfile
import time

from ebedge.errors import EbedgeError
from ebedge.measure import board
from ebedge.measure.board_state import FREQ_TOLERANCE

BOARD_ROOT = "/"  # where the board's /etc, /sys and /var live (tests point it at a fake tree)
SUDO = ("sudo", "-n")
SUDOERS_LINE = "USER ALL=(root) NOPASSWD: /usr/sbin/nvpmodel, /usr/bin/jetson_clocks"
SETTLE_POLL_S = 1.0
SETTLE_TIMEOUT_S = 120.0
COOLDOWN_TIMEOUT_S = 1800.0

Target = collections.namedtuple("Target", "power_mode gpu_max_freq_hz cpu_max_freq_khz pin_clocks")


def target_of(settings):
    """The board state `settings` asks for; `empty(target)` when they ask for none."""
    return Target(settings.get("power_mode"), settings.get("gpu_max_freq_hz"),
                  settings.get("cpu_max_freq_khz"), bool(settings.get("pin_clocks")))


def empty(target):
    return target.power_mode is None and target.gpu_max_freq_hz is None and \
        target.cpu_max_freq_khz is None and not target.pin_clocks


def read_modes(root="/"):
    """[(id, name)] of the modes /etc/nvpmodel.conf defines, in file order ([] without it)."""
    text = board._read(root, board.NVPMODEL_CONF) or ""
    return [(int(i), n) for i, n in re.findall(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^\s>]+)", text)]


def resolve_mode(requested, modes):
    """(id, name) of `requested` (an id, or a name in any case) among `modes`; one-line error if absent."""
    for mode_id, name in modes:
        if requested == mode_id or (isinstance(requested, str) and requested.lower() == name.lower()):
            return mode_id, name
    known = ", ".join("%d %s" % m for m in modes) or "none (no %s)" % board.NVPMODEL_CONF
    raise EbedgeError("power mode %r is not one of this board's modes: %s" % (requested, known))


def _run(args):
    """(exit status, output) of `args`; 127 when it cannot be started."""
    try:
        done = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return 127, str(exc)
    return done.returncode, done.stdout


def privileged(args, run=_run):
    """Run `args` as is, else through `sudo -n`; returns the output, or raises one line saying why not."""
    status, out = run(args)
    if status == 0:
        return out
    if os.geteuid() != 0:
        sudo_status, sudo_out = run(list(SUDO) + list(args))
        if sudo_status == 0:
            return sudo_out
        out = sudo_out or out
    last = (out or "").strip().splitlines()
    raise EbedgeError("cannot run `%s` (%s); allow it with the sudoers line `%s` (docs/power-modes.md)"
                      % (" ".join(args), board_text(last[-1] if last else "exit %d" % status), SUDOERS_LINE))


def board_text(text, limit=200):
    """A command's message, one printable line of bounded length."""
    return re.sub(r"[^\x20-\x7e]", "?", text)[:limit]


class Session(object):
    """Applies targets one after another and restores what was there first, once, at the end.

    Use as a context manager (`with Session() as s: s.apply(target)`), so that the restore runs
    after a failure or KeyboardInterrupt too.
    """

    def __init__(self, root=None, run=_run, sleep=time.sleep, clock=time.monotonic,
                 settle_timeout_s=SETTLE_TIMEOUT_S, poll_s=SETTLE_POLL_S):
        self.root = BOARD_ROOT if root is None else root
        self.run = run
        self.sleep = sleep
        self.clock = clock
        self.settle_timeout_s = settle_timeout_s
        self.poll_s = poll_s
        self.original_mode = None  # (id, name) before the first switch
        self.original_caps = {}  # sysfs path -> its value before the first cap
        self.clocks_file = None  # jetson_clocks --store file before the first pin
        self.current = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        problems = self.restore()
        if problems and exc[0] is None:
            raise EbedgeError("board not restored: %s" % "; ".join(problems))
        return False

    def apply(self, target, cooldown_temp_c=None):
        """Put the board into `target`, wait until it settles, check it; returns what was done."""
        record = {"requested": dict(target._asdict()), "flags": []}
        if target.power_mode is not None:  # "maxq", "MAXQ" and 1 are one target
            target = target._replace(power_mode=resolve_mode(target.power_mode, read_modes(self.root))[0])
        if target == self.current:
            record["switched"] = False
        else:
            self._apply(target, record)
            record["switched"] = True
            self.current = target
        began = self.clock()
        record["settled"] = self._settle(cooldown_temp_c)
        record["settle_s"] = round(self.clock() - began, 3)
        if not record["settled"]:
            record["flags"].append("warning: clocks/temperature did not settle within %.0f s after the "
                                   "power-mode switch" % self.settle_timeout_s)
        record["power_mode"] = self.check(target)
        return record

    def _apply(self, target, record):
        if target.pin_clocks and self.clocks_file is None:  # the state before anything changed
            handle, path = tempfile.mkstemp(prefix="ebedge-clocks-")
            os.close(handle)
            privileged(["jetson_clocks", "--store", path], self.run)
            self.clocks_file = path
        modes = read_modes(self.root)
        wanted = resolve_mode(target.power_mode, modes) if target.power_mode is not None else None
        if wanted is not None:
            now = board.read_nvpmodel(self.root) or board.parse_nvpmodel(self._query())
            if self.original_mode is None:
                if not now or now.id is None:
                    raise EbedgeError("cannot tell the board's current power mode, so it could not be "
                                      "restored; refusing to switch")
                self.original_mode = (now.id, now.name)
            if not now or now.id != wanted[0]:
                privileged(["nvpmodel", "-m", str(wanted[0])], self.run)
            record["mode"] = {"id": wanted[0], "name": wanted[1]}
        self._restore_caps()  # a new target starts from the mode's own limits
        if target.gpu_max_freq_hz is not None:
            self._cap(_gpu_max_paths(self.root), target.gpu_max_freq_hz, "GPU", _gpu_range(self.root))
        if target.cpu_max_freq_khz is not None:
            self._cap(_cpu_max_paths(self.root), target.cpu_max_freq_khz, "CPU", _cpu_range(self.root))
        if target.pin_clocks:
            privileged(["jetson_clocks"], self.run)
        elif self.clocks_file is not None:
            self._restore_clocks()

    def _query(self):
        status, out = self.run(["nvpmodel", "-q"])
        return out if status == 0 else None

    def _cap(self, paths, value, what, bounds):
        if not paths:
            raise EbedgeError("cannot cap the %s clock: no frequency limit files on this board" % what)
        low, high = bounds
        if (low is not None and value < low) or (high is not None and value > high):
            raise EbedgeError("%s clock cap %d is outside the hardware range %s-%s" % (what, value, low, high))
        for path in paths:
            if path not in self.original_caps:
                self.original_caps[path] = board._read(self.root, path)
            self._write(path, value)

    def _write(self, path, value):
        full = board._path(self.root, path)
        try:
            with open(full, "w") as handle:
                handle.write("%d\n" % value)
            return
        except (IOError, OSError):
            pass
        status, out = self.run(["sh", "-c", 'echo "$1" | ' + " ".join(SUDO) + ' tee "$2" >/dev/null', "sh",
                                str(value), full])
        if status != 0:
            raise EbedgeError("cannot write %s (%s); clock caps need root" % (path, board_text(out.strip())))

    def _restore_caps(self):
        for path, value in sorted(self.original_caps.items()):
            if value is not None and value.isdigit():
                self._write(path, int(value))
        self.original_caps = {}

    def _restore_clocks(self):
        path, self.clocks_file = self.clocks_file, None
        try:
            privileged(["jetson_clocks", "--restore", path], self.run)
        finally:
            os.unlink(path)

    def _settle(self, cooldown_temp_c):
        """True once two reads a poll apart agree on mode, governors and clock limits, every current
        clock is within its new limits, and the board is cool. Current clocks themselves move with
        load under a scaling governor, so they are not required to stand still."""
        watcher = board.StateWatcher(self.root, runner=lambda args: self._query() if args[0] == "nvpmodel"
                                     else None, interval_s=0.0, clock=self.clock)
        deadline = self.clock() + self.settle_timeout_s
        previous = None
        while True:
            state = watcher.read()
            now = state.comparable()
            hottest = board.hottest_c(self.root)
            cool = cooldown_temp_c is None or hottest is None or hottest < cooldown_temp_c
            if now == previous and cool and _within_limits(state):
                return True
            if self.clock() >= deadline:
                return False
            previous = now
            self.sleep(self.poll_s)

    def check(self, target):
        """The power-mode guard: the board must report the mode and caps asked for; returns its label."""
        state = board.StateWatcher(self.root, runner=lambda args: self._query() if args[0] == "nvpmodel"
                                   else None, interval_s=0.0).read()
        label = state.power_mode_label
        if target.power_mode is not None:
            wanted = resolve_mode(target.power_mode, read_modes(self.root))
            if state.power_mode is None or state.power_mode.id != wanted[0]:
                raise EbedgeError("power-mode guard: asked for %s (%d), the board reports %s"
                                  % (wanted[1], wanted[0], label))
        gpu = state.gpu or {}
        if target.gpu_max_freq_hz is not None and gpu.get("max") != target.gpu_max_freq_hz:
            raise EbedgeError("power-mode guard: GPU max clock %s Hz, asked for %d"
                              % (gpu.get("max"), target.gpu_max_freq_hz))
        if target.cpu_max_freq_khz is not None:
            for name, cpu in sorted(state.cpus.items()):
                if cpu.get("online") and cpu.get("max") != target.cpu_max_freq_khz:
                    raise EbedgeError("power-mode guard: %s max clock %s kHz, asked for %d"
                                      % (name, cpu.get("max"), target.cpu_max_freq_khz))
        return label

    def restore(self):
        """Back to the state before the first apply; returns problems ([] when all came back)."""
        problems = []
        for step in (self._restore_caps, self._restore_clocks if self.clocks_file else None,
                     self._restore_mode):
            if step is None:
                continue
            try:
                step()
            except EbedgeError as exc:
                problems.append(str(exc))
        self.current = None
        return problems

    def _restore_mode(self):
        if self.original_mode is not None:
            mode_id = self.original_mode[0]
            self.original_mode = None
            privileged(["nvpmodel", "-m", str(mode_id)], self.run)


def _within_limits(state):
    """Every online CPU and the GPU run at or below their (new) maximum."""
    clocks = [c for c in state.cpus.values() if c.get("online", True)] + ([state.gpu] if state.gpu else [])
    return all(c.get("cur") is None or c.get("max") is None or c["cur"] * FREQ_TOLERANCE <= c["max"]
               for c in clocks)


def _gpu_max_paths(root):
    gpu = board.read_gpu(root)
    return ["/sys/class/devfreq/%s/max_freq" % gpu["device"]] if gpu else []


def _gpu_range(root):
    gpu = board.read_gpu(root)
    text = board._read(root, "/sys/class/devfreq/%s/available_frequencies" % gpu["device"]) if gpu else None
    freqs = [int(f) for f in (text or "").split() if f.isdigit()]
    return (min(freqs), max(freqs)) if freqs else (None, None)


def _cpu_max_paths(root):
    return ["/sys/devices/system/cpu/%s/cpufreq/scaling_max_freq" % name
            for name, cpu in sorted(board.read_cpus(root).items()) if cpu["online"]]


def _cpu_range(root):
    cpus = [c for c in board.read_cpus(root).values() if c["online"]]
    lows = [c["hw_min"] for c in cpus if c["hw_min"] is not None]
    highs = [c["hw_max"] for c in cpus if c["hw_max"] is not None]
    return (max(lows) if lows else None, min(highs) if highs else None)


_held = []  # the Session a suite holds for its cells (ebedge.run.suite), innermost last


class holding(object):
    """While inside, `session_for_run()` hands runs the suite's session, which restores at its end."""

    def __init__(self, session):
        self.session = session

    def __enter__(self):
        _held.append(self.session)
        return self.session

    def __exit__(self, *exc):
        _held.remove(self.session)
        return False


def session_for_run():
    """(session, owned): the suite's session if one is held, else a new one the run must restore."""
    if _held:
        return _held[-1], False
    return Session(), True
