"""The board-side agent: what `ebedge remote` asks the board to do, one short command at a time.

Runs start detached (their own session, stdin from /dev/null, output to a log file), so a run
survives the SSH connection dropping; the laptop can look at, stop or collect it any time later.
Everything the agent keeps about a run lives beside the run directory, in `<root>/.agent/<id>/`
(settings.json as pushed, log.txt, pid), because the runner wants its run directory to itself.
A run's state is read from its files: summary.json's status, the pid and the heartbeat's age.

Device side: Python 3.6, standard library (plus ebedge and meters).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from ebedge.errors import EbedgeError

DEFAULT_ROOT = "~/ebedge-runs"
AGENT_DIR = ".agent"
LOCK_DIR = ".lock"
HEARTBEAT_STALE_S = 30.0  # the runner touches its heartbeat every 2 s
STATE_MARK = "@@ebedge-state "  # prefix of the last line `watch` prints
# the detached command: ebedge's CLI under this very interpreter (not `-m ebedge.cli`, which
# would import the CLI module twice)
_ENTRY = "import sys; from ebedge.cli import main; sys.argv[0] = 'ebedge'; main()"


def runs_root(root=None):
    return os.path.abspath(os.path.expanduser(root or DEFAULT_ROOT))


def check_run_id(run_id):
    if not run_id or "/" in run_id or run_id.startswith(".") or "\0" in run_id:
        raise EbedgeError("bad run id %r: no '/', no leading '.', not empty" % (run_id,))
    return run_id


def _agent_dir(root, run_id):
    return os.path.join(root, AGENT_DIR, run_id)


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (IOError, OSError, ValueError):
        return None


def _write_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


# -- processes ------------------------------------------------------------------------------------
def pid_alive(pid):
    """True for a live process (a zombie, whose parent never reaped it, counts as dead)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (IOError, OSError, IndexError):
        return True


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().decode("utf-8", "replace").split("\0")
    except (IOError, OSError):
        return []


def start(settings_text, run_id, root=None, suite=None, if_exists="refuse", python=None):
    """Start a run detached; returns {"run_id", "out", "log", "pid", "adopted"}.

    `settings_text`: the settings JSON (ignored with `suite`, a suite file on the board).
    `if_exists`: "refuse" an existing run directory, or "adopt" it: a running or complete run is
    reported as is (adopted), anything else is started again from scratch.
    """
    root = runs_root(root)
    run_id = check_run_id(run_id)
    out = os.path.join(root, run_id)
    agent_dir = _agent_dir(root, run_id)
    if os.path.exists(out) or os.path.exists(agent_dir):
        if if_exists != "adopt":
            raise EbedgeError("run %s already exists on this board (%s)" % (run_id, out))
        state = run_state(root, run_id)
        if state["state"] in ("running", "complete"):
            state.update(adopted=True, out=out, log=os.path.join(agent_dir, "log.txt"))
            return state
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(agent_dir, ignore_errors=True)
    os.makedirs(agent_dir)
    python = python or sys.executable
    if suite:
        argv = [python, "-c", _ENTRY, "bench", suite, "--out", out, "--quiet"]
    else:
        try:
            settings = json.loads(settings_text)
        except ValueError as exc:
            raise EbedgeError("settings are not JSON: %s" % exc)
        if not isinstance(settings, dict):
            raise EbedgeError("settings must be a JSON object")
        settings_path = os.path.join(agent_dir, "settings.json")
        _write_json(settings_path, settings)
        # not --quiet: the log (no tty, so no progress bars) gets a line per epoch with its ETA,
        # which `ebedge remote run`/`watch` stream to the laptop
        argv = [python, "-c", _ENTRY, "train", "--settings", settings_path, "--out", out]
    log_path = os.path.join(agent_dir, "log.txt")
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(argv, stdin=devnull, stdout=log, stderr=subprocess.STDOUT,
                                cwd=agent_dir, close_fds=True, start_new_session=True)
    record = {"run_id": run_id, "out": out, "log": log_path, "pid": proc.pid, "argv": argv,
              "suite": suite, "started_wall": time.time()}
    _write_json(os.path.join(agent_dir, "pid.json"), record)
    return {"run_id": run_id, "out": out, "log": log_path, "pid": proc.pid, "adopted": False,
            "state": "running"}


