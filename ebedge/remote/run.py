"""`ebedge remote run` and `collect`: settings out, a detached run on the board, its directory back.

A run: resolve the settings here (bad input fails before anything reaches the board) while the
connection opens and the board is checked (it can run ebedge), start the laptop meter and the
clock channel when an external meter is used, start the run detached through the agent, stream
its log while connected, then collect it into `<results>/<host>/<run_id>/` and fold in the
laptop's samples. A dropped connection is not the end of the run: the laptop keeps recording and
re-attaches until the run ends (or the user stops it with Ctrl-C; `collect` fetches it later).

A collect trusts nothing the board sends: run ids are checked, files land in a fresh directory
inside the results root, are checked there (regular files and directories only, nothing leaving
it, a size cap) and only then replace the earlier copy, so a failed collect changes nothing.
"""
import os
import re
import stat
import tempfile
import threading
import time

from ebedge.errors import EbedgeError
from ebedge.remote import align, boardfiles, bounded, tree
from ebedge.remote.clock import ClockChannel, PeriodicProbe
from ebedge.remote.ssh import ConnectionLost, SshError, Unreachable
from ebedge.run.runid import check_run_id, is_run_id
from ebedge.config.settings import resolve

CLOCK_PERIOD_S = 30.0
MAX_BYTES = 20 * 2 ** 30  # what one collected run may bring (checkpoints, long sample logs)
STALL_S = 120.0  # a copy that moves no byte for this long is ended
REATTACH_MAX_DELAY_S = 30.0
REATTACH_LIMIT = 10  # re-attaches in a row that bring no new log byte before giving up


class RunDetached(ConnectionLost):
    """The connection dropped after the run was started and did not come back in time: the run
    may go on on the board (never start it elsewhere); collect it later."""


class RunStalled(RunDetached):
    """The run sent nothing for the cell's stall limit: left as it is on its board (collect it
    later); a sweep retries the cell elsewhere."""


def local_run_dir(results, host, run_id):
    """`<results>/<host>/<run_id>`, with the host alias made safe as a directory name."""
    return os.path.join(results, re.sub(r"[^A-Za-z0-9._@-]", "_", host).lstrip(".") or "_",
                        check_run_id(run_id))


def default_run_id(settings):
    return "%s-%s-%s-%s" % (time.strftime("%Y%m%d-%H%M%S"), settings.method, settings.model,
                            settings.dataset)


class LocalMeterSpec(object):
    """What `--meter-local NAME --port DEV --meter-option K=V` asked for."""

    def __init__(self, name, port=None, options=None):
        self.name = name
        self.port = port
        self.options = dict(options or {})


def run_remote(board, settings, results, run_id=None, local_meter=None, progress=None,
               if_exists="refuse", clock_period_s=CLOCK_PERIOD_S, sweep=None,
               reattach_s=None, max_bytes=MAX_BYTES, stall_s=STALL_S,
               reattach_limit=REATTACH_LIMIT, cell_stall_s=None):
    """Run `settings` on `board` (a remote.board.Board); returns (final state, local run dir).

    A dropped connection is re-attached (the laptop meter records on) for up to `reattach_s`
    seconds (None: until the run ends), and at most `reattach_limit` times in a row without a
    new log byte; then RunDetached, and what was recorded is kept locally. A run that sends
    nothing for `cell_stall_s` seconds (None: no limit) raises RunStalled. Copies end after
    `stall_s` seconds without a byte."""
    progress = progress or (lambda text: None)
    checking = _in_background(board.require_ready)  # resolving imports torch: seconds
    try:
        settings = resolve(settings)
        run_id = check_run_id(run_id or default_run_id(settings), "--name")
    except EbedgeError:
        try:
            checking()  # so that closing the connection finds it complete
        except EbedgeError:
            pass
        raise
    local = local_run_dir(results, board.host, run_id)
    checking()
    progress("%s: connected (ssh master pid %s)" % (board.host, board.conn.master_pid()))
    recorder = None
    if local_meter is not None:
        recorder = LaptopRecorder(board, local, local_meter, clock_period_s, progress)
    final = started = None
    try:
        if recorder is not None:
            recorder.start()
        try:
            started = board.start(settings, run_id, if_exists=if_exists, sweep=sweep)
        except (ConnectionLost, Unreachable) as exc:  # it may have started: never start it twice
            raise RunDetached("%s; `ebedge remote status %s` tells whether run %s started"
                              % (exc, board.host, run_id))
        progress("%s: run %s %s (pid %s) in %s" % (
            board.host, run_id, "resumed" if started.get("resumed") else
            "adopted" if started.get("adopted") else "started", started.get("pid"),
            started["out"]))
        final = _follow(board, run_id, progress, reattach_s, recorder, reattach_limit,
                        cell_stall_s)
    finally:
        if recorder is not None:
            recorder.stop(final is not None)
    notes = collect(board, run_id, local, remote_out=started["out"], max_bytes=max_bytes,
                    stall_s=stall_s)
    for note in notes:
        progress("warning: %s: %s: %s" % (board.host, run_id, note))
    progress("%s: run %s %s -> %s" % (board.host, run_id, final["state"], local))
    return final, local


