"""Fleet sweeps: a suite's cells over several boards, one cell per board at a time.

One thread per board takes the next cell it may run. A ledger JSON on the laptop records every
cell's state (pending, running, done, failed) and its attempts (board, outcome), written after
every change, so a sweep that was killed resumes where it stopped: done cells are never rerun,
and a cell left `running` is adopted on its board (a run still going there is watched, a
complete one collected, anything else started again). A failed cell goes back to the queue for
another board until it has failed on `max_attempts` boards. Each board is locked for the sweep
through `ebedge agent lock` (owner = the ledger's sweep id, so a resumed sweep gets its boards
back; a lock left by a dead sweep on this laptop is taken over). Cells are pooled by board model
and power mode: a cell that started on one kind of board is only retried on the same kind,
unless `mixed_boards`.
"""
import json
import os
import socket
import threading
import time
import uuid

from ebedge.errors import EbedgeError
from ebedge.remote.run import run_remote
from ebedge.remote.ssh import ConnectionLost, Unreachable
from ebedge.rundir import write_json_atomic

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"


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
            self.data = {"sweep_id": uuid.uuid4().hex[:12], "suite": suite_name,
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
            write_json_atomic(self.path, self.data)

    def cell(self, cell_id):
        return self.data["cells"][cell_id]

    def board(self, host, **facts):
        with self._lock:
            self.data["boards"].setdefault(host, {}).update(facts)
            self.save()

    def take(self, host, pool, max_attempts, mixed):
        """The next cell this board may run, marked running; None when nothing is left for it.

        Order: a cell this board left `running` (resume), then pending cells in suite order."""
        with self._lock:
            candidates = [c for c in self.order if self.cell(c)["state"] == RUNNING
                          and self.cell(c).get("board") == host]
            candidates += [c for c in self.order if self.cell(c)["state"] == PENDING]
            for cell_id in candidates:
                cell = self.cell(cell_id)
                tried = [a["board"] for a in cell["attempts"] if a["outcome"] != DONE]
                if host in tried and cell["state"] == PENDING:
                    continue
                if cell.get("pool") is not None and cell["pool"] != pool and not mixed:
                    continue
                if cell["state"] == PENDING:
                    cell["attempts"].append({"board": host, "outcome": RUNNING,
                                             "started": time.time()})
                cell.update(state=RUNNING, board=host)
                if cell.get("pool") is None:
                    cell["pool"] = pool
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

    def release(self, cell_id):
        """A board gave up on a cell without an outcome (connection lost): queue it again."""
        with self._lock:
            cell = self.cell(cell_id)
            if cell["state"] == RUNNING:
                cell["attempts"].pop()
                cell.update(state=PENDING, board=None)
                self.save()

    def release_board(self, host):
        """Queue again every cell `host` holds as running (the board dropped out of the sweep)."""
        with self._lock:
            for cell_id in self.order:
                if self.cell(cell_id)["state"] == RUNNING and self.cell(cell_id)["board"] == host:
                    self.release(cell_id)

    def open_cells(self, host, pool, mixed, max_attempts):
        """True while some cell not finished could still come to this board."""
        with self._lock:
            for c in self.order:
                cell = self.cell(c)
                if cell["state"] in (DONE, FAILED):
                    continue
                if cell["state"] == RUNNING:
                    return True  # another board may still fail it back to the queue
                tried = [a["board"] for a in cell["attempts"] if a["outcome"] == FAILED]
                if host not in tried and (cell.get("pool") in (None, pool) or mixed):
                    return True
            return False


def _new_cell():
    return {"state": PENDING, "attempts": [], "board": None, "pool": None}


def _pid_alive(pid):
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, TypeError, ValueError):
        return False


def _take_board(board, sweep_id, progress):
    """Lock the board for this sweep; a lock left here by a dead sweep process is taken over."""
    me = socket.gethostname()
    args = ["lock", "--owner", sweep_id, "--host", me, "--pid", str(os.getpid())]
    try:
        return board.agent(args)
    except EbedgeError as exc:
        text = str(exc)
        if "locked by" not in text:
            raise
        rc, out, _ = board.conn.run(["cat", _lock_file(board)], check=False)
        held = json.loads(out) if rc == 0 and out.strip() else {}
        if held.get("host") == me and not _pid_alive(held.get("pid")):
            progress("%s: taking over the lock of dead sweep %s (pid %s)"
                     % (board.host, held.get("owner"), held.get("pid")))
            return board.agent(args + ["--steal-stale", "0"])
        raise


def _lock_file(board):
    root = board.root or "~/ebedge-runs"
    return root.rstrip("/") + "/.lock/owner.json"


def run_sweep(suite, boards, results, ledger_path=None, max_attempts=2, mixed_boards=False,
              local_meter=None, progress=None):
    """Run every cell of `suite` (ebedge.suite.Suite) over `boards` [Board]; returns the ledger data."""
    progress = progress or (lambda text: None)
    if local_meter is not None and len(boards) > 1:
        raise EbedgeError("a laptop meter measures one board: --meter-local takes one host")
    cells = {c.cell_id: c.settings for c in suite.cells()}
    ledger_path = ledger_path or os.path.join(results, "sweep-%s.json" % suite.name)
    ledger = Ledger(ledger_path, suite.name, list(cells))
    for host in set(c.get("board") for c in ledger.data["cells"].values()):
        if host and host not in [b.host for b in boards]:
            ledger.release_board(host)  # left running by a sweep over other boards
    progress("sweep %s: %d cells over %d boards, ledger %s" % (
        ledger.sweep_id, len(cells), len(boards), ledger_path))

    def worker(board):
        locked = False
        try:
            board.conn.connect()
            _take_board(board, ledger.sweep_id, progress)
            locked = True
            facts = board.info()["board"]
            pool = [facts.get("model"), facts.get("nvpmodel_mode")]
            ledger.board(board.host, state="active", pool=pool)
            while ledger.open_cells(board.host, pool, mixed_boards, max_attempts):
                cell_id = ledger.take(board.host, pool, max_attempts, mixed_boards)
                if cell_id is None:
                    time.sleep(1.0)
                    continue
                progress("%s: cell %s" % (board.host, cell_id))
                try:
                    final, local = run_remote(board, cells[cell_id], results, run_id=cell_id,
                                              local_meter=local_meter, if_exists="adopt",
                                              progress=progress)
                except (ConnectionLost, Unreachable):
                    ledger.release(cell_id)
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
        except EbedgeError as exc:
            ledger.release_board(board.host)
            ledger.board(board.host, state="failed", error=str(exc))
            progress("%s: board dropped from the sweep: %s" % (board.host, exc))
        finally:
            if locked:
                try:
                    board.agent(["unlock", "--owner", ledger.sweep_id])
                except EbedgeError:
                    pass
            board.close()

    threads = [threading.Thread(target=worker, args=(b,), name="sweep-%s" % b.host)
               for b in boards]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ledger.data
