"""Runs on the board: start one detached (or adopt and resume it), read its state, list, stop
and watch runs. A run is live exactly while its process holds the runs root's run lock."""
import json
import os
import signal
import subprocess
import sys
import time

from ebedge.agent import layout
from ebedge.agent.layout import AGENT_DIR, read_json, runs_root, write_json
from ebedge.agent.protocol import STATE_MARK
from ebedge.agent.reservations import check_reservation
from ebedge.errors import EbedgeError
from ebedge.run import runlock
from ebedge.run.runid import check_run_id, is_run_id

# the detached command: ebedge's CLI under this very interpreter (not `-m ebedge.cli`, which
# would import the CLI module twice), holding the run lock the agent handed over
_ENTRY = ("import sys; from ebedge.run.runlock import adopt_inherited; adopt_inherited(); "
          "from ebedge.cli import main; sys.argv[0] = 'ebedge'; main()")


def start(settings_text, run_id, root=None, suite=None, if_exists="refuse", python=None,
          sweep=None):
    """Start a run detached; returns {"run_id", "out", "log", "pid", "adopted", "resumed"}.

    `settings_text`: the settings JSON (ignored with `suite`, a suite file on the board).
    `if_exists`: "refuse" an existing run, or "adopt" it: a live or complete run is reported as
    is, a killed/failed/interrupted one is resumed (never deleted). `sweep`: the sweep id this
    start belongs to (a board reserved by another sweep refuses).
    Refused (RunBusy) while another run is live on the board.
    """
    root = runs_root(root)
    run_id = check_run_id(run_id)
    os.makedirs(root, exist_ok=True)
    check_reservation(root, sweep)
    out = os.path.join(root, run_id)
    agent_dir = layout.agent_dir(root, run_id)
    try:
        lock = runlock.acquire(root, run_id)
    except runlock.RunBusy as busy:
        if if_exists == "adopt" and busy.record.get("run_id") == run_id:
            return dict(run_state(root, run_id), adopted=True, resumed=False,
                        log=os.path.join(agent_dir, "log.txt"))
        raise
    try:
        resumed = False
        if os.path.exists(out) or os.path.exists(agent_dir):
            if if_exists != "adopt":
                raise EbedgeError("run %s already exists on this board (%s); choose another name"
                                  " (it is kept for `ebedge remote collect`)" % (run_id, out))
            state = _file_state(root, run_id)
            if state["state"] == "complete":
                lock.release()
                return dict(state, adopted=True, resumed=False,
                            log=os.path.join(agent_dir, "log.txt"))
            argv = _resume_argv(root, run_id, state, settings_text, python)
            resumed = True
        else:
            settings = None if suite else _parse_settings(settings_text)
            os.makedirs(agent_dir)
            argv = _fresh_argv(agent_dir, out, settings, suite, python)
        proc = _spawn(argv, agent_dir, lock)
    except BaseException:
        lock.release()
        raise
    try:
        lock.update(pid=proc.pid)
        record = read_json(os.path.join(agent_dir, "pid.json")) or {}
        starts = record.get("starts", []) + [{"pid": proc.pid, "wall": time.time(), "argv": argv}]
        write_json(os.path.join(agent_dir, "pid.json"), {
            "run_id": run_id, "out": out, "log": os.path.join(agent_dir, "log.txt"),
            "pid": proc.pid, "argv": argv, "suite": suite or record.get("suite"),
            "started_wall": time.time(), "starts": starts})
    finally:
        lock.hand_over()  # the run's process holds the lock from here on, until it exits
    return {"run_id": run_id, "out": out, "log": os.path.join(agent_dir, "log.txt"),
            "pid": proc.pid, "adopted": resumed, "resumed": resumed, "state": "running"}


def _fresh_argv(agent_dir, out, settings, suite, python):
    python = python or sys.executable
    if suite:
        return [python, "-c", _ENTRY, "bench", suite, "--out", out, "--quiet"]
    settings_path = os.path.join(agent_dir, "settings.json")
    write_json(settings_path, settings)
    # not --quiet: the log (no tty, so no progress bars) gets a line per epoch with its ETA,
    # which `ebedge remote run`/`watch` stream to the laptop
    return [python, "-c", _ENTRY, "train", "--settings", settings_path, "--out", out]


def _parse_settings(text):
    try:
        settings = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise EbedgeError("settings are not JSON: %s" % exc)
    if not isinstance(settings, dict):
        raise EbedgeError("settings must be a JSON object")
    return settings


def _resume_argv(root, run_id, state, settings_text, python):
    """How to continue an unfinished run without losing anything it wrote."""
    out = os.path.join(root, run_id)
    record = read_json(os.path.join(layout.agent_dir(root, run_id), "pid.json")) or {}
    if record.get("suite"):
        return record["argv"]  # the suite runner skips complete cells and resumes the others
    config = read_json(os.path.join(out, "config.json"))
    if not isinstance(config, dict) or not isinstance(config.get("settings"), dict):
        raise EbedgeError("run %s %s before it wrote config.json (%s); nothing to resume, and it "
                          "is kept for collection: choose another name"
                          % (run_id, state["state"], state.get("error") or "no reason recorded"))
    if settings_text is not None:
        from ebedge.config.settings import config_hash, resolve
        wanted = config_hash(resolve(_parse_settings(settings_text)))
        if config.get("config_hash") and wanted != config["config_hash"]:
            raise EbedgeError("run %s exists on this board with other settings (config_hash %s, "
                              "asked %s); choose another name" % (run_id, config["config_hash"],
                                                                 wanted))
    return [python or sys.executable, "-c", _ENTRY, "train", "--resume", out]


