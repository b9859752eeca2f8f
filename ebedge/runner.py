"""The on-device run: settings in, a complete run directory out.

Order of a run: record the board's state, open the meters and start sampling, idle window,
the method (search / prune / retrain, evaluation as `eval`), idle window, then energy per
phase and the summary. Everything is written as it happens; SIGINT/SIGTERM leave status
`interrupted`, any other failure `failed: ...`, and `--resume` continues from the last epoch.
"""
import os
import platform
import shutil
import signal
import socket
import sys
import time

import ebedge
from ebedge import accounting, board, stats, lowp
from ebedge.errors import EbedgeError
from ebedge.methods import check as check_method, recipe
from ebedge.methods.context import MethodContext
from ebedge.rundir import RunDir, completed, read_json, write_json_atomic
from ebedge.sampling import MeterSampler
from ebedge.settings import config_hash, resolve

MIN_SAMPLES_PER_WINDOW = 20


class Interrupted(Exception):
    """Raised in the main thread on SIGTERM, like KeyboardInterrupt on SIGINT."""


def default_out(settings, root="results"):
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return os.path.join(root, "%s-%s-%s-%s" % (stamp, settings["method"], settings["model"],
                                                settings["dataset"]))


def _versions():
    import torch
    import torchvision
    return {"ebedge": ebedge.__version__, "python": platform.python_version(),
            "torch": torch.__version__, "torchvision": torchvision.__version__}


def _prepare_dir(out, resume, overwrite):
    config_path = os.path.join(out, "config.json")
    if resume:
        if not os.path.exists(config_path):
            raise EbedgeError("nothing to resume in %s (no config.json)" % out)
        if completed(out):
            raise EbedgeError("%s already holds a completed run" % out)
        return
    if os.path.exists(out) and os.listdir(out):
        if completed(out) and not overwrite:
            raise EbedgeError("%s already holds a completed run; use --overwrite or another --out"
                              % out)
        if not overwrite:
            raise EbedgeError("%s holds an unfinished run; use --resume to continue it or "
                              "--overwrite to start again" % out)
        shutil.rmtree(out)


class _Guard(object):
    """Watches power mode and clocks at every phase mark (refuse, or flag with `allow`)."""

    def __init__(self, settings, flags):
        self.allow = settings["allow"]
        self.flags = flags
        self.watcher = board.StateWatcher()  # sysfs; the commands at most every 30 s
        self.initial = board.comparable_state(self.watcher.read())
        self.throttled_marks = 0

    def __call__(self, phase, epoch):
        snap = self.watcher.read()
        diff = board.changes(self.initial, board.comparable_state(snap))
        if board.throttled(snap):
            self.throttled_marks += 1
        if diff:
            message = "power mode or clocks changed mid-run (%s): %s" % (phase, "; ".join(diff))
            if not self.allow:
                raise EbedgeError(message + "; pass --allow to record instead of refusing")
            if message not in self.flags:
                self.flags.append(message)
            self.initial = board.comparable_state(snap)


def _idle(ctx, name, seconds):
    if seconds > 0:
        with ctx.phase(name):
            time.sleep(seconds)


def execute(settings, out=None, resume=False, overwrite=False, quiet=False):
    """Run `settings` (overrides of ebedge.settings.DEFAULTS) into `out`; returns the summary.

    With `resume`, settings come from `out/config.json` and the run continues from its last
    checkpoint. Raises EbedgeError for bad input, before anything runs where it can.
    """
    if resume:
        if out is None:
            raise EbedgeError("--resume needs the run directory")
        _prepare_dir(out, True, False)
        old_config = read_json(os.path.join(out, "config.json"))
        settings = resolve(old_config["settings"])
    else:
        settings = resolve(settings)
        check_method(settings)
        out = out or default_out(settings)
        _prepare_dir(out, False, overwrite)
    run_id = os.path.basename(os.path.normpath(out))
    rundir = RunDir(out, run_id)
    checkpoint = rundir.load_checkpoint() if resume else None
    previous = (rundir.read_summary() or {}) if resume else {}
    flags = list(previous.get("flags", []))
    sampler = None
    summary = {"status": "running", "method": settings["method"], "model": settings["model"],
               "dataset": settings["dataset"],
               "prune_ratio": (None if settings["method"] == "dense" else settings["prune_ratio"][0]),
               "seed": settings["seed"], "repeat": settings["repeat"], "flags": flags}
    started = time.monotonic()
    guard = None
    old_term = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _raise_interrupted)
        snap = board.snapshot()
        if snap.get("is_jetson") and (snap.get("jetson_clocks") or {}).get("pinned") is False:
            flags.append("warning: jetson_clocks is off; clocks may scale during the run")
        if settings["cooldown_temp_c"] is not None:
            reached, hottest = board.cooldown(settings["cooldown_temp_c"], timeout_s=1800)
            if not reached:
                flags.append("warning: cooldown to %g C not reached (%.1f C)"
                             % (settings["cooldown_temp_c"], hottest))
        sampler = MeterSampler(settings["meters"], rundir.log_samples, settings["meter_options"],
                               settings["meter_interval"])
        summary.update(board_id=snap.get("hostname"), power_mode=board.power_mode(snap))
        rundir.write_config({
            "run_id": run_id, "config_hash": config_hash(settings), "settings": settings,
            "versions": _versions(), "host": socket.gethostname(), "board": snap,
            "meters": sampler.describe(), "argv": sys.argv})
        rundir.write_summary(summary)
        rundir.start_heartbeat()
        sampler.start()
        guard = _Guard(settings, flags)
        ctx = MethodContext(settings, rundir, resume=checkpoint, quiet=quiet, on_mark=guard)
        rundir.write_config(dict(read_json(rundir.file("config.json")), compute=ctx.describe()))
        if checkpoint is None:
            _idle(ctx, "idle_before", settings["idle_seconds"])
        summary.update(recipe(settings["method"])(ctx))
        _idle(ctx, "idle_after", settings["idle_seconds"])
        summary["status"] = "complete"
    except (KeyboardInterrupt, Interrupted):
        summary["status"] = "interrupted"
        raise
    except EbedgeError as exc:
        summary["status"] = "failed: %s" % exc
        raise
    except Exception as exc:
        summary["status"] = "failed: %s: %s" % (type(exc).__name__, exc)
        raise
    finally:
        signal.signal(signal.SIGTERM, old_term)
        if sampler is not None:
            sampler.settle(time.monotonic())
            flags.extend("meter error: %s" % e for e in sampler.stop())
        if guard is not None and guard.throttled_marks:
            flags.append("thermal throttling seen at %d phase marks" % guard.throttled_marks)
        summary["runtime_s"] = previous.get("runtime_s", 0.0) + time.monotonic() - started
        _finish(rundir, settings, summary, sampler)
    return summary


