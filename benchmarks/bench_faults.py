"""Fault campaign: do the faults we can inject leave a silently wrong number or a stray file?

A seeded campaign of short real runs (`ebedge train` subprocesses: VGG11 at 1/16 width on the
built-in synthetic set), each metered by the INA3221 driver on a fake TX2 sysfs tree whose power
has an exact integral, and each hit by one random fault:

  meter_drop   the sensor's device directory vanishes for a while (readers get ENOENT)
  read_error   the board-total value file holds garbage for a while
  sigkill      SIGKILL mid-epoch, then `train --resume`
  clock_step   SIGKILL, then the resume runs with a wall clock stepped by hours (no RTC)
  disk_full    SIGKILL after a checkpoint; a resume under a file-size limit below the
               checkpoint's size (writes fail with EFBIG) must fail `disk full`; then resume
  reboot       SIGKILL, then the resume runs under another boot id (a power loss)
  ssh_drop     `ebedge remote run` on a loopback OpenSSH board (ebedge/remote/loopback.py)
               whose ssh ControlMaster is SIGKILLed mid-run; it must re-attach and collect
  hostile_board  the run is made on the board, then `ebedge remote collect` talks to a board
               ebedge that reports ids leaving the results root (`../../..`, absolute), shell
               metacharacters and a stray folder, with links to a laptop canary and a fifo
               planted in the run: refused in one line, canary untouched, good run intact

Each run is compared with the same settings run undisturbed (epochs, FLOPs, EB epoch and
accuracy must be identical) and with the simulator's truth over its own phase windows (energy of
`train_total` and of `lost` within the run's stated `uncertainty_pct` + 3 % + 0.5 J). A run is within tolerance when all of that
holds; flagged when its summary carries flags or a non-complete status; silently wrong when it
is off and no flag explains it (must be 0): only a non-complete status excuses different
training numbers, and only a `low coverage` or `meter error` flag an energy off the truth. Files
written outside the results root are the paths of the laptop tree (the runs' working directory,
HOME and TMPDIR, all fresh, the ssh client files and a canary file), the top of the bench root and
every path a hostile run id aims at, that appeared, changed or vanished during the campaign, less
what importing torch and torchvision alone writes (torch's compile-cache folder in TMPDIR); the
simulated sysfs and the board's own disk are not the laptop.

    python benchmarks/bench_faults.py [--runs 30] [--seed 1] [--json] [--keep DIR]
                                      [--faults sigkill,reboot,...]
    python benchmarks/bench_faults.py --hostile [--json] [--keep DIR]   (hostile_campaign.py)
"""
import argparse
import csv
import json
import os
import random
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ebedge.remote.loopback import EBEDGE, Lab, hostile_ebedge, no_symlinks_or_specials  # noqa: E402
from meters.sim.profile import PowerProfile  # noqa: E402
from meters.sim.sysfs import FakeIna3221Tree  # noqa: E402

SETTINGS = ["--model", "vgg11", "--width", "0.0625", "--limit-train", "640", "--limit-test", "32",
            "--batch-size", "32", "--device", "cpu", "--quiet", "--method", "eb", "--epochs", "4",
            "--epsilon", "0.5", "--meter", "ina3221", "--meter-interval", "0.05"]
PROFILE = "6:0.7,11:0.9,4-9:0.6"
VARIANTS = 3  # distinct seeds; each has one undisturbed baseline
ENERGY_REL, ENERGY_ABS = 0.03, 0.5
COMPARED = ("status", "eb_epoch", "train_flops_search", "train_flops_prune",
            "train_flops_retrain", "train_flops_total", "test_acc")
COUNTED = ("search", "prune", "retrain")
TIMEOUT_S = 600
CANARY = b"a laptop file the board must never touch\n"


