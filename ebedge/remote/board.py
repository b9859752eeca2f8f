"""One board seen from the laptop: the agent's commands over one ssh connection.

The laptop talks to the board only through the `ebedge` command there (`ebedge agent ...`, JSON
out) and the run-directory contract, never through Python internals, so a board may run another
ebedge version.
"""
import json
import posixpath
import subprocess
import threading

from ebedge.agent import AGENT_DIR, REQUIRED, STATE_MARK
from ebedge.config.settings import explicit
from ebedge.errors import EbedgeError
from ebedge.remote import bounded
from ebedge.remote.ssh import LINE_SHOWN, Connection, ConnectionLost, SshError
from ebedge.run.runid import check_run_id

NOT_FOUND = 127  # the board's shell: no such command
FIXES = {"torch": "install NVIDIA's torch wheel for the board's JetPack",
         "torchvision": "install torchvision built for that torch"}

DEFAULT_REMOTE_EBEDGE = "~/.ebedge/venv/bin/ebedge"


class Board(object):
    """`host` (an ssh alias), the ebedge command on it, and its runs root (None: the board's default)."""

    def __init__(self, host, ssh_config=None, remote_ebedge=None, root=None):
        self.host = host
        self.conn = Connection(host, ssh_config)
        self.remote_ebedge = remote_ebedge or DEFAULT_REMOTE_EBEDGE
        self.root = root

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _argv(self, args, root=True):
        argv = [self.remote_ebedge, "agent"] + list(args)
        if root and self.root:
            argv += ["--root", self.root]
        return argv

    def agent(self, args, input_text=None, timeout=300, root=True):
        """Run `ebedge agent ARGS` on the board; its JSON answer."""
        rc, out, err = self.conn.run(self._argv(args, root), input_text=input_text,
                                     timeout=timeout, check=False)
        if rc == NOT_FOUND:
            raise SshError("%s has no ebedge at %s: install it with `ebedge remote install %s` "
                           "(or give --remote-ebedge PATH)" % (self.host, self.remote_ebedge,
                                                               self.host))
        if rc != 0:
            lines = [l for l in (err or out).strip().splitlines() if l.strip()]
            raise SshError("%s: ebedge agent %s failed (exit %d): %s" % (
                self.host, args[0], rc, lines[-1][:LINE_SHOWN] if lines else "no output"))
        lines = out.strip().splitlines()
        if not lines:
            raise SshError("%s: ebedge agent %s answered nothing (is %s an ebedge?)"
                           % (self.host, args[0], self.remote_ebedge))
        try:
            return bounded.loads(lines[-1], "%s: the answer to ebedge agent %s"
                                 % (self.host, args[0]))
        except EbedgeError as exc:
            raise SshError("%s (is %s an ebedge?)" % (exc, self.remote_ebedge))

    def about(self, run_id, answer, command):
        """`answer` when it is an object about `run_id`; an answer about another run is refused."""
        if not isinstance(answer, dict):
            raise SshError("%s: ebedge agent %s answered something that is no run state"
                           % (self.host, command))
        if answer.get("run_id") != run_id:
            raise SshError("%s answered about run %s when asked about run %s; refused"
                           % (self.host, repr(answer.get("run_id"))[:80], run_id))
        return answer

    def start(self, settings, run_id, if_exists="refuse", sweep=None):
        args = ["start", "--settings", "-", "--out", check_run_id(run_id), "--if-exists", if_exists]
        return self.about(run_id, self.agent(args + (["--sweep", sweep] if sweep else []),
                                             input_text=json.dumps(explicit(settings), sort_keys=True)),
                          "start")

    def status(self, run_id=None):
        """One run's state (a dict, refused unless it is about `run_id`), or every run's (a
        list); shapes checked, listed ids not (the caller checks each id it uses)."""
        answer = self.agent(["status"] + ([check_run_id(run_id)] if run_id else []))
        if run_id:
            self.about(run_id, answer, "status")
        rows = [answer] if run_id else answer
        if not isinstance(rows, list) or not all(isinstance(r, dict) and "run_id" in r
                                                 and "state" in r for r in rows):
            raise SshError("%s: ebedge agent status answered something that is no run list"
                           % self.host)
        return answer

    def stop(self, run_id, kill=False, grace_s=0.0):
        args = ["stop", check_run_id(run_id)]
        if kill:
            args += ["--kill", "--grace", repr(float(grace_s))]
        return self.about(run_id, self.agent(args), "stop")

    def unlock(self):
        """Remove the board's sweep reservation, whoever holds it; the record removed (or None)."""
        return self.agent(["unlock", "--force"])["released"]

    def require_ready(self):
        """Connect and check that the board can run ebedge; EbedgeError naming what is missing
        and how to fix it."""
        self.conn.connect()
        try:
            missing = self.agent(["check"], timeout=180, root=False).get("missing") or {}
        except SshError as exc:
            if "No such command" not in str(exc):
                raise
            info = self.info()  # an older ebedge on the board: its info says as much
            missing = {m: info.get(m + "_error") or "missing" for m in ("torch", "torchvision")
                       if not info.get(m)}
        if missing:
            needed = [m for m in REQUIRED + ("meters",) if m in missing] or sorted(missing)
            first = needed[0]
            raise EbedgeError("%s cannot run ebedge: %s (%s); %s, then `ebedge remote install %s`"
                              " and `ebedge remote doctor %s`"
                              % (self.host, ", ".join(needed), missing[first][:160],
                                 FIXES.get(first, "bring the missing packages over"),
                                 self.host, self.host))

    def info(self):
        return self.agent(["info"], timeout=120)

    def watch(self, run_id, on_line, log_from=0, stall_s=None):
        """Stream the run's log lines to `on_line` (each cut at bounded.LINE_BYTES) until it
        ends; its final state.

        ConnectionLost when the channel drops first (the run itself goes on on the board); its
        `log_offset` says where to go on from. bounded.Stalled when the board sends nothing for
        `stall_s` seconds (the run is left as it is)."""
        proc = self.conn.popen(self._argv(["watch", check_run_id(run_id), "--log-from",
                                           str(log_from)]), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=False, bufsize=0)
        err = _Tail(proc.stderr)
        reader = bounded.LineReader(proc.stdout)
        final = None
        marks = 0  # bytes of state lines, which are no part of the log
        try:
            while True:
                before = reader.consumed
                line = reader.readline(stall_s)
                if line is None:
                    break
                if line.startswith(STATE_MARK):
                    marks += reader.consumed - before
                    final = _final_state(line[len(STATE_MARK):])
                else:
                    on_line(line.rstrip("\n"))
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            err.join()
            proc.stdout.close()
        if final is not None:
            return self.about(run_id, final, "watch")
        lost = ConnectionLost("connection to %s lost while watching run %s (%s); the run goes "
                              "on on the board: `ebedge remote collect %s %s` fetches it later"
                              % (self.host, run_id, err.last_line(), self.host, run_id))
        lost.log_offset = log_from + reader.consumed - marks
        raise lost

    def pull(self, run_id, local_dir, remote_out=None, max_file_bytes=None, stall_s=None):
        """Copy the run directory (and its log) into local_dir; rerunnable, only what changed.
        Returns notes on what was skipped (links, special files)."""
        check_run_id(run_id)
        if remote_out is None:
            remote_out = self.status(run_id)["out"]
        if not isinstance(remote_out, str) or not posixpath.isabs(remote_out):
            raise SshError("%s: run %s has no usable directory (%r)" % (self.host, run_id,
                                                                       remote_out))
        log = posixpath.join(posixpath.dirname(remote_out), AGENT_DIR, run_id, "log.txt")
        return self.conn.pull(remote_out, local_dir, extra_files=[log],
                              max_file_bytes=max_file_bytes, stall_s=stall_s)


def _final_state(text):
    """The state a watch ends with, or None when it is no state object."""
    try:
        final = bounded.loads(text, "the final state")
    except EbedgeError:
        return None
    return final if isinstance(final, dict) and "state" in final else None


class _Tail(object):
    """Drains a stream in a thread, keeping only its last bounded.ERROR_BYTES."""

    def __init__(self, stream):
        self.data = b""
        self._stream = stream
        self._thread = threading.Thread(target=self._drain, name="stderr-tail")
        self._thread.daemon = True
        self._thread.start()

    def _drain(self):
        while True:
            chunk = self._stream.read(bounded.CHUNK)
            if not chunk:
                return
            self.data = (self.data + chunk)[-bounded.ERROR_BYTES:]

    def join(self):
        self._thread.join(timeout=5)

    def last_line(self):
        lines = [l for l in self.data.decode("utf-8", "replace").splitlines() if l.strip()]
        return lines[-1][:LINE_SHOWN] if lines else "no reason"
