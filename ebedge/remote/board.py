"""One board seen from the laptop: the agent's commands over one ssh connection.

The laptop talks to the board only through the `ebedge` command there (`ebedge agent ...`, JSON
out) and the run-directory contract, never through Python internals, so a board may run another
ebedge version.
"""
import json
import posixpath
import subprocess

from ebedge.agent import AGENT_DIR, STATE_MARK
from ebedge.errors import EbedgeError
from ebedge.remote.ssh import Connection, ConnectionLost, SshError

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
        if rc != 0:
            lines = [l for l in (err or out).strip().splitlines() if l.strip()]
            raise SshError("%s: ebedge agent %s failed (exit %d): %s" % (
                self.host, args[0], rc, lines[-1] if lines else "no output"))
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise SshError("%s: ebedge agent %s answered %r, not JSON (is %s an ebedge?)"
                           % (self.host, args[0], out[-200:], self.remote_ebedge))

    def start(self, settings, run_id, if_exists="refuse"):
        return self.agent(["start", "--settings", "-", "--out", run_id, "--if-exists", if_exists],
                          input_text=json.dumps(settings, sort_keys=True))

    def status(self, run_id=None):
        return self.agent(["status"] + ([run_id] if run_id else []))

    def stop(self, run_id):
        return self.agent(["stop", run_id])

    def info(self):
        return self.agent(["info"], timeout=120)

    def watch(self, run_id, on_line, log_from=0):
        """Stream the run's log lines to `on_line` until it ends; its final state.

        ConnectionLost when the channel drops first (the run itself goes on on the board)."""
        proc = self.conn.popen(self._argv(["watch", run_id, "--log-from", str(log_from)]),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=1)
        final = None
        for line in proc.stdout:
            if line.startswith(STATE_MARK):
                final = json.loads(line[len(STATE_MARK):])
            else:
                on_line(line.rstrip("\n"))
        err = proc.stderr.read()
        proc.wait()
        if final is None:
            raise ConnectionLost("connection to %s lost while watching run %s (%s); the run goes "
                                 "on on the board: `ebedge remote collect %s %s` fetches it later"
                                 % (self.host, run_id, (err.strip().splitlines() or ["no reason"])[-1],
                                    self.host, run_id))
        return final

    def run_dir(self, run_id):
        """Absolute remote run directory and the agent's log of it."""
        out = self.status(run_id)["out"]
        return out, posixpath.join(posixpath.dirname(out), AGENT_DIR, run_id, "log.txt")

    def pull(self, run_id, local_dir, remote_out=None):
        """Copy the run directory (and its log) into local_dir; rerunnable, only what changed."""
        if remote_out is None:
            remote_out, log = self.run_dir(run_id)
        else:
            log = posixpath.join(posixpath.dirname(remote_out), AGENT_DIR, run_id, "log.txt")
        if not remote_out:
            raise EbedgeError("%s has no run %s" % (self.host, run_id))
        self.conn.pull(remote_out, local_dir, extra_files=[log])
