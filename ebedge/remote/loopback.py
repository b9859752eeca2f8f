"""A board lab on this machine: real OpenSSH servers on 127.0.0.1 playing boards, for tests and benchmarks.

The remote code is only trusted as far as it has met a real sshd, so the remote tests, the fault
campaign (benchmarks/bench_faults.py) and the overhead benchmark all drive the real `ebedge remote`
CLI against these. Each `LoopbackBoard` is an sshd on a free port with a throwaway host key, one
client key in authorized_keys, and `SetEnv` lines (e.g. EBEDGE_CLOCK_SHIFT_S=7 shifts every
wall-clock stamp the board's ebedge writes); `write_ssh_config` names the boards as host aliases
with StrictHostKeyChecking yes and a known_hosts file holding their real keys. `Lab` bundles both
with the CLI; `hostile_ebedge` makes a board whose ebedge lies. Host side; needs the
`openssh-server` package (/usr/sbin/sshd) and ssh-keygen.
"""
import getpass
import os
import socket
import stat
import subprocess
import sys
import time

from ebedge.errors import EbedgeError

SSHD = "/usr/sbin/sshd"
EBEDGE = os.path.join(os.path.dirname(sys.executable), "ebedge")


class SshdMissing(EbedgeError):
    """No sshd on this machine, so no loopback board can start."""


def sshd_available():
    return os.access(SSHD, os.X_OK)


def sshd_missing():
    """Why no loopback board can start here (for a skip reason or an error)."""
    return "%s is missing (Debian/Ubuntu package openssh-server)" % SSHD


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def keygen(path):
    """A fresh ed25519 key pair at `path`; its public line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True,
                   stdout=subprocess.DEVNULL)
    with open(path + ".pub") as f:
        return f.read().strip()


class LoopbackBoard(object):
    """One sshd on 127.0.0.1 under `workdir/alias`, accepting `client_pub`; `start()` it, `stop()` it."""

    def __init__(self, workdir, alias, client_pub, env=None):
        self.alias = alias
        self.dir = os.path.join(workdir, alias)
        os.makedirs(self.dir)
        self.host_pub = keygen(os.path.join(self.dir, "host_key"))
        self.port = free_port()
        self.runs_root = os.path.join(self.dir, "runs")
        with open(os.path.join(self.dir, "authorized_keys"), "w") as f:
            f.write(client_pub + "\n")
        lines = ["Port %d" % self.port, "ListenAddress 127.0.0.1",
                 "HostKey %s" % os.path.join(self.dir, "host_key"),
                 "AuthorizedKeysFile %s" % os.path.join(self.dir, "authorized_keys"),
                 "PidFile %s" % os.path.join(self.dir, "sshd.pid"),
                 "StrictModes no", "UsePAM no", "PermitRootLogin yes",
                 "PasswordAuthentication no", "KbdInteractiveAuthentication no",
                 "MaxSessions 64", "MaxStartups 64", "LogLevel ERROR",
                 "Subsystem sftp internal-sftp"]  # as in a stock sshd_config (scp's SFTP mode)
        if env:
            lines.append("SetEnv " + " ".join("%s=%s" % kv for kv in sorted(env.items())))
        self.config = os.path.join(self.dir, "sshd_config")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None

    def start(self):
        if not sshd_available():
            raise SshdMissing("cannot start a loopback board: " + sshd_missing())
        if not os.path.isdir("/run/sshd"):
            os.makedirs("/run/sshd", mode=0o755)
        self.log = open(os.path.join(self.dir, "sshd.log"), "w")
        self.proc = subprocess.Popen([SSHD, "-D", "-f", self.config, "-e"], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("sshd exited: %s" % open(self.log.name).read())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not listen on port %d" % self.port)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.log.close()

    def known_hosts_line(self):
        return "[127.0.0.1]:%d %s" % (self.port, " ".join(self.host_pub.split()[:2]))


def write_ssh_config(path, boards, identity, known_hosts, extra_aliases=()):
    """ssh config naming every board; `extra_aliases`: (alias, board, known_hosts file)."""
    with open(known_hosts, "w") as f:
        f.write("".join(b.known_hosts_line() + "\n" for b in boards))
    entries = [(b.alias, b, known_hosts) for b in boards] + list(extra_aliases)
    with open(path, "w") as f:
        for alias, board, kh in entries:
            f.write("Host %s\n  HostName 127.0.0.1\n  Port %d\n  User %s\n  IdentityFile %s\n"
                    "  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n"
                    "  LogLevel ERROR\n\n" % (alias, board.port, getpass.getuser(), identity, kh))
    return path


_LIAR = """#!%(python)s
import json, os, sys, time
args = sys.argv[1:]
if "--root" in args:
    del args[args.index("--root"):args.index("--root") + 2]
def say(obj):
    sys.stdout.write(json.dumps(obj) + "\\n")
    sys.stdout.flush()
    sys.exit(0)