# -- state ----------------------------------------------------------------------------------------
def run_state(root, run_id):
    """{"run_id", "state", "status", "pid", "heartbeat_age_s", "error"} for one run.

    state: running (pid alive, heartbeat fresh or not yet written), complete, interrupted, failed,
    stale (pid alive but heartbeat old: hung), killed (pid dead without a final status), unknown.
    """
    out = os.path.join(root, run_id)
    record = _read_json(os.path.join(_agent_dir(root, run_id), "pid.json")) or {}
    pid = record.get("pid")
    alive = pid_alive(pid) and bool(record) and out in _cmdline(pid)
    summary = _read_json(os.path.join(out, "summary.json")) or {}
    status = summary.get("status")
    beat = os.path.join(out, "heartbeat")
    age = time.time() - os.path.getmtime(beat) if os.path.exists(beat) else None
    error = None
    if record.get("suite"):
        state = "running" if alive else "finished"
    elif status and status != "running":
        state = "failed" if status.startswith("failed") else status
        error = status[len("failed: "):] if state == "failed" else None
    elif alive:
        state = "stale" if age is not None and age > HEARTBEAT_STALE_S else "running"
    elif status == "running":
        state = "killed"
    elif record:
        state, error = "failed", _log_tail(root, run_id) or "exited before writing a summary"
    else:
        state = "unknown"
    return {"run_id": run_id, "state": state, "status": status, "pid": pid if alive else None,
            "heartbeat_age_s": age, "error": error, "out": out}


def _log_tail(root, run_id):
    path = os.path.join(_agent_dir(root, run_id), "log.txt")
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 2000))
            lines = [l for l in f.read().decode("utf-8", "replace").splitlines() if l.strip()]
    except (IOError, OSError):
        return None
    return lines[-1].strip() if lines else None


def list_runs(root=None):
    """run_state of every run under the root, oldest first."""
    root = runs_root(root)
    if not os.path.isdir(root):
        return []
    ids = set(n for n in os.listdir(root) if not n.startswith(".")
              and os.path.isdir(os.path.join(root, n)))
    agent = os.path.join(root, AGENT_DIR)
    if os.path.isdir(agent):
        ids.update(os.listdir(agent))
    return [run_state(root, r) for r in sorted(ids, key=lambda r: _mtime(root, r))]


def _mtime(root, run_id):
    for path in (_agent_dir(root, run_id), os.path.join(root, run_id)):
        if os.path.exists(path):
            return os.path.getmtime(path)
    return 0.0


def stop(run_id, root=None):
    """SIGTERM the run (the runner then stops cleanly with status `interrupted`)."""
    root = runs_root(root)
    state = run_state(root, check_run_id(run_id))
    if state["pid"] is None:
        raise EbedgeError("run %s is not running (state: %s)" % (run_id, state["state"]))
    os.kill(state["pid"], signal.SIGTERM)
    state["signalled"] = "SIGTERM"
    return state


def watch(run_id, root=None, log_from=0, poll_s=0.5, out=None):
    """Print the run's log as it grows, then one STATE_MARK line with its final state."""
    root = runs_root(root)
    run_id = check_run_id(run_id)
    out = out or sys.stdout
    path = os.path.join(_agent_dir(root, run_id), "log.txt")
    offset = log_from
    ended_with_newline = True
    while True:
        state = run_state(root, run_id)
        chunk = b""
        if os.path.exists(path):
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
        if chunk:
            offset += len(chunk)
            out.write(chunk.decode("utf-8", "replace"))
            ended_with_newline = chunk.endswith(b"\n")
            out.flush()
        if state["state"] not in ("running",):
            state["log_offset"] = offset
            out.write(("" if ended_with_newline else "\n") + STATE_MARK
                      + json.dumps(state, sort_keys=True) + "\n")
            out.flush()
            return state
        time.sleep(poll_s)


