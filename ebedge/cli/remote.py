"""`ebedge remote ...`: drive runs on boards from the laptop over SSH (thin over ebedge.remote)."""
import json
import os

import click

from ebedge.cli.train import PassesTrainOptions
from ebedge.errors import EbedgeError
from ebedge.cli.options import GRACE, KILL
from ebedge.cli.qualification import print_qualification, protocol_options, window_seconds

_SSH_CONFIG = click.option("--ssh-config", type=click.Path(dir_okay=False),
                           help="ssh config file (ssh -F) instead of ~/.ssh/config")
_REMOTE_EBEDGE = click.option("--remote-ebedge", default=None,
                              help="the ebedge command on the board [default: ~/.ebedge/venv/bin/ebedge]")
_ROOT = click.option("--root", default=None, help="runs root on the board [default: ~/ebedge-runs]")
_RESULTS = click.option("--results", default="results", show_default=True,
                        type=click.Path(file_okay=False), help="local results directory")
_MAX_BYTES = click.option("--max-bytes", type=click.IntRange(min=1), default=None,
                          help="refuse a collected run larger than this [default: 20 GiB]")
_STALL = click.option("--stall-timeout", "stall_s", type=click.FloatRange(min=1), default=120.0,
                      show_default=True,
                      help="end a copy from the board that moves no byte for this many seconds")
_REATTACH_LIMIT = click.option("--reattach-limit", type=click.IntRange(min=0), default=10,
                               show_default=True,
                               help="give up re-attaching after this many re-attaches in a row "
                                    "that bring no new log line")


def _board(host, ssh_config, remote_ebedge, root):
    from ebedge.remote.board import Board
    return Board(host, ssh_config=ssh_config, remote_ebedge=remote_ebedge, root=root)


def _echo(text):
    """Every line of `ebedge remote` goes out here: it may carry board text, so sanitised."""
    from ebedge.util.printable import printable
    click.echo(printable(text, one_line=True))


@click.group("remote")
def remote_group():
    """Run on boards from this laptop over SSH: doctor, install, run, status, collect, stop, sweep,
    qualify."""