class Trial(object):
    """One run of the campaign: where it writes, its meter tree and environment."""

    def __init__(self, bench, name, seed):
        self.bench = bench
        self.out = os.path.join(bench.results, name)
        self.tree = FakeIna3221Tree(os.path.join(bench.sysfs, name), "tx2",
                                    PowerProfile.parse(PROFILE)).start(100.0)
        self.args = SETTINGS + ["--seed", str(seed), "--out", self.out,
                                "--meter-option", "ina3221.root=%s" % self.tree.root]
        self.env = dict(bench.env)
        self.notes = []
        self.injected = True  # False when the run ended before the fault could hit it

    def start(self, args=None, env=None, preexec_fn=None):
        return subprocess.Popen(self.bench.command(args or self.args), cwd=self.bench.cwd,
                                env=env or self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, preexec_fn=preexec_fn)

    def run(self, args=None, env=None, preexec_fn=None):
        proc = self.start(args, env, preexec_fn)
        output = proc.communicate(timeout=TIMEOUT_S)[0].decode("utf-8", "replace")
        return proc.returncode, output

    def resume(self, env=None, preexec_fn=None):
        return self.run(["--resume", self.out, "--quiet"], env, preexec_fn)

    def kill_mid_epoch(self, rng):
        proc = self.start()
        path = os.path.join(self.out, "epochs.csv")
        deadline = time.time() + TIMEOUT_S
        while time.time() < deadline and proc.poll() is None:
            if os.path.exists(path) and len(_rows(path)) >= 1:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is not None:
            self.injected = False
            self.notes.append("finished before the kill")
            return
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        if _summary(self.out).get("status") == "complete":  # killed while it tidied up
            self.injected = False
            self.notes.append("complete before the kill")
            return
        self.notes.append("killed")

    def close(self):
        self.tree.close()


def _rows(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# -- faults ----------------------------------------------------------------------------------------
def fault_sigkill(trial, rng):
    trial.kill_mid_epoch(rng)
    if trial.injected:
        trial.resume()


def fault_clock_step(trial, rng):
    trial.kill_mid_epoch(rng)
    if not trial.injected:
        return
    step = rng.choice([-86400.0, -3600.0, 3600.0, 86400.0 * 30])
    trial.notes.append("wall clock %+gs" % step)
    trial.resume(env=dict(trial.env, EBEDGE_CLOCK_SHIFT_S=str(step)))


def fault_reboot(trial, rng):
    trial.kill_mid_epoch(rng)
    if not trial.injected:
        return
    with open(trial.env["EBEDGE_BOOT_ID_PATH"], "w") as f:
        f.write("campaign-boot-%08x\n" % rng.getrandbits(32))
    trial.resume()


def _file_size_limit(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def fault_disk_full(trial, rng):
    trial.kill_mid_epoch(rng)
    if not trial.injected:
        return
    checkpoint = os.path.join(trial.out, "checkpoints", "last.pt")
    if not os.path.exists(checkpoint):
        trial.notes.append("no checkpoint before the kill: plain resume")
        trial.resume()
        return
    with open(checkpoint, "rb") as f:
        good = f.read()
    code, output = trial.resume(preexec_fn=_file_size_limit(len(good) - 1))
    lines = output.strip().splitlines()
    with open(checkpoint, "rb") as f:
        kept = f.read() == good
    clean = (code == 1 and len(lines) == 1 and lines[0].startswith("Error: disk full")
             and kept and not _temporaries(trial.out))
    trial.notes.append("disk full %s" % ("handled" if clean else "MISHANDLED: %r" % output[-300:]))
    if not clean:
        trial.bench.mishandled += 1
    trial.resume()


def _temporaries(out):
    return [f for _, _, files in os.walk(out) for f in files if f.endswith(".tmp")]


def _while_running(trial, rng, start_fault, end_fault):
    """Run to completion; inject a fault once the first epoch is under way, for a while."""
    proc = trial.start()
    path = os.path.join(trial.out, "phases.csv")
    while proc.poll() is None and len(_rows(path)) < 2:
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.0))
    if proc.poll() is not None:
        trial.injected = False
        trial.notes.append("finished before the fault")
        return
    held = rng.uniform(0.3, 2.0)
    undo = start_fault()
    time.sleep(held)
    end_fault(undo)
    trial.notes.append("%.1fs" % held)
    proc.communicate(timeout=TIMEOUT_S)


def _total_device(trial):
    return os.path.join(trial.tree.root, "sys/bus/i2c/drivers/ina3221x/0-0041")


def fault_meter_drop(trial, rng):
    device = _total_device(trial)

    def start():
        os.rename(device, device + ".gone")

    return _while_running(trial, rng, start, lambda _: os.rename(device + ".gone", device))


def fault_read_error(trial, rng):
    value = os.path.join(_total_device(trial), "iio:device1", "in_power0_input")

    def start():
        os.link(value, value + ".keep")  # the tree's writer keeps its descriptor on this inode
        with open(value + ".bad", "w") as f:
            f.write("\x00garbage\n")
        os.rename(value + ".bad", value)

    return _while_running(trial, rng, start, lambda _: os.rename(value + ".keep", value))


