"""The on-device run: settings in, a complete run directory out.

Order of a run: record the board's state, open the meters and start sampling, idle window,
the method (search / prune / retrain, evaluation as `eval`), idle window, then energy per
phase and the summary. Everything is written as it happens; SIGINT/SIGTERM leave status
`interrupted`, a full disk `failed: disk full (...)`, any other failure `failed: ...`, and
`--resume` continues from the last checkpoint: work done after it is reported as `lost` (see
ebedge.run.resume), runtime counts every process of the run, and a resume on a new boot measures
that boot's own idle power first. `log_to` sends each phase's energy and the summary's headline
numbers to trackers once energy.csv is written; `prometheus` serves the live power and energy of
every rail while the run samples (ebedge.integrations).
"""
import collections
import os
import platform
import shutil
import signal
import socket
import sys
import time

import ebedge
from ebedge.measure import board, calibration, powermode
from ebedge.measure.board_state import changes
from ebedge.run import resume as resuming, runlock
from ebedge.config.flags import Flag, add, restore, store
from ebedge.run.finish import finish
from ebedge.run.nodes import ShadowRunDir, gather_nodes
from ebedge.training.distributed import World, is_main_process
from ebedge.errors import EbedgeError
from ebedge.config import catalog
from ebedge.run.context import MethodContext
from ebedge.config.formats import IDLE_PHASES
from ebedge.run.rundir import (RunDir, completed, disk_full, load_checkpoint, read_json,
                               read_phase_rows)