%(code)s
os.execv(%(real)r, [%(real)r] + sys.argv[1:])
"""


def lying_ebedge(path, code):
    """An ebedge for the board that runs `code` first (Python, with `args` = the arguments less
    --root, and say(obj) to answer JSON and exit); whatever it does not answer goes to the real
    ebedge. A board that lies in any command, as the laptop sees it."""
    with open(path, "w") as f:
        f.write(_LIAR % {"python": sys.executable, "code": code, "real": EBEDGE})
    os.chmod(path, 0o755)
    return path


_RUNNER = """
outs = %r
if args[:2] == ["agent", "check"]:
    say({"missing": {}})
if args[:2] == ["agent", "start"]:
    rid = args[args.index("--out") + 1]
    say({"run_id": rid, "out": outs[rid], "pid": 4242, "log": "", "adopted": False})
if args[:2] == ["agent", "status"] and len(args) > 2:
    say({"run_id": args[2], "state": "complete", "out": outs.get(args[2])})
%s
if args[:2] == ["agent", "watch"]:
    rid = args[2]
%s
    sys.stdout.write("@@ebedge-state " + json.dumps({"run_id": rid, "state": "complete"}) + "\\n")
    sys.exit(0)
"""


def runner_ebedge(path, outs, watch="", extra=""):
    """A board ebedge that `starts` runs at once (their directories: `outs`, run id -> path),
    whose `watch` runs `watch` (Python, `rid` set) before ending the run complete, after `extra`
    (Python, any command)."""
    return lying_ebedge(path, _RUNNER % (outs, extra, "\n".join(
        "    " + l for l in (watch or "pass").splitlines())))


_HOSTILE = """#!%(python)s
import json, os, sys
args = sys.argv[1:]
if args[:2] == ["agent", "status"]:
    with open(%(answers)r) as f:
        runs = json.load(f)
    rest = args[2:]
    if "--root" in rest:
        del rest[rest.index("--root"):rest.index("--root") + 2]
    if rest:
        found = [r for r in runs if r.get("run_id") == rest[0]]
        print(json.dumps(found[0] if found else {"run_id": rest[0], "state": "unknown",
                                                 "out": None}))
    else:
        print(json.dumps(runs))
    sys.exit(0)
os.execv(%(real)r, [%(real)r] + args)
"""


def hostile_ebedge(path, answers_path):
    """An ebedge for the board whose `agent status` answers what `answers_path` holds (a JSON
    list the caller controls) and that passes every other command to the real ebedge: a
    compromised or broken board, as the laptop sees it."""
    with open(path, "w") as f:
        f.write(_HOSTILE % {"python": sys.executable, "answers": answers_path, "real": EBEDGE})
    os.chmod(path, 0o755)
    return path


class Lab(object):
    """Boards behind real sshd on loopback, and the `ebedge remote` CLI pointed at them."""

    def __init__(self, work, aliases=("board1",), env=None):
        self.work = work
        os.makedirs(work, exist_ok=True)
        self.identity = os.path.join(work, "id")
        pub = keygen(self.identity)
        self.boards = {a: LoopbackBoard(work, a, pub, env).start() for a in aliases}
        self.known_hosts = os.path.join(work, "known_hosts")
        self.config = write_ssh_config(os.path.join(work, "ssh_config"),
                                       list(self.boards.values()), self.identity,
                                       self.known_hosts)
        self.results = os.path.join(work, "results")

    def root(self, alias="board1"):
        return self.boards[alias].runs_root

    def remote(self, command, host, *args, **kwargs):
        """`ebedge remote COMMAND HOST ...` with this lab's ssh config and the board's root
        (`wrap`: a command line put in front, e.g. one that measures it)."""
        remote_ebedge = kwargs.pop("remote_ebedge", EBEDGE)
        argv = list(kwargs.pop("wrap", ())) + [
            EBEDGE, "remote", command, host, "--ssh-config", self.config,
            "--remote-ebedge", remote_ebedge, "--root", self.root(host)] + list(args)
        kwargs.setdefault("timeout", 240)
        kwargs.setdefault("cwd", self.work)
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, **kwargs)

    def remote_peak(self, command, host, *args, **kwargs):
        """`remote(...)` under a wrapper; (CompletedProcess, peak RSS in MB of the largest of
        its processes: the CLI, or ssh/rsync below it)."""
        report = os.path.join(self.work, "peak-%d" % os.getpid())
        wrapper = ("import resource, subprocess, sys\nrc = subprocess.call(sys.argv[2:])\n"
                   "open(sys.argv[1], 'w').write(str(resource.getrusage("
                   "resource.RUSAGE_CHILDREN).ru_maxrss))\nsys.exit(rc)\n")
        done = self.remote(command, host, *args, wrap=[sys.executable, "-c", wrapper, report],
                           **kwargs)
        with open(report) as f:
            return done, int(f.read()) / 1024.0

    def stop(self):
        for board in self.boards.values():
            board.stop()


def no_symlinks_or_specials(top):
    """Every path under `top` that is not a plain file or directory (what a collect must never bring)."""
    bad = []
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            mode = os.lstat(os.path.join(dirpath, name)).st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                bad.append(os.path.join(dirpath, name))
    return bad