FAULTS = {"meter_drop": fault_meter_drop, "read_error": fault_read_error,
          "sigkill": fault_sigkill, "clock_step": fault_clock_step, "disk_full": fault_disk_full,
          "reboot": fault_reboot}


# -- remote faults: a real OpenSSH board on loopback (tests/faults/remote_fixtures.Lab) ----------
def _remote_args(trial):
    """The trial's settings for `ebedge remote run` (the board picks its own run directory)."""
    args, skip = [], False
    for arg in trial.args:
        if skip:
            skip = False
        elif arg == "--out":
            skip = True
        elif arg != "--quiet":
            args.append(arg)
    return args


def _drain(stream, lines):
    for line in stream:
        lines.append(line)


def fault_ssh_drop(trial, rng):
    """`ebedge remote run` whose ssh connection (the ControlMaster) is SIGKILLed mid-run; the
    laptop must re-attach and collect a run equal to the undisturbed one, or flag it."""
    lab, run_id = trial.bench.lab(), os.path.basename(trial.out)
    trial.out = os.path.join(trial.bench.remote_results, "board1", run_id)
    on_board = os.path.join(lab.root(), run_id)
    argv = [EBEDGE, "remote", "run", "board1", "--ssh-config", lab.config, "--remote-ebedge",
            EBEDGE, "--root", lab.root(), "--results", trial.bench.remote_results, "--name",
            run_id] + _remote_args(trial)
    proc = subprocess.Popen(argv, cwd=trial.bench.cwd, env=trial.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True)
    lines = []
    reader = threading.Thread(target=_drain, args=(proc.stdout, lines))
    reader.start()
    deadline = time.time() + TIMEOUT_S
    master = None
    while time.time() < deadline and proc.poll() is None:
        pids = [l.rsplit("pid", 1)[1].strip(" )\n") for l in lines if "ssh master pid" in l]
        master = int(pids[0]) if pids else None
        if master and len(_rows(os.path.join(on_board, "phases.csv"))) >= 2:
            break
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.0))
    if proc.poll() is not None or master is None:
        trial.injected = False
        trial.notes.append("finished before the drop")
    else:
        os.kill(master, signal.SIGKILL)
        trial.notes.append("ssh master killed")
    proc.wait(TIMEOUT_S)
    reader.join()
    output = "".join(lines)
    if trial.injected:
        trial.notes.append("re-attached" if "re-attached" in output else "NOT re-attached")
    if proc.returncode != 0 or not os.path.exists(os.path.join(trial.out, "summary.json")):
        trial.notes.append("remote run exit %d: %s; collecting" % (
            proc.returncode, output.strip().splitlines()[-1:] or ""))
        lab.remote("collect", "board1", run_id, "--results", trial.bench.remote_results,
                   cwd=trial.bench.cwd, env=trial.env)


def _plant(run_dir, canary):
    """What a compromised board leaves in a run directory: links to a laptop file and to a
    laptop folder, and a fifo."""
    for name in ("summary.json.tmp", "samples.csv.tmp", "energy.csv.tmp", "notes.txt"):
        os.symlink(canary, os.path.join(run_dir, name))
    os.symlink(os.path.dirname(canary), os.path.join(run_dir, "plots"))
    os.mkfifo(os.path.join(run_dir, "pipe"))


