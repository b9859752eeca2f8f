"""Fleet sweeps: a suite's cells over several boards, one cell per board at a time.

One thread per board takes the next cell it may run. A ledger JSON on the laptop records every
cell's state (pending, running, done, failed) and its attempts (board, outcome), written after
every change, so a sweep that was killed resumes where it stopped: done cells are never rerun,
and a cell left `running` is adopted on its board (a run still going there is watched, a
complete one collected, a killed or interrupted one resumed). A failed cell goes back to the queue
for another board until it has failed on `max_attempts` boards. A cell whose connection dropped
while its run went on is never queued again: its board's thread re-attaches (for up to
REATTACH_S), and if the board stays away the cell stays with it until a later sweep re-attaches.

Each board is reserved for the sweep through `ebedge agent lock` (owner = the ledger's random
sweep id, so a resumed sweep gets its boards back; another sweep's reservation is refused until
`ebedge remote unlock HOST` releases it). The board's own run lock still allows one run at a
time whoever starts it. Two sweep processes never share one ledger (a lock on the laptop). Cells
are pooled by board model and power mode: a cell that started on one kind of board is only
retried on the same kind, unless `mixed_boards`. A cell that sets its own power mode
(`power_modes` in the suite's grid) is pooled by board model alone: the board switches to the
cell's mode for the run and back after it (ebedge.measure.powermode), and a board whose
/etc/nvpmodel.conf lacks that mode is never given the cell.
"""
import fcntl
import json
import os
import socket
import threading
import time
import uuid

from ebedge.util import safeio
from ebedge.errors import EbedgeError
from ebedge.measure.board_state import BoardState, PowerMode
from ebedge.remote.run import RunDetached, RunStalled, run_remote
from ebedge.remote.ssh import ConnectionLost, Unreachable

REATTACH_S = 3600.0  # how long a board's thread waits for a dropped board to come back

PENDING, RUNNING, DONE, FAILED, STALLED = "pending", "running", "done", "failed", "stalled"
CELL_STALL_S = 3600.0  # a cell whose run sends nothing for this long is stalled


def parse_hosts(hosts=None, hosts_file=None):
    """[(alias, {option: value})] from `h1,h2` and/or a file of lines `alias [remote_ebedge=PATH]
    [root=DIR]` (# comments)."""
    out = [(h.strip(), {}) for h in (hosts or "").split(",") if h.strip()]
    if hosts_file:
        with open(hosts_file) as f:
            for number, line in enumerate(f, 1):
                words = line.split("#", 1)[0].split()
                if not words:
                    continue
                options = {}
                for word in words[1:]:
                    key, sep, value = word.partition("=")
                    if not sep or key not in ("remote_ebedge", "root"):
                        raise EbedgeError("%s:%d: expected `alias [remote_ebedge=PATH] [root=DIR]`"
                                          ", got %r" % (hosts_file, number, word))
                    options[key] = value
                out.append((words[0], options))
    if not out:
        raise EbedgeError("no boards: give --hosts h1,h2 or --hosts-file FILE")
    aliases = [a for a, _ in out]
    if len(set(aliases)) != len(aliases):
        raise EbedgeError("a board is listed twice: %s" % ", ".join(aliases))
    return out


