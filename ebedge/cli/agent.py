"""`ebedge agent ...`: the board side of `ebedge remote` (JSON out, for a program to read)."""
import json
import os
import sys

import click

from ebedge import agent
from ebedge.run.runid import check_run_id
from ebedge.cli.options import GRACE, KILL

_ROOT = click.option("--root", default=None, help="runs root on this board [default: ~/ebedge-runs]")


def _echo_json(data):
    click.echo(json.dumps(data, sort_keys=True))


@click.group("agent", hidden=True)  # internal: `ebedge remote` calls it on the board
def agent_group():
    """Board side of `ebedge remote`: detached runs, their state, clock, info, sweep lock."""


@agent_group.command("start")
@click.option("--settings", "settings_file", default=None,
              help="settings JSON file, or - for stdin")
@click.option("--suite", default=None, help="run this suite file (on the board) instead")
@click.option("--out", required=True, help="run id (a directory under --root) or a path")
@click.option("--if-exists", type=click.Choice(["refuse", "adopt"]), default="refuse",
              show_default=True,
              help="adopt: report a live/complete run, resume a killed/failed/interrupted one")
@click.option("--sweep", default=None, help="the sweep id this run belongs to (its reservation)")
@_ROOT
def start_cmd(settings_file, suite, out, if_exists, sweep, root):
    """Start a run detached from this connection; prints its id, directory and pid.

    Refused while another run is live under the runs root (one run per board)."""
    if bool(settings_file) == bool(suite):
        raise click.UsageError("give exactly one of --settings and --suite")
    if os.sep in out:
        root, out = os.path.dirname(os.path.abspath(out)), os.path.basename(out.rstrip(os.sep))
    text = None
    if settings_file:
        if settings_file == "-":
            text = sys.stdin.read()
        else:
            with open(settings_file) as f:
                text = f.read()
    _echo_json(agent.start(text, out, root=root, suite=suite, if_exists=if_exists, sweep=sweep))


@agent_group.command("status")
@click.argument("run_id", required=False)
@_ROOT
def status_cmd(run_id, root):
    """JSON list of the runs on this board (or one run's state)."""
    if run_id:
        _echo_json(agent.run_state(agent.runs_root(root), check_run_id(run_id)))
    else:
        _echo_json(agent.list_runs(root))


@agent_group.command("stop")
@click.argument("run_id")
@KILL
@GRACE
@_ROOT
def stop_cmd(run_id, kill, grace, root):
    """SIGTERM a run (it stops cleanly with status `interrupted`), or SIGKILL it with --kill."""
    _echo_json(agent.stop(run_id, root, kill=kill, grace_s=grace))


@agent_group.command("watch")
@click.argument("run_id")
@click.option("--log-from", type=int, default=0, help="byte offset in the log to start at")
@click.option("--poll", type=float, default=0.5, help="seconds between looks")
@_ROOT
def watch_cmd(run_id, log_from, poll, root):
    """Stream the run's log; the last line is its final state as JSON."""
    agent.watch(run_id, root, log_from=log_from, poll_s=poll)


@agent_group.command("clock")
def clock_cmd():
    """Answer every line on stdin with this board's wall time (for offset estimation)."""
    agent.clock_loop()


@agent_group.command("check")
def check_cmd():
    """JSON: whether this board's Python can run ebedge (the modules that fail to import)."""
    _echo_json(agent.check())


@agent_group.command("info")
@_ROOT
def info_cmd(root):
    """JSON: Python, torch, torchvision, ebedge versions, meters, power mode, free disk."""
    _echo_json(agent.info(root))


@agent_group.command("lock")
@click.option("--owner", required=True, help="sweep id reserving the board (random)")
@click.option("--laptop", default=None, help="the laptop running that sweep (for people)")
@click.option("--pid", type=int, default=None, help="that sweep's process id (for people)")
@_ROOT
def lock_cmd(owner, laptop, pid, root):
    """Reserve this board for one sweep (refused while another sweep holds it)."""
    _echo_json(agent.lock(owner, root, laptop=laptop, pid=pid))


@agent_group.command("unlock")
@click.option("--owner", default=None, help="release only if this sweep holds it")
@click.option("--force", is_flag=True, help="release whoever holds it")
@_ROOT
def unlock_cmd(owner, force, root):
    """Release this board's sweep reservation (a live run is not affected)."""
    if not owner and not force:
        raise click.UsageError("give --owner SWEEP_ID or --force")
    _echo_json({"released": agent.unlock(owner, root, force=force)})


@agent_group.command("qualify")
@click.option("--meter", required=True, help="this board's meter to qualify")
@click.option("--windows", type=int, required=True, help="windows per load level")
@click.option("--window-s", type=float, required=True, help="seconds per window")
@click.option("--settle-s", type=float, default=None, help="seconds a level settles first")
@click.option("--id", "qualification_id", required=True, help="the qualification's name")
@_ROOT
def qualify_cmd(meter, windows, window_s, settle_s, qualification_id, root):
    """Run the qualification loads, sampling METER (its options as JSON on stdin); JSON: where
    the samples and windows are."""
    from ebedge.agent.qualify import qualify_here
    options = _json_stdin("meter options")
    if not isinstance(options, dict):
        raise click.UsageError("meter options must be a JSON object")
    _echo_json(qualify_here(meter, options, windows, window_s, settle_s, qualification_id,
                            root=root))


@agent_group.command("calibrate")
def calibrate_cmd():
    """Store the calibration profile on stdin (JSON) as this board's; JSON: its path."""
    from ebedge.agent.qualify import save_profile
    _echo_json({"path": save_profile(_json_stdin("a calibration profile"))})


def _json_stdin(what):
    try:
        return json.loads(sys.stdin.read())
    except ValueError as exc:
        raise click.UsageError("%s on stdin: not JSON (%s)" % (what, exc))