def _follow(board, run_id, progress, reattach_s, recorder, reattach_limit=REATTACH_LIMIT,
            stall_s=None):
    """Stream the run's log until it ends; re-attach after every drop (see run_remote)."""
    log_from = 0
    fruitless = 0  # re-attaches in a row that brought no new log byte
    while True:
        before = log_from
        try:
            return board.watch(run_id, lambda line: progress("%s| %s" % (board.host, line)),
                               log_from=log_from, stall_s=stall_s)
        except bounded.Stalled:
            raise RunStalled("run %s on %s sent nothing for %.0f s: stalled, left as it is there;"
                             " `ebedge remote collect %s %s` fetches it later"
                             % (run_id, board.host, stall_s, board.host, run_id))
        except ConnectionLost as exc:
            log_from = getattr(exc, "log_offset", log_from)
            fruitless = 0 if log_from > before else fruitless + 1
            if reattach_limit is not None and fruitless > reattach_limit:
                raise RunDetached("gave up on run %s: its log stream to %s dropped %d times in a "
                                  "row without progress (--reattach-limit %d); `ebedge remote "
                                  "collect %s %s` fetches it later"
                                  % (run_id, board.host, fruitless, reattach_limit, board.host,
                                     run_id))
            progress("%s: connection lost; run %s goes on there%s; re-attaching"
                     % (board.host, run_id, ", the laptop meter keeps recording"
                        if recorder is not None else ""))
        gave_up_at = None if reattach_s is None else time.monotonic() + reattach_s
        delay = 1.0
        while True:
            if gave_up_at is not None and time.monotonic() > gave_up_at:
                raise RunDetached("lost %s for longer than %.0f s while run %s went on; "
                                  "`ebedge remote collect %s %s` fetches it later"
                                  % (board.host, reattach_s, run_id, board.host, run_id))
            time.sleep(delay)
            delay = min(REATTACH_MAX_DELAY_S, 2 * delay)
            try:
                board.conn.connect()
            except SshError as exc:
                progress("%s: still unreachable (%s)" % (board.host, exc))
                continue
            progress("%s: re-attached to run %s" % (board.host, run_id))
            if recorder is not None:
                recorder.reopen_clock()
            break


class LaptopRecorder(object):
    """The laptop meter and the clock channel of one run; the meter outlives dropped connections."""

    def __init__(self, board, local, spec, clock_period_s, progress):
        self.board = board
        self.progress = progress
        self.local = local
        self.spec = spec
        self.period_s = clock_period_s
        self.estimates = []
        self.meter = self.channel = self.probe = None

    def start(self):
        try:
            self._open_clock()
        except EbedgeError as exc:  # a board that answers `nan`: no alignment, flagged at collect
            self._close_clock(False)
            self.progress("warning: %s: %s; the laptop meter records on, but cannot be aligned "
                          "to this run unless a later probe succeeds" % (self.board.host, exc))
        self.meter = align.LaptopMeter(self.spec.name, os.path.join(self.local, align.LAPTOP,
                                                                    "samples.csv"),
                                       port=self.spec.port, options=self.spec.options)
        align.write_clock(self.local, self.estimates)
        self.meter.start()
        self._save()

    def _save(self):
        align.write_clock(self.local, self.estimates,
                          self.meter.describe() if self.meter is not None else None)

    def _open_clock(self):
        self.channel = ClockChannel(self.board.conn, self.board.remote_ebedge)
        self.estimates.append(self.channel.burst())  # a reply that is no finite time: EbedgeError
        self.probe = PeriodicProbe(self.channel, self.estimates, self.period_s, self._save)
        self.probe.start()

    def _close_clock(self, last_burst):
        if self.probe is not None:
            self.probe.stop()
        if self.channel is not None:
            if last_burst:
                try:
                    self.estimates.append(self.channel.burst())
                except EbedgeError:
                    pass
            self.channel.close()
        self.probe = self.channel = None

    def reopen_clock(self):
        """After a re-attach: a new clock channel (the old one went down with the connection)."""
        self._close_clock(False)
        try:
            self._open_clock()
            self._save()
        except EbedgeError:
            self.probe = self.channel = None

    def stop(self, run_ended):
        ended = time.monotonic()
        self._close_clock(run_ended)
        if self.meter is None:
            return
        if run_ended:  # let the last phase's end fall between two laptop samples
            time.sleep(max(0.0, self.meter.tail_s - (time.monotonic() - ended)))
        error = self.meter.stop()
        self._save()
        if error is not None:
            self.progress("%s: laptop meter error: %s" % (self.board.host, error))


def _in_background(fn):
    """Start fn() in a thread; the returned callable waits for it and re-raises its error."""
    outcome = {}

    def target():
        try:
            fn()
        except Exception as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="background")
    thread.daemon = True
    thread.start()

    def wait():
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
    return wait