def _spawn(argv, agent_dir, lock):
    env = dict(os.environ)
    env.update(lock.child_env())
    log_path = os.path.join(agent_dir, "log.txt")
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        return subprocess.Popen(argv, stdin=devnull, stdout=log, stderr=subprocess.STDOUT,
                                cwd=agent_dir, close_fds=True, pass_fds=(lock.fd,), env=env,
                                start_new_session=True)


def run_state(root, run_id):
    """{"run_id", "state", "status", "pid", "heartbeat_age_s", "error", "out"} for one run.

    state: running (its process holds the board's run lock), complete, interrupted, failed,
    killed (ended without a final status), finished (a suite), unknown (no such run).
    """
    held = runlock.holder(root)
    if held is not None and held.get("run_id") == run_id:
        state = _file_state(root, run_id)
        state.update(state="running", pid=held.get("pid"), error=None)
        return state
    return _file_state(root, run_id)


def _file_state(root, run_id):
    """The state of a run that is not live, from its files."""
    out = os.path.join(root, run_id)
    record = read_json(os.path.join(layout.agent_dir(root, run_id), "pid.json")) or {}
    summary = read_json(os.path.join(out, "summary.json")) or {}
    status = summary.get("status") if isinstance(summary, dict) else None
    status = status if isinstance(status, str) else None
    beat = os.path.join(out, "heartbeat")
    age = time.time() - os.path.getmtime(beat) if os.path.exists(beat) else None
    error = None
    if record.get("suite"):
        state = "finished"
    elif status and status != "running":
        state = "failed" if status.startswith("failed") else status
        error = status[len("failed: "):] if state == "failed" else None
    elif status == "running":
        state = "killed"
    elif record or os.path.exists(os.path.join(out, "config.json")):
        state, error = "failed", _log_tail(root, run_id) or "exited before writing a summary"
    else:
        state = "unknown"
    return {"run_id": run_id, "state": state, "status": status, "pid": None,
            "heartbeat_age_s": age, "error": error, "out": out}


def _log_tail(root, run_id):
    path = os.path.join(layout.agent_dir(root, run_id), "log.txt")
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 2000))
            lines = [l for l in f.read().decode("utf-8", "replace").splitlines() if l.strip()]
    except (IOError, OSError):
        return None
    return lines[-1].strip() if lines else None


def list_runs(root=None):
    """run_state of every run under the root, oldest first. A folder that is no run (no
    config.json and unknown to the agent, e.g. lost+found) or has no valid run id is left out."""
    root = runs_root(root)
    if not os.path.isdir(root):
        return []
    agent = os.path.join(root, AGENT_DIR)
    known = set(os.listdir(agent)) if os.path.isdir(agent) else set()
    ids = set(n for n in os.listdir(root) if not n.startswith(".")
              and os.path.isfile(os.path.join(root, n, "config.json")))
    ids.update(known)
    return [run_state(root, r) for r in sorted((i for i in ids if is_run_id(i)),
                                               key=lambda r: _mtime(root, r))]


def _mtime(root, run_id):
    for path in (layout.agent_dir(root, run_id), os.path.join(root, run_id)):
        if os.path.exists(path):
            return os.path.getmtime(path)
    return 0.0


def stop(run_id, root=None, kill=False, grace_s=0.0, wait_s=10.0):
    """End a live run. SIGTERM: the runner stops cleanly with status `interrupted`. With `kill`:
    SIGKILL to its process group (a hung run), right away or after `grace_s` seconds of SIGTERM."""
    root = runs_root(root)
    run_id = check_run_id(run_id)
    held = runlock.holder(root)
    if held is None or held.get("run_id") != run_id or not held.get("pid"):
        raise EbedgeError("run %s is not running (state: %s)"
                          % (run_id, run_state(root, run_id)["state"]))
    pid = int(held["pid"])
    sent = []
    if not kill or grace_s > 0:
        _signal(pid, signal.SIGTERM, group=False)
        sent.append("SIGTERM")
        if kill and _wait_free(root, run_id, grace_s):
            kill = False
    if kill:
        _signal(pid, signal.SIGKILL, group=True)
        sent.append("SIGKILL")
        _wait_free(root, run_id, wait_s)
    state = run_state(root, run_id)
    state.update(signalled="+".join(sent), signalled_pid=pid)
    return state


def _signal(pid, signum, group):
    try:
        if group and os.getpgid(pid) == pid:  # a detached run leads its own session
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _wait_free(root, run_id, seconds):
    """True once no process holds `run_id` live (within `seconds`)."""
    deadline = time.monotonic() + seconds
    while True:
        held = runlock.holder(root)
        if held is None or held.get("run_id") != run_id:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def watch(run_id, root=None, log_from=0, poll_s=0.5, out=None):
    """Print the run's log as it grows, then one STATE_MARK line with its final state."""
    root = runs_root(root)
    run_id = check_run_id(run_id)
    out = out or sys.stdout
    path = os.path.join(layout.agent_dir(root, run_id), "log.txt")
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
        if state["state"] != "running":
            state["log_offset"] = offset
            out.write(("" if ended_with_newline else "\n") + STATE_MARK
                      + json.dumps(state, sort_keys=True) + "\n")
            out.flush()
            return state
        time.sleep(poll_s)