class Ledger(object):
    """The sweep's state on disk; every method holds the lock and saves."""

    def __init__(self, path, suite_name, cell_ids):
        self.path = path
        self._lock = threading.RLock()
        if os.path.exists(path):
            with open(path) as f:
                self.data = json.load(f)
            known = set(self.data["cells"])
            for cell_id in cell_ids:
                if cell_id not in known:
                    self.data["cells"][cell_id] = _new_cell()
        else:
            self.data = {"sweep_id": uuid.uuid4().hex, "suite": suite_name,
                         "created": time.time(), "boards": {},
                         "cells": {c: _new_cell() for c in cell_ids}}
        self.order = list(cell_ids)
        self.save()

    @property
    def sweep_id(self):
        return self.data["sweep_id"]

    def save(self):
        with self._lock:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            safeio.write_json(self.path, self.data)

    def cell(self, cell_id):
        return self.data["cells"][cell_id]

    def board(self, host, **facts):
        with self._lock:
            self.data["boards"].setdefault(host, {}).update(facts)
            self.save()

    def take(self, host, pool, max_attempts, mixed):
        """The next cell this board may run, marked running; None when nothing is left for it.

        Order: a cell this board left `running` (resume), then pending cells in suite order.
        `pool` maps each cell to what this board offers it (_pools; None: it cannot run it)."""
        with self._lock:
            candidates = [c for c in self.order if self.cell(c)["state"] == RUNNING
                          and self.cell(c).get("board") == host]
            candidates += [c for c in self.order if self.cell(c)["state"] in (PENDING, STALLED)]
            for cell_id in candidates:
                cell = self.cell(cell_id)
                tried = [a["board"] for a in cell["attempts"] if a["outcome"] != DONE]
                if host in tried and cell["state"] in (PENDING, STALLED):
                    continue
                if pool[cell_id] is None and cell["state"] in (PENDING, STALLED):
                    continue  # the cell's power mode does not exist on this board
                if cell.get("pool") is not None and cell["pool"] != pool[cell_id] and not mixed:
                    continue
                if cell["state"] in (PENDING, STALLED):
                    cell["attempts"].append({"board": host, "outcome": RUNNING,
                                             "started": time.time()})
                cell.update(state=RUNNING, board=host)
                if cell.get("pool") is None:
                    cell["pool"] = pool[cell_id]
                self.save()
                return cell_id
            return None

    def finish(self, cell_id, host, ok, detail, local=None, max_attempts=2):
        with self._lock:
            cell = self.cell(cell_id)
            attempt = cell["attempts"][-1]
            attempt.update(outcome=DONE if ok else FAILED, detail=detail, ended=time.time())
            if ok:
                cell.update(state=DONE, board=host, result=local)
            else:
                failed_boards = set(a["board"] for a in cell["attempts"] if a["outcome"] == FAILED)
                cell["state"] = FAILED if len(failed_boards) >= max_attempts else PENDING
                cell["board"] = None
            self.save()

    def stall(self, cell_id, host, detail):
        """The cell's run on `host` made no progress: left there, the cell `stalled` until
        another free board of its pool takes it."""
        with self._lock:
            cell = self.cell(cell_id)
            cell["attempts"][-1].update(outcome=STALLED, detail=detail, ended=time.time())
            cell.update(state=STALLED, board=None)
            self.save()

    def release(self, cell_id):
        """A board gave up on a cell before its run was started: queue it again."""
        with self._lock:
            cell = self.cell(cell_id)
            if cell["state"] == RUNNING:
                cell["attempts"].pop()
                cell.update(state=PENDING, board=None)
                self.save()

    def open_cells(self, host, pool, mixed, max_attempts, active):
        """True while some cell not finished could still come to this board. A cell running on
        a board that is not `active` in this sweep stays with that board."""
        with self._lock:
            for c in self.order:
                cell = self.cell(c)
                if cell["state"] in (DONE, FAILED):
                    continue
                if cell["state"] == RUNNING:
                    if cell.get("board") in active:
                        return True  # another board may still fail it back to the queue
                    continue
                tried = [a["board"] for a in cell["attempts"] if a["outcome"] in (FAILED, STALLED)]
                if host not in tried and pool[c] is not None and (cell.get("pool") in (None, pool[c])
                                                                  or mixed):
                    return True
            return False


def _pools(state, modes, cells):
    """cell id -> the pool this board offers it: [board model, power mode], where the mode is the
    cell's own when it switches (None when this board has no such mode), else the board's."""
    out = {}
    for cell_id, settings in cells.items():
        wanted = settings.get("power_mode")
        if wanted is None:
            out[cell_id] = state.pool
            continue
        found = [m for m in modes if wanted == m.id or
                 (isinstance(wanted, str) and wanted.lower() == str(m.name).lower())]
        out[cell_id] = [state.model, found[0].label] if found else None
    return out


def _new_cell():
    return {"state": PENDING, "attempts": [], "board": None, "pool": None}


def _take_board(board, sweep_id):
    """Reserve the board for this sweep (its random id); another sweep's reservation is refused
    with the command that releases it."""
    try:
        return board.agent(["lock", "--owner", sweep_id, "--laptop", socket.gethostname(),
                            "--pid", str(os.getpid())])
    except EbedgeError as exc:
        raise EbedgeError(str(exc).replace("ebedge remote unlock HOST",
                                           "ebedge remote unlock %s" % board.host))


