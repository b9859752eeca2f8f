"""A real OpenSSH server on loopback, playing a board, for the remote tests.

Each `LoopbackBoard` is an sshd on a free 127.0.0.1 port with a throwaway host key, one client
key in authorized_keys, and `SetEnv` lines (e.g. EBEDGE_CLOCK_SHIFT_S=7 shifts every wall-clock
stamp the board's ebedge writes). `write_ssh_config` names the boards as host aliases with
StrictHostKeyChecking yes and a known_hosts file holding their real keys.
"""
import getpass
import os
import signal
import socket
import subprocess
import time

SSHD = "/usr/sbin/sshd"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def keygen(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True,
                   stdout=subprocess.DEVNULL)
    with open(path + ".pub") as f:
        return f.read().strip()


class LoopbackBoard(object):
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


def drop_connection_mid_run(argv, started_mark, timeout=240):
    """Run `argv` (an `ebedge remote` command that reports its ssh master's pid), SIGKILL that
    master once a line holds `started_mark`; return (exit status, output after the drop)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    master = None
    for line in proc.stdout:
        if "ssh master pid" in line:
            master = int(line.rsplit("pid", 1)[1].strip(" )\n"))
        if started_mark in line:
            break
    assert master, "no ssh master pid reported"
    time.sleep(3)  # the log stream and the clock channel run over the master by now
    os.kill(master, signal.SIGKILL)
    rest = proc.stdout.read()
    return proc.wait(timeout), rest
