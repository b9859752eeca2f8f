"""One board seen from the laptop: the agent's commands over one ssh connection.

The laptop talks to the board only through the `ebedge` command there (`ebedge agent ...`, JSON
out) and the run-directory contract, never through Python internals, so a board may run another
ebedge version.
"""
import json
import posixpath
import subprocess

from ebedge.agent import AGENT_DIR, REQUIRED, STATE_MARK
from ebedge.config.settings import explicit
from ebedge.errors import EbedgeError
from ebedge.remote.ssh import Connection, ConnectionLost, SshError
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
                self.host, args[0], rc, lines[-1] if lines else "no output"))
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise SshError("%s: ebedge agent %s answered %r, not JSON (is %s an ebedge?)"
                           % (self.host, args[0], out[-200:], self.remote_ebedge))

    def start(self, settings, run_id, if_exists="refuse", sweep=None):
        args = ["start", "--settings", "-", "--out", check_run_id(run_id), "--if-exists", if_exists]
        return self.agent(args + (["--sweep", sweep] if sweep else []),
                          input_text=json.dumps(explicit(settings), sort_keys=True))

    def status(self, run_id=None):
        """One run's state (a dict), or every run's (a list); shapes checked, ids not (the
        caller checks each id it uses)."""
        answer = self.agent(["status"] + ([check_run_id(run_id)] if run_id else []))
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
        return self.agent(args)

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

    def watch(self, run_id, on_line, log_from=0):
        """Stream the run's log lines to `on_line` until it ends; its final state.

        ConnectionLost when the channel drops first (the run itself goes on on the board); its
        `log_offset` says where to go on from."""
        proc = self.conn.popen(self._argv(["watch", check_run_id(run_id), "--log-from",
                                           str(log_from)]),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=1)
        final = None
        offset = log_from
        for line in proc.stdout:
            if line.startswith(STATE_MARK):
                try:
                    final = json.loads(line[len(STATE_MARK):])
                except ValueError:
                    final = None
            else:
                offset += len(line.encode("utf-8"))
                on_line(line.rstrip("\n"))
        err = proc.stderr.read()
        proc.wait()
        if not isinstance(final, dict) or "state" not in final:
            lost = ConnectionLost("connection to %s lost while watching run %s (%s); the run goes "
                                  "on on the board: `ebedge remote collect %s %s` fetches it later"
                                  % (self.host, run_id,
                                     (err.strip().splitlines() or ["no reason"])[-1],
                                     self.host, run_id))
            lost.log_offset = offset
            raise lost
        return final

    def pull(self, run_id, local_dir, remote_out=None, max_file_bytes=None):
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
                              max_file_bytes=max_file_bytes)