def _split_meter_options(pairs):
    """METER.KEY=VALUE -> the board's meters; KEY=VALUE -> the laptop meter (--meter-local)."""
    from ebedge.cli.options import parse_meter_options
    board, local = [], {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise EbedgeError("--meter-option wants KEY=VALUE or METER.KEY=VALUE, got %r" % pair)
        if "." in key:
            board.append(pair)
        else:
            try:
                local[key] = json.loads(value)
            except ValueError:
                local[key] = value
    return parse_meter_options(board), local


def _train_settings(args, settings_file, board_options):
    """Settings from `ebedge train` options (parsed by the train command itself) and the board's
    --meter-option pairs over --settings, merged as `ebedge train` merges them.

    Only options typed on the command line count; a train option that is no setting (--out,
    --resume, --repeats...) is refused, since the board side decides those."""
    from ebedge.cli.options import load_settings_file, typed_settings
    from ebedge.cli.train import train as train_command
    from ebedge.config.settings import DEFAULTS, merge
    ctx = train_command.make_context("train", list(args))
    settings = {}
    if settings_file:
        with open(settings_file) as f:
            settings = load_settings_file(f)
    for param in train_command.params:
        source = ctx.get_parameter_source(param.name)
        if source is not None and source.name == "COMMANDLINE" and param.name not in DEFAULTS:
            raise EbedgeError("%s is not for `remote run`" % param.opts[0])
    given = typed_settings(ctx.params)
    if board_options:
        given["meter_options"] = board_options
    return merge(settings, given)


@remote_group.command("run", cls=PassesTrainOptions,
                      context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("host")
@click.option("--suite", type=click.Path(dir_okay=False, exists=True),
              help="run every cell of this suite file on HOST, one after another")
@click.option("--settings", "settings_file", type=click.Path(dir_okay=False, exists=True),
              help="JSON object of settings; train options given here win")
@click.option("--name", "run_id", default=None, help="run id on the board [default: time-method-model-dataset]")
@click.option("--meter-local", default=None, help="meter on THIS machine (e.g. um, wattsup)")
@click.option("--port", default=None, help="serial port of --meter-local")
@click.option("--meter-option", multiple=True,
              help="KEY=VALUE for --meter-local, METER.KEY=VALUE for a board meter")
@click.option("--clock-period", type=float, default=30.0, show_default=True,
              help="seconds between clock-offset checks during the run")
@_SSH_CONFIG
@_REMOTE_EBEDGE
@_ROOT
@_RESULTS
@_MAX_BYTES
@_STALL
@_REATTACH_LIMIT
@click.pass_context
def run_cmd(ctx, host, suite, settings_file, run_id, meter_local, port, meter_option, clock_period,
            ssh_config, remote_ebedge, root, results, max_bytes, stall_s, reattach_limit):
    """Run on HOST, detached from this connection; pull the run into RESULTS/HOST/RUN_ID.

    Takes any `ebedge train` option after HOST (e.g. --epochs 20 --width 0.125). Without
    --meter-local only the board's meters are used. The board is checked first; a dropped
    connection is re-attached until the run ends (Ctrl-C leaves it running; collect it later).
    """
    from ebedge.remote.run import MAX_BYTES, LocalMeterSpec, run_remote
    from ebedge.run.runid import check_run_id
    if run_id is not None:
        check_run_id(run_id, "--name")
    board_options, local_options = _split_meter_options(meter_option)
    local = LocalMeterSpec(meter_local, port, local_options) if meter_local else None
    if local_options and not meter_local:
        raise EbedgeError("--meter-option KEY=VALUE without a meter name needs --meter-local")
    if suite:
        if ctx.args or settings_file or run_id:
            raise EbedgeError("--suite runs the suite's own settings; no train options with it")
        _sweep(suite, [(host, {})], ssh_config, remote_ebedge, root, results, None, 1, False,
               local, {"stall_s": stall_s, "reattach_limit": reattach_limit,
                       "max_bytes": max_bytes or MAX_BYTES})
        return
    settings = _train_settings(ctx.args, settings_file, board_options)
    settings.setdefault("meters", ["auto"])  # measure by default, also on a board with older defaults
    with _board(host, ssh_config, remote_ebedge, root) as board:
        final, local_dir = run_remote(board, settings, results, run_id=run_id, local_meter=local,
                                      progress=_echo, clock_period_s=clock_period,
                                      max_bytes=max_bytes or MAX_BYTES, stall_s=stall_s,
                                      reattach_limit=reattach_limit)
    _print_summary(local_dir)
    if final["state"] != "complete":
        raise EbedgeError("run ended %s%s" % (final["state"], ": %s" % final["error"]
                                              if final.get("error") else ""))


def _print_summary(local_dir):
    """The collected run's headline; every value came from the board (checked at collect)."""
    from ebedge.remote.bounded import read_json_file
    path = os.path.join(local_dir, "summary.json")
    if not os.path.exists(path):
        return
    summary = read_json_file(path, path)
    if not isinstance(summary, dict):
        raise EbedgeError("%s holds no JSON object" % path)
    _echo("status %s, test acc %s, runtime %ss" % (
        summary.get("status"), _num(summary.get("test_acc")), _num(summary.get("runtime_s"))))
    compare = summary.get("energy_compare")
    if isinstance(compare, dict) and isinstance(compare.get("phases"), dict):
        for phase, row in sorted(compare["phases"].items()):
            row = row if isinstance(row, dict) else {}
            _echo("  %-12s board %s kJ, laptop %s kJ, ratio %s" % (
                phase, _num(row.get("board_kj")), _num(row.get("laptop_kj")),
                _num(row.get("ratio_laptop_to_board"))))
    flags = summary.get("flags")
    for flag in flags if isinstance(flags, list) else [] if flags is None else [flags]:
        _echo("  flag: %s" % (flag,))
    _echo("results: %s" % local_dir)


def _num(value):
    """A number as shown: `-` when absent, `?` when it is no finite number."""
    import math
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "?"
    return "%.4g" % value


@remote_group.command("status")
@click.argument("host")
@click.argument("run_id", required=False)
@_SSH_CONFIG
@_REMOTE_EBEDGE
@_ROOT
@click.option("--json", "as_json", is_flag=True, help="print the agent's JSON")
def status_cmd(host, run_id, ssh_config, remote_ebedge, root, as_json):
    """Runs on HOST and their state (running, complete, interrupted, failed, killed)."""
    with _board(host, ssh_config, remote_ebedge, root) as board:
        states = board.status(run_id)
    states = [states] if run_id else states
    if as_json:
        _echo(json.dumps(states, sort_keys=True))
        return
    from ebedge.run.runid import is_run_id
    for s in states:
        rid = s["run_id"]
        _echo("%-48s %-12s %s" % (rid if is_run_id(rid) else "(not a run id: %r)" % (rid,),
                                  s["state"], s.get("error") or ""))


@remote_group.command("qualify")
@click.argument("host")
@click.option("--meter", "meter_name", required=True, help="The board's meter to qualify.")
@click.option("--reference", required=True, help="The meter on THIS machine it is checked against.")
@click.option("--port", default=None, help="Serial port of the reference.")
@protocol_options
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for qualification.json and both meters' files.")
@click.option("--save", is_flag=True,
              help="Store the fit as the board's calibration profile (on the board).")
@_SSH_CONFIG
@_REMOTE_EBEDGE
@_ROOT
@_MAX_BYTES
@_STALL
def qualify_cmd(host, meter_name, reference, port, options, ref_options, rail, reference_rail,
                quick, windows, window_s, settle_s, tolerance, out_dir, save, ssh_config,
                remote_ebedge, root, max_bytes, stall_s):
    """Qualify HOST's meter against a reference on this laptop: the board makes the loads, the
    clock offset places both meters on one time axis (as for `run --meter-local`)."""
    import sys
    from ebedge.cli.options import parse_key_values
    from ebedge.remote.qualify import MAX_BYTES, qualify_remote, save_on_board
    from ebedge.util.printable import printable
    with _board(host, ssh_config, remote_ebedge, root) as board:
        result = qualify_remote(board, meter_name, reference, out_dir, windows,
                                window_seconds(quick, window_s), settle_s,
                                parse_key_values(options), port, parse_key_values(ref_options),
                                rail, reference_rail, tolerance, progress=_echo,
                                max_bytes=max_bytes or MAX_BYTES, stall_s=stall_s)
        print_qualification(result, lambda text: printable(text, one_line=True))
        if save:
            _echo("saved calibration profile %s on %s" % (save_on_board(board, result), host))
    sys.exit(0 if result["verdict"] != "fail" else 1)


@remote_group.command("collect")
@click.argument("host")
@click.argument("run_id", required=False)
@_SSH_CONFIG
@_REMOTE_EBEDGE
@_ROOT
@_RESULTS
@_MAX_BYTES
@_STALL
def collect_cmd(host, run_id, ssh_config, remote_ebedge, root, results, max_bytes, stall_s):
    """Pull RUN_ID (or every run) from HOST, finished or partial; safe to repeat.

    Each run lands in a fresh directory, is checked (regular files only, size cap) and only then
    replaces the earlier copy; a folder on the board that is no run is skipped with a warning."""
    from ebedge.remote.run import MAX_BYTES, collect_all
    from ebedge.run.runid import check_run_id
    if run_id is not None:
        check_run_id(run_id)
    with _board(host, ssh_config, remote_ebedge, root) as board:
        _, problems = collect_all(board, results, run_id, progress=_echo,
                                  max_bytes=max_bytes or MAX_BYTES, stall_s=stall_s)
    if problems:
        raise EbedgeError("%d run(s) from %s not collected (see the warnings above)"
                          % (len(problems), host))


@remote_group.command("stop")
@click.argument("host")
@click.argument("run_id")
@KILL
@GRACE
@_SSH_CONFIG
@_REMOTE_EBEDGE
@_ROOT
def stop_cmd(host, run_id, kill, grace, ssh_config, remote_ebedge, root):
    """Stop RUN_ID on HOST: cleanly (it ends `interrupted`), or with --kill at once (it is left
    `killed`); either way resumable and collectable afterwards."""
    with _board(host, ssh_config, remote_ebedge, root) as board:
        state = board.stop(run_id, kill=kill, grace_s=grace)
    _echo("%s: sent %s to %s (pid %s); now %s" % (host, state.get("signalled"), run_id,
                                                      state.get("signalled_pid"),
                                                      state.get("state")))


@remote_group.command("unlock")
@click.argument("host")
@_SSH_CONFIG
@_REMOTE_EBEDGE
@_ROOT
def unlock_cmd(host, ssh_config, remote_ebedge, root):
    """Release HOST's sweep reservation (left by a sweep that is gone). A live run keeps the
    board's run lock regardless: stop it with `ebedge remote stop HOST RUN_ID [--kill]`."""
    with _board(host, ssh_config, remote_ebedge, root) as board:
        released = board.unlock()
    if released is None:
        _echo("%s: no sweep reservation" % host)
    else:
        _echo("%s: released the reservation of sweep %s (laptop %s)"
                   % (host, released.get("owner"), released.get("laptop") or released.get("host")))


def _sweep(suite_file, hosts, ssh_config, remote_ebedge, root, results, ledger, max_attempts,
           mixed_boards, local_meter, limits):
    from ebedge.remote.sweep import DONE, run_sweep
    from ebedge.run.suite import load_suite
    suite = load_suite(suite_file)
    boards = [_board(alias, ssh_config,
                     opts.get("remote_ebedge", remote_ebedge), opts.get("root", root))
              for alias, opts in hosts]
    data = run_sweep(suite, boards, results, ledger_path=ledger, max_attempts=max_attempts,
                     mixed_boards=mixed_boards, local_meter=local_meter, progress=_echo,
                     limits=limits)
    cells = data["cells"]
    done = [c for c in cells if cells[c]["state"] == DONE]
    _echo("sweep %s: %d of %d cells done" % (data["sweep_id"], len(done), len(cells)))
    for cell_id, cell in sorted(cells.items()):
        if cell["state"] != DONE:
            _echo("  %s %s: %s" % (cell_id, cell["state"], "; ".join(
                "%s %s" % (a["board"], a.get("detail") or a["outcome"]) for a in cell["attempts"])))
    if len(done) != len(cells):
        raise EbedgeError("%d cells not done" % (len(cells) - len(done)))


@remote_group.command("sweep")
@click.argument("suite", type=click.Path(dir_okay=False, exists=True))
@click.option("--hosts", default=None, help="comma-separated ssh host aliases")
@click.option("--hosts-file", type=click.Path(dir_okay=False, exists=True),
              help="one board per line: `ALIAS [remote_ebedge=PATH] [root=DIR]`")
@click.option("--ledger", default=None, help="ledger file [default: RESULTS/sweep-<suite>.json]")
@click.option("--max-attempts", type=int, default=2, show_default=True,
              help="boards a cell may fail on before it is given up")
@click.option("--mixed-boards", is_flag=True,
              help="let a cell move between boards of different model or power mode")
@click.option("--meter-local", default=None, help="meter on THIS machine (one board at a time!)")
@click.option("--port", default=None, help="serial port of --meter-local")
@click.option("--meter-option", multiple=True, help="KEY=VALUE for --meter-local")
@_SSH_CONFIG
@_REMOTE_EBEDGE
@_ROOT
@_RESULTS
@_MAX_BYTES
@_STALL
@_REATTACH_LIMIT
@click.option("--cell-stall-timeout", "cell_stall_s", type=click.FloatRange(min=1),
              default=3600.0, show_default=True,
              help="a cell whose run sends no log byte for this many seconds is `stalled`: left "
                   "on its board and retried on another free board of the same model and mode")
def sweep_cmd(suite, hosts, hosts_file, ledger, max_attempts, mixed_boards, meter_local, port,
              meter_option, ssh_config, remote_ebedge, root, results, max_bytes, stall_s,
              reattach_limit, cell_stall_s):
    """Run SUITE's cells over several boards; rerun the same command to resume."""
    from ebedge.remote.run import LocalMeterSpec
    from ebedge.remote.sweep import parse_hosts
    _, local_options = _split_meter_options(meter_option)
    local = LocalMeterSpec(meter_local, port, local_options) if meter_local else None
    from ebedge.remote.run import MAX_BYTES
    _sweep(suite, parse_hosts(hosts, hosts_file), ssh_config, remote_ebedge, root, results,
           ledger, max_attempts, mixed_boards, local,
           {"stall_s": stall_s, "reattach_limit": reattach_limit, "cell_stall_s": cell_stall_s,
            "max_bytes": max_bytes or MAX_BYTES})


@remote_group.command("doctor")
@click.argument("host")
@_SSH_CONFIG
@_REMOTE_EBEDGE
@_ROOT
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def doctor_cmd(host, ssh_config, remote_ebedge, root, as_json):
    """What HOST has: Python, torch, ebedge (vs ours), meters, power mode, disk, clock offset."""
    from ebedge.remote.provision import doctor
    with _board(host, ssh_config, remote_ebedge, root) as board:
        report = doctor(board)
    if as_json:
        _echo(json.dumps(report, sort_keys=True))
        return
    for line in report["lines"]:
        _echo(line)


@remote_group.command("install")
@click.argument("host")
@click.option("--python", "remote_python", default="python3", show_default=True,
              help="the board's Python to build the venv with")
@click.option("--venv", default="~/.ebedge/venv", show_default=True, help="venv on the board")
@_SSH_CONFIG
def install_cmd(host, remote_python, venv, ssh_config):
    """Write this ebedge as a wheel (no build tools needed), install it into a venv on HOST
    (system site packages, so JetPack's torch is seen), and say which dependencies are missing
    there; exits non-zero while a required one is."""
    from ebedge.remote.provision import install
    from ebedge.remote.ssh import Connection
    with Connection(host, ssh_config) as conn:
        lines, missing = install(conn, remote_python=remote_python, venv=venv, progress=_echo)
    for line in lines:
        _echo(line)
    if missing:
        raise EbedgeError("ebedge is installed on %s but cannot run there: %s missing (see above)"
                          % (host, ", ".join(missing)))
