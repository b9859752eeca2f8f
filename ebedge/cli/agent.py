"""`ebedge agent ...`: the board side of `ebedge remote` (JSON out, for a program to read)."""
import json
import os
import sys

import click

from ebedge import agent

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
              show_default=True, help="adopt: report a running/complete run, restart others")
@_ROOT
def start_cmd(settings_file, suite, out, if_exists, root):
    """Start a run detached from this connection; prints its id, directory and pid."""
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
    _echo_json(agent.start(text, out, root=root, suite=suite, if_exists=if_exists))


@agent_group.command("status")
@click.argument("run_id", required=False)
@_ROOT
def status_cmd(run_id, root):
    """JSON list of the runs on this board (or one run's state)."""
    if run_id:
        _echo_json(agent.run_state(agent.runs_root(root), run_id))
    else:
        _echo_json(agent.list_runs(root))


@agent_group.command("stop")
@click.argument("run_id")
@_ROOT
def stop_cmd(run_id, root):
    """SIGTERM a run; it stops cleanly with status `interrupted`."""
    _echo_json(agent.stop(run_id, root))


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


@agent_group.command("info")
@_ROOT
def info_cmd(root):
    """JSON: Python, torch, torchvision, ebedge versions, meters, power mode, free disk."""
    _echo_json(agent.info(root))


@agent_group.command("lock")
@click.option("--owner", required=True, help="sweep id taking the board")
@click.option("--host", default=None, help="the laptop running that sweep")
@click.option("--pid", type=int, default=None, help="that sweep's process id on the laptop")
@click.option("--steal-stale", type=float, default=None, metavar="SECONDS",
              help="take over a lock older than this (its sweep crashed)")
@_ROOT
def lock_cmd(owner, host, pid, steal_stale, root):
    """Take this board for one sweep (refused while another sweep holds it)."""
    _echo_json(agent.lock(owner, root, host=host, pid=pid, steal_stale_s=steal_stale))


@agent_group.command("unlock")
@click.option("--owner", required=True, help="sweep id that holds the board")
@click.option("--force", is_flag=True, help="remove whoever holds it")
@_ROOT
def unlock_cmd(owner, force, root):
    """Release this board."""
    _echo_json({"released": agent.unlock(owner, root, force=force)})