def fault_hostile_board(trial, rng):
    """A real run on the board, then `ebedge remote collect` against a board whose ebedge lies:
    run ids that leave the results root (`../..`, absolute), a stray folder, shell
    metacharacters, and links to a laptop canary planted in the run. Nothing may be written
    outside the results root (counted for the whole campaign), the canary must stay as it was,
    the refusal must be one line, and the good run must arrive intact."""
    bench, lab, run_id = trial.bench, trial.bench.lab(), os.path.basename(trial.out)
    on_board = os.path.join(lab.root(), run_id)
    code, output = trial.run([a if a != trial.out else on_board for a in trial.args])
    trial.out = os.path.join(bench.remote_results, "board1", run_id)
    if code != 0:
        trial.injected = False
        trial.notes.append("board run failed: %s" % output[-200:])
        return
    _plant(on_board, bench.canary)
    escapes = ["../" * depth + "escaped-%s" % run_id for depth in (3, 4)]  # the bench root, above
    answers = [{"run_id": escapes[0], "state": "complete", "out": on_board},
               {"run_id": escapes[1], "state": "complete", "out": on_board},
               {"run_id": os.path.join(bench.laptop, "abs-" + run_id), "state": "complete",
                "out": on_board},
               {"run_id": "x;touch${IFS}%s" % bench.canary + "-shell", "state": "complete",
                "out": on_board},
               {"run_id": "lost+found", "state": "unknown",
                "out": os.path.join(lab.root(), "lost+found")},
               {"run_id": run_id, "state": "complete", "out": on_board}]
    rng.shuffle(answers)
    board_bin = os.path.join(lab.boards["board1"].dir, "bin-" + run_id)  # the board's disk
    os.makedirs(board_bin)
    with open(os.path.join(board_bin, "answers.json"), "w") as f:
        json.dump(answers, f)
    fake = hostile_ebedge(os.path.join(board_bin, "ebedge"), os.path.join(board_bin,
                                                                          "answers.json"))
    bench.watch_also(os.path.normpath(os.path.join(bench.remote_results, "board1", e))
                     for e in escapes)
    done = lab.remote("collect", "board1", "--results", bench.remote_results,
                      remote_ebedge=fake, cwd=bench.cwd, env=trial.env)
    errors = [l for l in done.stderr.splitlines() if l.strip()]
    with open(bench.canary, "rb") as f:
        canary_kept = f.read() == CANARY
    clean = (done.returncode != 0 and len(errors) == 1 and "4 run(s)" in errors[0]
             and "Traceback" not in done.stdout + done.stderr and canary_kept
             and not no_symlinks_or_specials(bench.results))
    trial.notes.append("collect %s" % ("refused in one line" if clean else
                                       "MISHANDLED: %r" % (done.stdout + done.stderr)[-300:]))
    if not clean:
        bench.mishandled += 1


REMOTE_FAULTS = {"ssh_drop": fault_ssh_drop, "hostile_board": fault_hostile_board}