# -- clock, info ----------------------------------------------------------------------------------
def clock_loop(stdin=None, stdout=None):
    """Answer each line read with this board's wall time, until end of input."""
    from meters.base import now
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    while True:
        line = stdin.readline()
        if not line:
            return
        stdout.write(("%.6f\n" % now()[1]).encode("ascii"))
        stdout.flush()


def info(root=None):
    """What `remote doctor` shows: versions, meters, power mode, free disk."""
    import platform
    import ebedge
    out = {"python": platform.python_version(), "ebedge": ebedge.__version__,
           "hostname": socket.gethostname(), "executable": sys.executable}
    for name in ("torch", "torchvision"):
        try:
            out[name] = __import__(name).__version__
        except Exception as exc:  # a missing or broken install is what doctor must say
            out[name] = None
            out[name + "_error"] = "%s: %s" % (type(exc).__name__, exc)
    try:
        import meters
        out["meters"] = [{"name": n, "available": ok, "reason": why} for n, ok, why in meters.detect()]
    except Exception as exc:
        out["meters"], out["meters_error"] = [], str(exc)
    from ebedge import board
    snap = board.snapshot()
    out["board"] = {"model": snap.get("model"), "l4t": snap.get("l4t"),
                    "jetpack": snap.get("jetpack"), "nvpmodel_mode": snap.get("nvpmodel_mode"),
                    "jetson_clocks_pinned": snap.get("jetson_clocks_pinned"),
                    "is_jetson": snap.get("is_jetson")}
    root = runs_root(root)
    probe = root if os.path.isdir(root) else os.path.expanduser("~")
    usage = shutil.disk_usage(probe)
    out["disk_free_bytes"] = usage.free
    out["runs_root"] = root
    return out


# -- lock (one sweep per board) -------------------------------------------------------------------
def lock(owner, root=None, host=None, pid=None, steal_stale_s=None):
    """Take the board for sweep `owner`; returns the lock record. Re-taking one's own lock
    refreshes it; another owner's lock is stolen only when older than `steal_stale_s`."""
    root = runs_root(root)
    if not owner:
        raise EbedgeError("a lock needs an owner id")
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, LOCK_DIR)
    record = {"owner": owner, "host": host, "pid": pid, "time": time.time()}
    try:
        os.mkdir(path)
    except FileExistsError:
        held = _read_json(os.path.join(path, "owner.json")) or {"time": os.path.getmtime(path)}
        age = time.time() - float(held.get("time") or 0)
        if held.get("owner") != owner and (steal_stale_s is None or age < steal_stale_s):
            raise EbedgeError("board is locked by %s (host %s, pid %s) since %.0f s ago; "
                              "use --steal-stale SECONDS if that sweep crashed"
                              % (held.get("owner"), held.get("host"), held.get("pid"), age))
        record["stolen_from"] = held if held.get("owner") != owner else None
    _write_json(os.path.join(path, "owner.json"), record)
    return record


def lock_holder(root=None):
    return _read_json(os.path.join(runs_root(root), LOCK_DIR, "owner.json"))


def unlock(owner, root=None, force=False):
    """Release the lock if `owner` holds it (or with `force`); True when a lock was removed."""
    path = os.path.join(runs_root(root), LOCK_DIR)
    held = _read_json(os.path.join(path, "owner.json")) or {}
    if not os.path.isdir(path):
        return False
    if held.get("owner") != owner and not force:
        raise EbedgeError("board is locked by %s, not %s" % (held.get("owner"), owner))
    shutil.rmtree(path, ignore_errors=True)
    return True