def collect(board, run_id, local, remote_out=None, max_bytes=MAX_BYTES, stall_s=STALL_S):
    """Pull the run (any state) into `local` and fold in laptop samples; returns notes on what
    the board sent that was skipped or refused. The copy lands in a fresh directory beside
    `local`, is checked, merged and only then renamed into place; any failure removes it and
    leaves `local` as it was."""
    check_run_id(run_id)
    parent = os.path.dirname(local)
    os.makedirs(parent, exist_ok=True)
    stage = tempfile.mkdtemp(prefix=".collect-%s-" % run_id, dir=parent)
    what = "%s sent for run %s" % (board.host, run_id)
    try:
        if os.path.isdir(local):  # rsync moves only what changed; laptop/ is ours, kept apart
            tree.copy(local, stage, skip=(align.LAPTOP,))
        notes = board.pull(run_id, stage, remote_out=remote_out, max_file_bytes=max_bytes,
                           stall_s=stall_s)
        check_tree(stage, max_bytes, what)
        notes += align.refuse_laptop_files(stage)
        if os.path.isdir(os.path.join(local, align.LAPTOP)):
            tree.copy(os.path.join(local, align.LAPTOP), os.path.join(stage, align.LAPTOP),
                      link=False)
        notes += boardfiles.check(stage, run_id, what)
        align.merge_laptop(stage, host_alias=board.host)
        _replace(stage, local)
    except EbedgeError:
        tree.remove(stage)
        raise
    except Exception as exc:  # whatever the board's files did to us: this run refused, one line
        tree.remove(stage)
        raise EbedgeError("refusing what %s: %s; nothing was replaced" % (what, _reason(exc)))
    except BaseException:
        tree.remove(stage)
        raise
    return notes


def check_tree(root, max_bytes, what):
    """EbedgeError unless `root` holds only directories and regular files (no link, device, pipe
    or socket) of at most `max_bytes` in all (apparent sizes), within the tree's limits."""
    total = 0
    try:
        for rel, info in tree.walk(root):
            mode = info.st_mode
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                raise EbedgeError("refusing what %s: %s is a %s, not a regular file; nothing was "
                                  "replaced" % (what, rel, "symlink" if stat.S_ISLNK(mode) else
                                                "special file"))
            total += info.st_size
            if total > max_bytes:
                raise EbedgeError("refusing what %s: over %d bytes (--max-bytes); nothing was "
                                  "replaced" % (what, max_bytes))
    except tree.TreeRefused as exc:
        raise EbedgeError("refusing what %s: a tree %s; nothing was replaced" % (what, exc))
    return total


def _replace(stage, local):
    """Put the checked copy at `local`; the earlier copy is removed only once it is there."""
    if not os.path.lexists(local):
        os.rename(stage, local)
        return
    old = tempfile.mkdtemp(prefix=".replaced-", dir=os.path.dirname(local))
    os.rename(local, os.path.join(old, "run"))
    try:
        os.rename(stage, local)
    except OSError:
        os.rename(os.path.join(old, "run"), local)  # put the earlier copy back
        os.rmdir(old)
        raise
    tree.remove(old)


def _reason(exc):
    """One line for an unexpected failure on board data (no traceback)."""
    text = str(exc).strip().splitlines()
    return "%s%s" % (type(exc).__name__, ": " + text[0][:200] if text else "")


def collect_all(board, results, run_id=None, progress=None, max_bytes=MAX_BYTES, stall_s=STALL_S):
    """Collect one run, or every run the board has; ([(run_id, state, local dir)], [problem]).

    With no `run_id`, an entry that is no run (unknown to the board, e.g. lost+found) is skipped
    with a warning, and a run whose id or files are refused is reported as a problem while the
    others are still collected."""
    progress = progress or (lambda text: None)
    if run_id is not None:
        check_run_id(run_id)
    states = [board.status(run_id)] if run_id else board.status()
    out, problems = [], []
    for state in states:
        rid = run_id or state.get("run_id")  # the id asked for, whatever the board answers
        if not is_run_id(rid):
            problems.append("%s reported a run id that is not one: %s"
                            % (board.host, repr(rid)[:80]))
            progress("warning: " + problems[-1])
            continue
        if state.get("state") == "unknown":
            if run_id:
                raise EbedgeError("%s has no run %s" % (board.host, rid))
            progress("warning: %s: %s is no run (no config.json), skipped" % (board.host, rid))
            continue
        local = local_run_dir(results, board.host, rid)
        try:
            notes = collect(board, rid, local, remote_out=state.get("out"), max_bytes=max_bytes,
                            stall_s=stall_s)
        except EbedgeError as exc:  # any failure refuses this run alone, in one line
            if run_id:
                raise
            problems.append(str(exc))
            progress("warning: %s" % exc)
            continue
        for note in notes:
            progress("warning: %s: %s: %s" % (board.host, rid, note))
        progress("%s: %s (%s) -> %s" % (board.host, rid, state.get("state"), local))
        out.append((rid, state.get("state"), local))
    return out, problems
