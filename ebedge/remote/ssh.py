"""The transport: the system OpenSSH client, so ~/.ssh/config (aliases, keys, agent, ProxyJump,
ports, host-key policy) works as the user set it up.

One `Connection` per board multiplexes every command over one ControlMaster whose socket lives
in a private temporary directory and persists only briefly after the last use. Remote commands
are always built from argument lists, each argument quoted for the remote shell; a user's string
never becomes shell syntax on the board. Host keys are checked as the user's config says; a key
mismatch is refused with a message that says so, and a host-key *type* the two sides cannot agree
on is reported as that (an old board's ssh-rsa key), not as a possible attack.

Files come back by rsync without links, devices or special files (`pull`), or by scp in SFTP mode
where remote names are never parsed by the board's shell; both reach the board through relay.py,
which ends a copy over its byte limit or silent for the stall timeout; what arrives is checked by
the caller. Command answers are read within remote.bounded's limits.
"""
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile

from ebedge.errors import EbedgeError
from ebedge.remote import bounded, relay, tree

CONTROL_PERSIST_S = 30
CONNECT_TIMEOUT_S = 15
SSH_FAILED = 255  # ssh's own exit status for connection-level failures
LINE_SHOWN = 300  # of a line of the board's stderr quoted in an error
PROTOCOL_BYTES = 2 ** 20  # what rsync or sftp adds to the bytes of the files (lists, headers)

_HOST_KEY_SIGNS = ("REMOTE HOST IDENTIFICATION HAS CHANGED", "Host key verification failed",
                   "host key for .* has changed")
_NEGOTIATION = re.compile(r"no matching (host key type|key exchange method|cipher|MAC) found\.?"
                          r"\s*Their offer:\s*(\S+)", re.IGNORECASE)


class SshError(EbedgeError):
    """ssh could not reach the board or the remote command failed; the message says which."""


class NegotiationError(SshError):
    """The client and the board share no host-key type, key exchange or cipher."""


class HostKeyError(SshError):
    """The board's host key is unknown or does not match known_hosts: refused, never bypassed."""


class Unreachable(SshError):
    """ssh could not connect to the board at all."""


class _NoRsync(Exception):
    """The board has no rsync: fall back to scp."""


class ConnectionLost(SshError):
    """The connection dropped while a command was running (the board side may go on)."""


def remote_arg(arg):
    """One argument quoted for the remote POSIX shell; a leading `~/` still means the home dir."""
    arg = str(arg)
    if arg == "~":
        return '"$HOME"'
    if arg.startswith("~/"):
        return '"$HOME"/' + shlex.quote(arg[2:])
    return shlex.quote(arg)


def remote_command(argv):
    """The single command string ssh sends: every argument quoted, none interpreted."""
    if not argv:
        raise ValueError("empty remote command")
    return " ".join(remote_arg(a) for a in argv)


def check_host_key(host, stderr):
    """Raise NegotiationError when the two sides share no algorithm, HostKeyError when ssh's
    stderr says the host key itself was refused."""
    found = _NEGOTIATION.search(stderr or "")
    if found:
        what, offer = found.group(1), found.group(2).strip()
        hint = {"host key type": "HostKeyAlgorithms +%s" % offer.split(",")[0],
                "key exchange method": "KexAlgorithms +%s" % offer.split(",")[0],
                "cipher": "Ciphers +%s" % offer.split(",")[0],
                "MAC": "MACs +%s" % offer.split(",")[0]}[what]
        raise NegotiationError(
            "cannot connect to %s: no %s both sides accept (the board offers %s); this is a "
            "configuration mismatch, not a changed key: if you trust that, add `%s` to its "
            "Host entry in your ssh config" % (host, what, offer, hint))
    for sign in _HOST_KEY_SIGNS:
        if re.search(sign, stderr or "", re.IGNORECASE):
            raise HostKeyError(
                "refusing %s: its host key does not match your known_hosts (or is unknown) - "
                "possible man-in-the-middle, or the board was reinstalled; check the key and "
                "update known_hosts yourself (ssh-keygen -R %s). ssh said: %s"
                % (host, host, _last_line(stderr)))