from ebedge.measure.sampling import MeterSampler
from ebedge.config.settings import config_hash, resolve


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM: unwinds like Ctrl-C (no `except Exception` stops
    it), and the command line ends with its one line and exit code 128 + the signal."""

    def __init__(self, signum):
        KeyboardInterrupt.__init__(self, "interrupted: terminated by signal %d" % signum)
        self.exit_code = 128 + signum


def default_out(settings, root="results"):
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return os.path.join(root, "%s-%s-%s-%s" % (stamp, settings.method, settings.model,
                                                settings.dataset))


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
    if os.path.exists(out) and set(os.listdir(out)) - {runlock.RUN_DIR_LOCK}:
        if failed_start(out):  # nothing ran, nothing to resume: start again in its place
            shutil.rmtree(out)
            return
        if completed(out) and not overwrite:
            raise EbedgeError("%s already holds a completed run; use --overwrite or another --out"
                              % out)
        if not overwrite:
            raise EbedgeError("%s holds an unfinished run; use --resume to continue it or "
                              "--overwrite to start again" % out)
        shutil.rmtree(out)


# What a run directory holds before its config.json is written (the sampler's and the phase
# logs, the lock, and the summary that says why the start failed).
_START_FILES = {"samples.csv", "phases.csv", "epochs.csv", "checkpoints", "heartbeat",
                "summary.json", runlock.RUN_DIR_LOCK}


def failed_start(out):
    """True when `out` holds only what a run leaves that failed before writing its config.json
    (its summary says `failed` or `interrupted`): nothing trained, nothing to resume or keep."""
    names = set(os.listdir(out))
    if "config.json" in names or not names <= _START_FILES or not {"summary.json"} <= names:
        return False
    if os.path.isdir(os.path.join(out, "checkpoints")) and os.listdir(os.path.join(out,
                                                                                   "checkpoints")):
        return False
    try:
        status = read_json(os.path.join(out, "summary.json")).get("status")
    except (OSError, ValueError, AttributeError, UnicodeDecodeError):
        return False
    return isinstance(status, str) and (status.startswith("failed") or status == "interrupted")


class _Guard(object):
    """Watches power mode and clocks at every phase mark (refuse, or flag with `allow`)."""

    def __init__(self, settings, flags):
        self.allow = settings.allow
        self.flags = flags
        self.watcher = board.StateWatcher()  # sysfs; the commands at most every 30 s
        self.initial = self.watcher.read().comparable()
        self.throttled_marks = 0

    def __call__(self, phase, epoch):
        snap = self.watcher.read()
        diff = changes(self.initial, snap)
        if snap.throttled():
            self.throttled_marks += 1
        if diff:
            message = "power mode or clocks changed mid-run (%s): %s" % (phase, "; ".join(diff))
            if not self.allow:
                raise EbedgeError(message + "; pass --allow to record instead of refusing")
            add(self.flags, Flag("board_changed", message, phase=phase))
            self.initial = snap.comparable()


def _idle(ctx, name, seconds):
    if seconds > 0:
        with ctx.phase(name):
            time.sleep(seconds)


def _resume_state(out):
    """(settings, checkpoint, previous summary) of the run in `out`, or a one-line error."""
    path = os.path.join(out, "config.json")
    try:
        config = read_json(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise EbedgeError("cannot resume %s: config.json is unreadable (%s)"
                          % (out, getattr(exc, "strerror", None) or exc))
    if not isinstance(config, dict) or not isinstance(config.get("settings"), dict):
        raise EbedgeError("cannot resume %s: config.json holds no settings object" % out)
    try:
        settings = resolve(config["settings"])
    except EbedgeError as exc:
        raise EbedgeError("cannot resume %s: config.json: %s" % (out, exc))
    try:
        previous = read_json(os.path.join(out, "summary.json"))
    except (OSError, ValueError, UnicodeDecodeError):
        previous = None
    if not isinstance(previous, dict):
        previous = store({}, [Flag("resume", "summary.json was missing or unreadable at resume; "
                                             "runtime before it is not counted")])
    return settings, load_checkpoint(out), previous


@runlock.guarded  # a run inside a runs root holds the board's run lock, or is refused
def execute(settings, out=None, resume=False, overwrite=False, quiet=False, log_to=None,
            prometheus=None):
    """Run `settings` (overrides of ebedge.config.settings.DEFAULTS) into `out`; returns the summary.

    With `resume`, settings come from `out/config.json` and the run continues from its last
    checkpoint. `log_to`: tracker specs (ebedge.export.trackers); `prometheus`: PORT or
    ADDR:PORT to serve live power on. Neither changes the experiment (nor its config hash).
    Raises EbedgeError for bad input, before anything runs where it can.
    """
    start = _resume_start(out) if resume else _fresh_start(settings, out, overwrite)
    return _run(start, quiet, log_to, prometheus)


# What a run starts from: resolved settings, its directory, the checkpoint and summary a resume
# found (None and {} for a fresh run) and what settling the lost work said (ebedge.run.resume).
_Start = collections.namedtuple("_Start", "settings out checkpoint previous settled")


def _fresh_start(settings, out, overwrite):
    """A new run: settings resolved and checked, its directory made ready (rank 0 owns it)."""
    settings = resolve(settings)
    catalog.check(settings)
    out = out or default_out(settings)
    if is_main_process():  # under torchrun, rank 0 owns the run directory
        _prepare_dir(out, False, overwrite)
    return _Start(settings, out, None, {}, None)


def _resume_start(out):
    """An unfinished run: its settings and last checkpoint; work done after that is relabelled
    `lost` before anything runs."""
    if out is None:
        raise EbedgeError("--resume needs the run directory")
    _prepare_dir(out, True, False)
    settings, checkpoint, previous = _resume_state(out)
    settled = (resuming.settle(out, checkpoint, previous.get("status"))
               if is_main_process() else None)
    return _Start(settings, out, checkpoint, previous, settled)


def _run(start, quiet, log_to, prometheus):
    """The run: the board set and checked, the meters on, the method between two idle windows;
    whatever happens, the files end with a status and the board is put back.

    One function on purpose: its `finally` must see every resource the run opened (sampler,
    power-mode session, trackers, exporter) to close each in order, whatever failed and where."""
    settings = start.settings
    world = World.from_env(settings.device)
    out = world.gather(start.out)[0]
    run_id = os.path.basename(os.path.normpath(out))
    rundir = RunDir(out, run_id) if world.is_main else ShadowRunDir(out, run_id)
    if world.is_main:
        runlock.hold_run_dir(out)  # held until the run ends (released by runlock.guarded)
    flags = restore(start.previous)
    if start.settled is not None:
        flags.extend(start.settled.flags)
    runtime_before = float(start.previous.get("runtime_s") or 0.0) + (
        start.settled.killed_runtime_s if start.settled is not None else 0.0)
    summary = {"status": "running", "method": settings.method, "model": settings.model,
               "dataset": settings.dataset,
               "prune_ratio": (None if settings.method == "dense" else settings.prune_ratio[0]),
               "seed": settings.seed, "repeat": settings.repeat, "flags": flags,
               "runtime_s": runtime_before}
    started = rundir.started_mono
    sampler = guard = sinks = exporter = None
    session, owned = None, False
    old_term = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _raise_interrupted)
        if world.is_main and log_to:
            from ebedge.export.trackers import Sinks
            sinks = Sinks(log_to, run_id)
        if world.is_main and prometheus is not None:
            from ebedge.export.prometheus import PowerExporter
            exporter = PowerExporter(prometheus)
        session, owned, switch, problem = _switch_power_mode(settings, world)
        problems = [p for p in world.gather(problem) if p]  # every rank waits for the switch, or fails
        if problems:
            raise EbedgeError(problems[0])
        for message in (switch or {}).get("flags", []):
            add(flags, Flag("power_mode", message))
        snap = _check_board(settings, rundir, flags)
        sampler = MeterSampler(settings.meters if world.samples_meters else [],  # one per node
                               (exporter.tee(rundir.log_samples) if exporter
                                else rundir.log_samples), settings.meter_options,
                               settings.meter_interval)
        summary.update(board_id=snap.hostname, power_mode=snap.power_mode_label)
        profiles, cal_warnings = calibration.lookup(calibration.identity(snap),
                                                    [m.name for m in sampler.meters])
        for message in cal_warnings:
            add(flags, Flag("calibration", message))
        summary["calibration"] = calibration.describe(profiles)
        guard = _Guard(settings, flags)
        sampler.start()  # while the data loads: the meters are warm when idle_before begins

        def on_mark(phase, epoch):
            _check_writes(rundir)
            guard(phase, epoch)

        ctx = MethodContext.open(settings, rundir, resume=start.checkpoint,
                                 quiet=quiet or not world.is_main, on_mark=on_mark, world=world)
        rundir.write_config({
            "run_id": run_id, "config_hash": config_hash(settings), "settings": settings,
            "versions": _versions(), "host": socket.gethostname(), "board": snap.to_json(),
            "meters": sampler.describe(), "argv": sys.argv, "distributed": world.describe(),
            "calibration": summary["calibration"],
            "calibration_profiles": calibration.applied(profiles),
            "power_mode_switch": switch, "compute": ctx.describe()})
        rundir.write_summary(summary)
        rundir.start_heartbeat()
        if not world.gather(_has_idle(rundir))[0]:  # a fresh run, or a resume on another boot
            _idle(ctx, "idle_before", settings.idle_seconds)
        summary.update(catalog.get(settings.method).run(ctx))
        if summary.get("no_ticket"):
            add(flags, Flag("no_ticket", NO_TICKET_FLAG))
        summary.update(world.summary_fields(summary))
        _idle(ctx, "idle_after", settings.idle_seconds)
        _check_writes(rundir)
        summary["status"] = "complete"
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (Interrupted)
        summary["status"] = "interrupted"
        raise
    except EbedgeError as exc:
        summary["status"] = "failed: %s" % exc
        raise
    except Exception as exc:
        full = disk_full(exc)
        if full is not None:
            summary["status"] = "failed: %s" % full
            raise full
        summary["status"] = "failed: %s: %s" % (type(exc).__name__, exc)
        raise
    finally:
        signal.signal(signal.SIGTERM, old_term)
        if sampler is not None:
            sampler.settle(time.monotonic())
            flags.extend(Flag("meter_error", "meter error: %s" % e) for e in sampler.stop())
        if guard is not None and guard.throttled_marks:
            flags.append(Flag("throttled", "thermal throttling seen at %d phase marks"
                              % guard.throttled_marks, value=guard.throttled_marks))
        if owned:  # a run on its own puts the board back; a suite's session does so at its end
            for problem in session.restore():
                add(flags, Flag("board_not_restored", "board not restored: %s" % problem))
        summary["runtime_s"] = runtime_before + time.monotonic() - started
        nodes = (gather_nodes(world, rundir, sampler)
                 if world.size > 1 and summary["status"] == "complete" else [])
        if exporter is not None:
            exporter.close()
        if world.is_main:
            finish(rundir, settings, summary, sampler, nodes, sinks)
        else:
            rundir.close()
        world.close()
    return summary


def _switch_power_mode(settings, world):
    """(session, owned, switch record, problem): the board put in the run's power mode and
    clocks, where the settings ask for them, by one process per board, first of all (the
    snapshot then records the run's mode). A refusal is returned as `problem`, so that every
    rank hears it."""
    target = powermode.target_of(settings)
    if powermode.empty(target) or not world.samples_meters:
        return None, False, None, None
    session, owned = powermode.session_for_run()
    try:
        return session, owned, session.apply(target, settings.cooldown_temp_c), None
    except EbedgeError as exc:
        return session, owned, None, str(exc)
    except BaseException:  # interrupted mid-switch: put back what was changed
        if owned:
            session.restore()
        raise


def _check_board(settings, rundir, flags):
    """The board's state (BoardState) with what may skew the run flagged: clocks not pinned, no
    boot id, and a cooldown target (waited for) not reached."""
    snap = board.snapshot()
    if snap.is_jetson and snap.clocks_pinned is False:
        add(flags, Flag("board_warning",
                        "warning: jetson_clocks is off; clocks may scale during the run"))
    if not rundir.boot_id:
        add(flags, Flag("board_warning", "warning: no boot id on this system; a reboot between "
                                         "resumes cannot be detected"))
    if settings.cooldown_temp_c is not None:
        reached, hottest = board.cooldown(settings.cooldown_temp_c, timeout_s=1800)
        if not reached:
            flags.append(Flag("board_warning", "warning: cooldown to %g C not reached (%.1f C)"
                              % (settings.cooldown_temp_c, hottest), value=hottest))
    return snap


NO_TICKET_FLAG = ("no ticket: no Early-Bird ticket within the schedule; the last searched network was "
                  "pruned and its accuracy is the un-retrained pruned network's")


def _has_idle(rundir):
    """True when this boot already has an idle window (its idle power is then known)."""
    return any(r.get("phase") in IDLE_PHASES and (r.get("boot_id") or "") == rundir.boot_id
               for r in read_phase_rows(rundir.file("phases.csv")))


def _check_writes(rundir):
    """A sample write that failed in the meter thread fails the run like one in this thread."""
    if rundir.write_error is not None:
        raise rundir.write_error


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)