def _raise_interrupted(signum, frame):
    raise Interrupted("terminated by signal %d" % signum)


def _finish(rundir, settings, summary, sampler):
    """energy.csv and the final summary, from what the files hold (also after an interruption)."""
    if os.path.exists(rundir.file("config.json")):
        phases = accounting.read_phases(rundir.file("phases.csv"))
        samples = accounting.read_samples(rundir.file("samples.csv"))
        rows = accounting.energy_rows(rundir.run_id, phases, samples,
                                      include_eval=settings["include_eval_in_total"])
        accounting.write_energy_csv(rundir.file("energy.csv"), rows)
        names = [m.name for m in sampler.meters] if sampler is not None else []
        summary["energy"] = accounting.headline(rows, names, summary.get("train_flops_total"))
        if summary.get("lowp_bits"):  # eb-lf / eb-ll: the 8-bit estimate, labelled modelled
            summary["modelled_energy"] = lowp.modelled_energy(summary)
        summary["flags"].extend(_short_window_warnings(rows, sampler))
        rundir.write_summary(summary)
    rundir.close()


def _short_window_warnings(rows, sampler):
    """Warn where a phase window holds fewer than 20 sample periods (its energy is coarse)."""
    if sampler is None:
        return []
    periods = {m.name: m.interval_s for m in sampler.meters}
    out = []
    for row in rows:
        period = periods.get(row["meter"])
        if period and row["rail"] == "total" and row["duration_s"] < MIN_SAMPLES_PER_WINDOW * period \
                and row["phase"] not in ("train_total", "run_total"):
            out.append("warning: %s lasted %.2fs, under %d periods of %s (%.2fs)" % (
                row["phase"], row["duration_s"], MIN_SAMPLES_PER_WINDOW, row["meter"], period))
    return out


REPEAT_METRICS = (("test_acc", lambda s: s.get("test_acc")),
                  ("train_energy_kj", lambda s: ((s.get("energy") or {}).get("kj") or {})
                   .get("train_total")),
                  ("runtime_s", lambda s: s.get("runtime_s")),
                  ("train_flops_total", lambda s: s.get("train_flops_total")),
                  ("eb_epoch", lambda s: s.get("eb_epoch")))


def execute_repeats(settings, out, repeats, overwrite=False, quiet=False):
    """Run `settings` `repeats` times into out/r<i> (seed + i); returns (summaries, statistics).

    Statistics are mean, sample std and 95% interval half-width (t-distribution) per metric,
    also written to out/repeats.json. A repeat that already completed is read, not rerun.
    """
    if repeats < 1:
        raise EbedgeError("--repeats must be at least 1, got %d" % repeats)
    base = resolve(settings)
    summaries = []
    for i in range(repeats):
        run_out = os.path.join(out, "r%d" % i)
        if completed(run_out) and not overwrite:
            summaries.append(read_json(os.path.join(run_out, "summary.json")))
            continue
        summaries.append(execute(dict(base, seed=base["seed"] + i, repeat=i), out=run_out,
                                 overwrite=overwrite, quiet=quiet))
    statistics = {}
    for name, get in REPEAT_METRICS:
        values = [get(s) for s in summaries if get(s) is not None]
        if values:
            mean, std, half = stats.mean_std_ci95(values)
            statistics[name] = {"n": len(values), "mean": mean, "std": std, "ci95": half}
    write_json_atomic(os.path.join(out, "repeats.json"),
                      {"settings": base, "repeats": repeats, "statistics": statistics})
    return summaries, statistics