def _last_line(text):
    lines = [l for l in (text or "").strip().splitlines() if l.strip() and not l.startswith("@")]
    return lines[-1].strip()[:LINE_SHOWN] if lines else "(nothing)"


class Connection(object):
    """ssh to one host alias through a private ControlMaster; use as a context manager."""

    def __init__(self, host, ssh_config=None, extra_options=()):
        if not host or host.startswith("-"):
            raise EbedgeError("bad host %r: give an ssh host or alias" % (host,))
        self.host = host
        self.ssh_config = os.path.abspath(ssh_config) if ssh_config else None
        self.extra_options = list(extra_options)
        self._control_dir = tempfile.mkdtemp(prefix="ebedge-ssh-")
        os.chmod(self._control_dir, 0o700)
        # one master per private directory, so a one-letter name: a socket path has room for
        # about 100 bytes (ssh binds NAME.<16 random chars> first), and `%C` (40) with a long
        # TMPDIR (macOS's /var/folders/..., a nested test tree) overflowed it
        self.control_path = os.path.join(self._control_dir, "m")

    # -- argument lists ----------------------------------------------------------------------
    def ssh_options(self):
        """Options shared by ssh, rsync's -e and scp (everything but the host)."""
        opts = []
        if self.ssh_config:
            opts += ["-F", self.ssh_config]
        opts += ["-o", "ControlMaster=auto", "-o", "ControlPath=%s" % self.control_path,
                 "-o", "ControlPersist=%d" % CONTROL_PERSIST_S,
                 "-o", "ConnectTimeout=%d" % CONNECT_TIMEOUT_S,
                 "-o", "BatchMode=yes", "-o", "ServerAliveInterval=5",
                 "-o", "ServerAliveCountMax=3"]
        return opts + self.extra_options

    def ssh_argv(self, argv):
        return ["ssh"] + self.ssh_options() + ["-T", self.host, "--", remote_command(argv)]

    # -- running -----------------------------------------------------------------------------
    def run(self, argv, input_text=None, timeout=None, check=True, limit=bounded.ANSWER_BYTES):
        """Run `argv` on the board; (returncode, stdout, stderr), stdout at most `limit` bytes
        (bounded.TooLarge beyond) and decoded with replacement. SshError when ssh itself failed
        (or, with `check`, when the command exited non-zero)."""
        try:
            rc, out, err = bounded.communicate(
                self.ssh_argv(argv), None if input_text is None else input_text.encode("utf-8"),
                limit=limit, timeout=timeout, what="answer to %s" % argv[0])
        except subprocess.TimeoutExpired:
            raise SshError("%s: %s took longer than %ss" % (self.host, argv[0], timeout))
        out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        self._check(rc, err)
        if check and rc != 0:
            raise SshError("%s: `%s` failed (exit %d): %s" % (
                self.host, " ".join(argv[:3]), rc, _last_line(err)))
        return rc, out, err

    def popen(self, argv, **kwargs):
        """A running remote command (pipes as given in kwargs), for long-lived channels."""
        kwargs.setdefault("universal_newlines", True)
        return subprocess.Popen(self.ssh_argv(argv), **kwargs)

    def _check(self, returncode, stderr):
        if returncode == SSH_FAILED:
            if not (stderr or "").strip():
                stderr = self._diagnose()
            check_host_key(self.host, stderr)
            if _looks_like_ssh(stderr):
                raise Unreachable("cannot reach %s over ssh: %s" % (self.host, _last_line(stderr)))

    def _diagnose(self):
        """ssh's own reason for a silent failure (a config's LogLevel ERROR hides negotiation
        errors): one fresh connection attempt at LogLevel INFO, its stderr."""
        argv = (["ssh", "-o", "LogLevel=INFO", "-o", "ControlMaster=no", "-o", "ControlPath=none"]
                + self.ssh_options() + ["-T", self.host, "--", "true"])  # the first value wins
        try:
            done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  universal_newlines=True, timeout=CONNECT_TIMEOUT_S + 10)
        except subprocess.TimeoutExpired:
            return ""
        return done.stderr

    def connect(self):
        """Open (or reuse) the master connection; raises HostKeyError/SshError with ssh's reason."""
        self.run(["true"], timeout=CONNECT_TIMEOUT_S + 10)
        return self

    def master_pid(self):
        """pid of the local ControlMaster process, or None when none is running."""
        done = subprocess.run(["ssh"] + self.ssh_options() + ["-O", "check", self.host],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True)
        found = re.search(r"pid=(\d+)", done.stdout)
        return int(found.group(1)) if found and done.returncode == 0 else None

    def close(self):
        """Stop the master and remove the private control directory."""
        subprocess.run(["ssh"] + self.ssh_options() + ["-O", "exit", self.host],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self._control_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- files -------------------------------------------------------------------------------
    def pull(self, remote_dir, local_dir, extra_files=(), max_file_bytes=None, stall_s=None):
        """Copy remote_dir's contents (and, where they exist, `extra_files`: absolute remote
        paths) into local_dir.

        rsync takes regular files and directories only (links, devices and special files are
        skipped and returned as notes) and refuses a file over `max_file_bytes`; without rsync,
        scp in SFTP mode, into a fresh directory whose files are then renamed into local_dir (scp
        writes into an existing file in place: a hard-linked earlier copy would change). On both,
        the copy ends once the board sent over `max_file_bytes` (and protocol overhead) or
        nothing for `stall_s` seconds (relay.py). Local files the board does not have are kept.
        Returns [note]."""
        os.makedirs(local_dir, exist_ok=True)
        limit = (max_file_bytes if max_file_bytes is not None else 2 ** 62) + PROTOCOL_BYTES
        meter = self._relay(limit, stall_s if stall_s is not None else 1e7)
        if shutil.which("rsync"):
            options = ["--no-links", "--no-devices", "--no-specials", "--info=skip1",
                       "--whole-file"]  # whole files: what is written is what came over the wire
            if max_file_bytes is not None:
                options.append("--max-size=%d" % (max_file_bytes + 1))
            try:
                notes = self._rsync_from(options, remote_dir.rstrip("/") + "/", local_dir,
                                         max_file_bytes, meter)
                for path in extra_files:
                    notes += self._rsync_from(options, path, local_dir, max_file_bytes, meter,
                                              missing_ok=True)
                return notes
            except _NoRsync:
                pass
        fresh = tempfile.mkdtemp(prefix=".scp-", dir=os.path.dirname(os.path.abspath(local_dir)))
        try:
            self._scp(["-r", self._scp_remote(remote_dir.rstrip("/") + "/."), fresh], meter=meter)
            for path in extra_files:
                self._scp([self._scp_remote(path), fresh], missing_ok=True, meter=meter)
            _move_into(fresh, local_dir)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
        return []

    def _relay(self, limit, stall_s):
        """A one-line ssh for rsync's -e and scp's -S that meters what the board sends."""
        path = os.path.join(self._control_dir, "ssh-relay")
        with open(path, "w") as f:
            f.write("#!/bin/sh\nexec %s %s %d %r ssh \"$@\"\n"
                    % (shlex.quote(sys.executable), shlex.quote(relay.__file__), limit,
                       float(stall_s)))
        os.chmod(path, 0o700)
        return path

    def _rsync_from(self, options, source, local_dir, max_file_bytes, meter, missing_ok=False):
        rc, out, err = self._rsync(options + ["%s:%s" % (self.host, source),
                                              local_dir.rstrip("/") + "/"], meter)
        _check_relay(self.host, err)
        if rc == 23 and missing_ok and "No such file" in err:
            return []
        if rc in (12, 127) or "command not found" in err:
            check_host_key(self.host, err)
            raise _NoRsync()
        if rc != 0:
            check_host_key(self.host, err)
            raise SshError("rsync from %s failed (exit %d): %s" % (self.host, rc,
                                                                    _last_line(err)))
        over = [l[:-len(" is over max-size")] for l in out.splitlines()
                if l.endswith(" is over max-size")]
        if over:
            raise SshError("%s sent a file over the %d-byte limit: %s"
                           % (self.host, max_file_bytes, over[0]))
        return [l.strip() for l in out.splitlines() if l.startswith("skipping ")]

    def push(self, local_path, remote_path):
        """Copy one local file to the board."""
        if shutil.which("rsync"):
            rc, _, err = self._rsync([local_path, "%s:%s" % (self.host, remote_path)])
            if rc == 0:
                return
            check_host_key(self.host, err)
        self._scp([local_path, self._scp_remote(remote_path)])

    def _rsync(self, args, meter=None):
        shell = " ".join(shlex.quote(a) for a in [meter or "ssh"] + self.ssh_options())
        # --protect-args: remote paths travel as data, not through the board's shell
        argv = ["rsync", "-rt", "--protect-args", "-e", shell] + args
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, errors="replace")
        return done.returncode, done.stdout, done.stderr

    def _scp_remote(self, path):
        """`host:path` for scp: raw in SFTP mode; in the legacy protocol (an scp without -s, before
        OpenSSH 8.7) the board's shell parses it, so it is quoted for that shell."""
        return "%s:%s" % (self.host, path if scp_has_sftp() else shlex.quote(path))

    def _scp(self, args, missing_ok=False, meter=None):
        mode = ["-s"] if scp_has_sftp() else []
        program = ["-S", meter] if meter else []
        done = subprocess.run(["scp", "-q", "-p"] + mode + program + self.ssh_options() + args,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, errors="replace")
        _check_relay(self.host, done.stderr)
        if done.returncode != 0 and not (missing_ok and "No such file" in done.stderr):
            check_host_key(self.host, done.stderr)
            raise SshError("scp with %s failed: %s%s" % (
                self.host, _last_line(done.stderr),
                " (without rsync, files come by scp over SFTP: the board needs rsync or its "
                "sftp subsystem)" if mode else ""))


