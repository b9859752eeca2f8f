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
  ssh_drop, hostile_board   remote faults (loopback sshd): plug in through REMOTE_FAULTS;
               reported as not injected until they are registered

Each run is compared with the same settings run undisturbed (epochs, FLOPs, EB epoch and
accuracy must be identical) and with the simulator's truth over its own phase windows (energy of
`train_total` and of `lost` within the run's stated `uncertainty_pct` + 3 % + 0.5 J). A run is within tolerance when all of that
holds; flagged when its summary carries flags or a non-complete status; silently wrong when it
is off and no flag explains it (must be 0): only a non-complete status excuses different
training numbers, and only a `low coverage` or `meter error` flag an energy off the truth. Files written outside the results root are counted in the runs' working
directory, HOME and TMPDIR (all fresh), less what importing torch and torchvision alone writes
there (torch's compile-cache folder in TMPDIR).

    python benchmarks/bench_faults.py [--runs 30] [--seed 1] [--json] [--keep DIR]
                                      [--faults sigkill,reboot,...]
"""
import argparse
import csv
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from meters.sim.profile import PowerProfile  # noqa: E402
from meters.sim.sysfs import FakeIna3221Tree  # noqa: E402

SETTINGS = ["--model", "vgg11", "--width", "0.0625", "--limit-train", "96", "--limit-test", "32",
            "--batch-size", "32", "--device", "cpu", "--quiet", "--method", "eb", "--epochs", "4",
            "--epsilon", "0.5", "--meter", "ina3221", "--meter-interval", "0.05"]
PROFILE = "6:0.7,11:0.9,4-9:0.6"
VARIANTS = 3  # distinct seeds; each has one undisturbed baseline
ENERGY_REL, ENERGY_ABS = 0.03, 0.5
COMPARED = ("status", "eb_epoch", "train_flops_search", "train_flops_prune",
            "train_flops_retrain", "train_flops_total", "test_acc")
COUNTED = ("search", "prune", "retrain")
TIMEOUT_S = 600


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
# Remote faults need a loopback sshd board (tests/remote_sshd.py) and the collect checks;
# register them here as name -> function(trial, rng) that runs the trial to its end and sets
# trial.injected = False when the fault could not be applied.
REMOTE_FAULTS = {"ssh_drop": None, "hostile_board": None}


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
    def __init__(self, root):
        self.root = root
        self.results = os.path.join(root, "results")
        self.sysfs = os.path.join(root, "sysfs")
        self.cwd = os.path.join(root, "cwd")
        self.home = os.path.join(root, "home")
        self.tmp = os.path.join(root, "tmp")
        for path in (self.results, self.sysfs, self.cwd, self.home, self.tmp):
            os.makedirs(path)
        boot = os.path.join(root, "boot_id")
        with open(boot, "w") as f:
            f.write("campaign-boot-0\n")
        self.env = dict(os.environ, HOME=self.home, TMPDIR=self.tmp, EBEDGE_BOOT_ID_PATH=boot,
                        PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.env.pop("EBEDGE_CLOCK_SHIFT_S", None)
        self.mishandled = 0
        # importing torchvision 0.2x creates torch's compile cache folder in TMPDIR; what the
        # libraries write on import alone is not a write of the run's
        subprocess.check_call([sys.executable, "-c", "import torch, torchvision"], cwd=self.cwd,
                              env=self.env)
        self.library_paths = self._outside_paths()

    @staticmethod
    def command(args):
        return [sys.executable, "-m", "ebedge.cli", "train"] + list(args)

    def _outside_paths(self):
        return {os.path.join(d, name) for top in (self.cwd, self.home, self.tmp)
                for d, dirs, files in os.walk(top) for name in dirs + files}

    def outside_writes(self):
        return len(self._outside_paths() - self.library_paths)


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
    return sorted(FAULTS) + sorted(k for k, f in REMOTE_FAULTS.items() if f is not None)


def campaign(runs, seed, root, say, kinds=None):
    rng = random.Random(seed)
    bench = Bench(root)
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
    table["outside_writes"] = bench.outside_writes()
    table["mishandled_disk_full"] = bench.mishandled
    table["not_injected"] = sorted(k for k, f in REMOTE_FAULTS.items() if f is None)
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
    if table["not_injected"]:
        lines.append("not injected (remote faults not registered): %s"
                     % ", ".join(table["not_injected"]))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="campaign size [30]")
    parser.add_argument("--seed", type=int, default=1, help="campaign seed [1]")
    parser.add_argument("--json", action="store_true", help="end with one JSON object")
    parser.add_argument("--keep", help="run in this (new) directory and keep it")
    parser.add_argument("--faults", help="comma-separated fault kinds to draw from [all]")
    args = parser.parse_args(argv)
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