# -- judging ---------------------------------------------------------------------------------------
def _summary(out):
    try:
        with open(os.path.join(out, "summary.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _epochs(out):
    return [(r["phase"], r["epoch"], r["train_flops"], r["test_acc"])
            for r in _rows(os.path.join(out, "epochs.csv")) if r["phase"] != "lost"]


def _energy(out, phase):
    """(joules, uncertainty_pct) of the board total in `phase`, or (None, None)."""
    for r in _rows(os.path.join(out, "energy.csv")):
        if r["phase"] == phase and r["meter"] == "ina3221" and r["rail"] == "total":
            return float(r["energy_j"]), float(r["uncertainty_pct"])
    return None, None


def _close(measured, uncertainty_pct, truth):
    """Within the run's own stated uncertainty, plus the interpolation allowance."""
    return measured is not None and abs(measured - truth) <= (
        (ENERGY_REL + uncertainty_pct / 100.0) * truth + ENERGY_ABS)


EXPLAINS_ENERGY = ("low coverage", "meter error")


def judge(trial, baseline):
    """(within tolerance, flagged, silently wrong, what differs) for a finished trial.

    A flag only excuses what it explains: different training numbers in a `complete` run are
    silently wrong whatever the flags say; an energy off the truth needs a `low coverage` or
    `meter error` flag."""
    summary = _summary(trial.out)
    flags = summary.get("flags") or []
    complete = summary.get("status") == "complete"
    training = ["%s %r != %r" % (k, summary.get(k), baseline["summary"].get(k))
                for k in COMPARED if summary.get(k) != baseline["summary"].get(k)]
    if _epochs(trial.out) != baseline["epochs"]:
        training.append("epochs.csv differs")
    energy = []
    phases = _rows(os.path.join(trial.out, "phases.csv"))
    for name, kinds in (("train_total", COUNTED), ("lost", ("lost",))):
        windows = [r for r in phases if r["phase"] in kinds]
        if not windows:
            continue
        truth = sum(trial.tree.truth(float(r["t_start_mono"]), float(r["t_end_mono"]))
                    for r in windows)
        measured, uncertainty = _energy(trial.out, name)
        if not _close(measured, uncertainty, truth):
            energy.append("%s %s J, truth %.2f J" % (name, measured, truth))
    wrong = training + energy
    flagged = bool(flags) or not complete
    explained = not complete or (not training and (
        not energy or any(f.startswith(EXPLAINS_ENERGY) for f in flags)))
    return not wrong, flagged, bool(wrong) and not explained, wrong


# -- the campaign ----------------------------------------------------------------------------------
class Bench(object):
    """The campaign's laptop: a results root, and around it a watched tree (working directory,
    HOME, TMPDIR, a canary file, the ssh client files) where nothing may change; beside it the
    simulated hardware (sysfs trees, boot id) and the loopback board's own disk."""

    def __init__(self, root):
        self.root = root
        self.results = os.path.join(root, "results")
        self.remote_results = os.path.join(self.results, "remote")
        self.sysfs = os.path.join(root, "sysfs")
        self.laptop = os.path.join(root, "laptop")
        self.cwd = os.path.join(self.laptop, "cwd")
        self.home = os.path.join(self.laptop, "home")
        self.tmp = os.path.join(self.laptop, "tmp")
        self.lab_dir = os.path.join(self.laptop, "ssh")
        for path in (self.results, self.sysfs, self.cwd, self.home, self.tmp):
            os.makedirs(path)
        self.canary = os.path.join(self.laptop, "canary.txt")
        with open(self.canary, "wb") as f:
            f.write(CANARY)
        boot = os.path.join(self.sysfs, "boot_id")
        with open(boot, "w") as f:
            f.write("campaign-boot-0\n")
        self.env = dict(os.environ, HOME=self.home, TMPDIR=self.tmp, EBEDGE_BOOT_ID_PATH=boot,
                        PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.env.pop("EBEDGE_CLOCK_SHIFT_S", None)
        self.mishandled = 0
        self._lab = None
        self.extra_watched = set()
        # importing torchvision 0.2x creates torch's compile cache folder in TMPDIR; what the
        # libraries write on import alone is not a write of the run's
        subprocess.check_call([sys.executable, "-c", "import torch, torchvision"], cwd=self.cwd,
                              env=self.env)
        self.before = self._snapshot()

    @staticmethod
    def command(args):
        return [sys.executable, "-m", "ebedge.cli", "train"] + list(args)

    def lab(self):
        """The loopback board (started on first use; its client files are watched from then)."""
        if self._lab is None:
            self._lab = Lab(self.lab_dir)
            self.before.update((p, v) for p, v in self._snapshot().items()
                               if p == self.lab_dir or p.startswith(self.lab_dir + os.sep))
        return self._lab

    def close(self):
        if self._lab is not None:
            self._lab.stop()

    def watch_also(self, paths):
        """Paths outside the watched tree that a fault aims at (they must never appear)."""
        self.extra_watched.update(paths)

    def _snapshot(self):
        """path -> (kind, size, mtime) for the watched tree and the top of the bench root."""
        skip = os.path.join(self.lab_dir, "board1")
        seen = {}
        paths = [os.path.join(self.root, n) for n in os.listdir(self.root)]
        for d, dirs, files in os.walk(self.laptop):
            dirs[:] = [n for n in dirs if os.path.join(d, n) != skip]
            paths.extend(os.path.join(d, n) for n in dirs + files)
        for path in paths + sorted(self.extra_watched):
            try:
                st = os.lstat(path)
            except OSError:
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            seen[path] = (stat.S_IFMT(st.st_mode), None if is_dir else st.st_size,
                          None if is_dir else st.st_mtime_ns)
        return seen

    def outside_writes(self):
        """Paths outside the results root that appeared, changed or vanished."""
        now = self._snapshot()
        return sorted(p for p in set(now) | set(self.before) if now.get(p) != self.before.get(p))


def baseline(bench, seed):
    trial = Trial(bench, "baseline-seed%d" % seed, seed)
    try:
        code, output = trial.run()
        if code != 0:
            raise SystemExit("undisturbed run failed:\n%s" % output)
    finally:
        trial.close()
    return {"summary": _summary(trial.out), "epochs": _epochs(trial.out)}


def available_faults():
    return sorted(FAULTS) + sorted(REMOTE_FAULTS)


def campaign(runs, seed, root, say, kinds=None):
    rng = random.Random(seed)
    bench = Bench(root)
    try:
        return _campaign(bench, runs, rng, say, kinds)
    finally:
        bench.close()


def _campaign(bench, runs, rng, say, kinds):
    seeds = [1 + k for k in range(min(runs, VARIANTS))]
    baselines = {}
    for s in seeds:
        say("baseline seed %d" % s)
        baselines[s] = baseline(bench, s)
    kinds = kinds or available_faults()
    table = {"runs": 0, "faults": 0, "within_tolerance": 0, "flagged": 0, "silently_wrong": 0}
    per_fault = {}
    for i in range(runs):
        kind = rng.choice(kinds)
        run_seed = seeds[i % len(seeds)]
        trial = Trial(bench, "run%03d-%s" % (i, kind), run_seed)
        try:
            fault = FAULTS.get(kind) or REMOTE_FAULTS[kind]
            fault(trial, random.Random(rng.getrandbits(32)))
        finally:
            trial.close()
        within, flagged, silent, wrong = judge(trial, baselines[run_seed])
        table["runs"] += 1
        table["faults"] += trial.injected
        table["within_tolerance"] += within
        table["flagged"] += flagged
        table["silently_wrong"] += silent
        row = per_fault.setdefault(kind, [0, 0, 0, 0, 0])
        for k, v in enumerate((1, trial.injected, within, flagged, silent)):
            row[k] += v
        say("run %3d %-11s %-7s %-8s %s%s" % (
            i, kind if trial.injected else "(none)", "ok" if within else "off",
            "flagged" if flagged else "-",
            ", ".join(trial.notes), ("  [" + "; ".join(wrong) + "]") if wrong else ""))
    outside = bench.outside_writes()
    for path in outside:
        say("written outside the results root: %s" % path)
    table["outside_writes"] = len(outside)
    table["mishandled"] = bench.mishandled
    return table, per_fault


def render(table, per_fault):
    lines = ["%-14s %6s %8s %8s %8s %8s" % ("fault", "runs", "injected", "within", "flagged",
                                            "silent")]
    for kind in sorted(per_fault):
        lines.append("%-14s %6d %8d %8d %8d %8d" % ((kind,) + tuple(per_fault[kind])))
    lines.append("")
    for key, label in (("runs", "runs"), ("faults", "faults injected"),
                       ("within_tolerance", "results within tolerance"),
                       ("flagged", "results flagged"),
                       ("silently_wrong", "results silently wrong (must be 0)"),
                       ("outside_writes", "files written outside the results root (must be 0)")):
        lines.append("%-52s %6d" % (label, table[key]))
    if table["mishandled"]:
        lines.append("faults mishandled (disk full not a clean one-line failure, or a hostile "
                     "collect not refused in one line): %d" % table["mishandled"])
    return "\n".join(lines)


def hostile(args):
    """`--hostile`: every attack of the hostile-board campaign once; 1 unless all held."""
    from hostile_campaign import run_campaign
    root = args.keep or tempfile.mkdtemp(prefix="ebedge-hostile-")
    if args.keep:
        os.makedirs(root)
    try:
        tally = run_campaign(root, lambda m: print(m, file=sys.stderr, flush=True))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print("attacks %(attacks)d, held %(held)d, broke %(broke)d, hung %(hung)d, "
          "peak RSS %(peak_rss_mb).1f MB" % tally)
    if args.json:
        print(json.dumps({k: tally[k] for k in ("attacks", "held", "broke", "hung",
                                                "peak_rss_mb")}, sort_keys=True))
    return 1 if tally["broke"] or tally["hung"] else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="campaign size [30]")
    parser.add_argument("--seed", type=int, default=1, help="campaign seed [1]")
    parser.add_argument("--json", action="store_true", help="end with one JSON object")
    parser.add_argument("--keep", help="run in this (new) directory and keep it")
    parser.add_argument("--faults", help="comma-separated fault kinds to draw from [all]")
    parser.add_argument("--hostile", action="store_true",
                        help="run the hostile-board campaign instead (benchmarks/hostile_campaign.py)")
    args = parser.parse_args(argv)
    if args.hostile:
        return hostile(args)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    kinds = [k for k in (args.faults or "").split(",") if k] or None
    unknown = sorted(set(kinds or []) - set(available_faults()))
    if unknown:
        parser.error("unknown or unavailable fault(s) %s; choose from %s"
                     % (", ".join(unknown), ", ".join(available_faults())))
    root = args.keep or tempfile.mkdtemp(prefix="ebedge-faults-")
    if args.keep:
        os.makedirs(root)
    try:
        table, per_fault = campaign(args.runs, args.seed, root,
                                    lambda m: print(m, file=sys.stderr, flush=True), kinds)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(render(table, per_fault))
    if args.json:
        print(json.dumps(table, sort_keys=True))
    return 1 if table["silently_wrong"] or table["outside_writes"] else 0


if __name__ == "__main__":
    sys.exit(main())