def _check_relay(host, stderr):
    """SshError when the relay ended the copy (over the byte limit, or stalled)."""
    for line in (stderr or "").splitlines():
        if line.startswith(relay.MARK):
            raise SshError("copy from %s ended: %s" % (host, line[len(relay.MARK):].strip()))


def _move_into(src, dst):
    """Rename every file of `src` over its place in `dst` (a rename replaces a name, never
    writes into the file it named), creating directories as needed."""
    for rel, info in tree.walk(src):
        target = os.path.join(dst, rel)
        if stat.S_ISDIR(info.st_mode):
            if os.path.lexists(target) and not os.path.isdir(target):
                os.unlink(target)
            os.makedirs(target, exist_ok=True)
        else:
            if os.path.isdir(target) and not os.path.islink(target):
                tree.remove(target)
            os.replace(os.path.join(src, rel), target)


def scp_has_sftp():
    """True when this machine's scp speaks SFTP (`scp -s`, OpenSSH 8.7 and later)."""
    done = subprocess.run(["ssh", "-V"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    found = re.search(r"OpenSSH_(\d+)\.(\d+)", done.stdout)
    return bool(found) and (int(found.group(1)), int(found.group(2))) >= (8, 7)


def _looks_like_ssh(stderr):
    """True when a 255 came from ssh itself rather than from the remote command."""
    text = stderr or ""
    return (not text.strip() or "ssh:" in text or "Connection" in text or "Permission denied"
            in text or "kex_exchange" in text or "mux_client" in text or "Could not resolve"
            in text)