class _LedgerLock(object):
    """One sweep process per ledger on this laptop (flock, released when the process dies)."""

    def __init__(self, ledger_path):
        os.makedirs(os.path.dirname(os.path.abspath(ledger_path)), exist_ok=True)
        self._fd = os.open(ledger_path + ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            raise EbedgeError("another sweep process is using the ledger %s on this laptop"
                              % ledger_path)

    def release(self):
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def run_sweep(suite, boards, results, ledger_path=None, max_attempts=2, mixed_boards=False,
              local_meter=None, progress=None, reattach_s=REATTACH_S, limits=None):
    """Run every cell of `suite` (ebedge.run.suite.Suite) over `boards` [Board]; returns the ledger data.

    `limits`: keyword arguments for run_remote (stall_s, reattach_limit, cell_stall_s, max_bytes);
    cell_stall_s defaults to CELL_STALL_S."""
    limits = dict({"cell_stall_s": CELL_STALL_S}, **(limits or {}))
    progress = progress or (lambda text: None)
    if local_meter is not None and len(boards) > 1:
        raise EbedgeError("a laptop meter measures one board: --meter-local takes one host")
    cells = {c.cell_id: c.settings for c in suite.cells()}
    ledger_path = ledger_path or os.path.join(results, "sweep-%s.json" % suite.name)
    ledger_lock = _LedgerLock(ledger_path)
    try:
        ledger = Ledger(ledger_path, suite.name, list(cells))
        for cell_id, cell in sorted(ledger.data["cells"].items()):
            if cell["state"] == RUNNING and cell.get("board") not in [b.host for b in boards]:
                progress("%s: cell %s stays with board %s (not in this sweep), where it may still "
                         "run" % (ledger.sweep_id, cell_id, cell.get("board")))
        progress("sweep %s: %d cells over %d boards, ledger %s" % (
            ledger.sweep_id, len(cells), len(boards), ledger_path))
        active = set(b.host for b in boards)
        threads = [threading.Thread(target=_worker, name="sweep-%s" % b.host,
                                    args=(b, ledger, cells, results, active, max_attempts,
                                          mixed_boards, local_meter, progress, reattach_s,
                                          limits))
                   for b in boards]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return ledger.data
    finally:
        ledger_lock.release()


def board_facts(board):
    """(BoardState, [PowerMode] its nvpmodel.conf offers) of a connected board, as its agent
    says; what the board sent with a wrong type reads as unknown."""
    info = board.info()
    info = info if isinstance(info, dict) else {}
    modes = info.get("power_modes") if isinstance(info.get("power_modes"), list) else []
    return (BoardState.from_json(info.get("board")),
            [m for m in (PowerMode.from_json(d) for d in modes) if m is not None])


def board_pool(board):
    """[model, power mode] of a connected board: boards with equal pools may share a cell."""
    return board_facts(board)[0].pool


def _worker(board, ledger, cells, results, active, max_attempts, mixed, local_meter, progress,
            reattach_s, limits):
    """One board's thread: take cells until none is left for it."""
    locked = False
    try:
        board.conn.connect()
        _take_board(board, ledger.sweep_id)
        locked = True
        state, modes = board_facts(board)
        pool = _pools(state, modes, cells)
        ledger.board(board.host, state="active", pool=state.pool)
        while ledger.open_cells(board.host, pool, mixed, max_attempts, active):
            cell_id = ledger.take(board.host, pool, max_attempts, mixed)
            if cell_id is None:
                time.sleep(1.0)
                continue
            progress("%s: cell %s" % (board.host, cell_id))
            try:
                final, local = run_remote(board, cells[cell_id], results, run_id=cell_id,
                                          local_meter=local_meter, if_exists="adopt",
                                          progress=progress, sweep=ledger.sweep_id,
                                          reattach_s=reattach_s, **limits)
            except RunStalled as exc:  # the run stays on this board, busy: the cell moves on
                ledger.stall(cell_id, board.host, str(exc))
                ledger.board(board.host, state=STALLED, error=str(exc))
                progress("%s: cell %s stalled, left there; it goes to another free board of "
                         "the same kind: %s" % (board.host, cell_id, exc))
                return
            except RunDetached:
                raise  # the cell stays running on this board: a later sweep re-attaches
            except (ConnectionLost, Unreachable):
                ledger.release(cell_id)  # lost before the run was started
                raise
            except EbedgeError as exc:
                ledger.finish(cell_id, board.host, False, str(exc), max_attempts=max_attempts)
                progress("%s: cell %s failed: %s" % (board.host, cell_id, exc))
                continue
            ok = final["state"] == "complete"
            ledger.finish(cell_id, board.host, ok, final["state"] if ok else
                          "%s: %s" % (final["state"], final.get("error")), local=local,
                          max_attempts=max_attempts)
            progress("%s: cell %s %s" % (board.host, cell_id, final["state"]))
        ledger.board(board.host, state="finished")
    except Exception as exc:  # whatever this board did, the other boards' threads go on
        reason = str(exc) if isinstance(exc, EbedgeError) else "%s: %s" % (
            type(exc).__name__, (str(exc).splitlines() or [""])[0][:200])
        ledger.board(board.host, state="failed", error=reason)
        progress("%s: board dropped from the sweep: %s" % (board.host, reason))
    finally:
        active.discard(board.host)
        if locked:
            try:
                board.agent(["unlock", "--owner", ledger.sweep_id])
            except EbedgeError:
                pass
        board.close()
