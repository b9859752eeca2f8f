"""Loopback boards for the remote fault tests: real sshd, real ebedge, and a hostile ebedge.

`Lab` starts real OpenSSH servers on 127.0.0.1 (tests/support/remote_sshd.py) and runs the real `ebedge
remote` CLI against them. `hostile_ebedge` writes an `ebedge` for the board that lies in
`agent status` (ids and directories read from a JSON file the test controls) and passes every
other command to the real ebedge: a compromised or broken board, as the laptop sees it.
"""
import json
import os
import subprocess
import sys

from support.remote_sshd import LoopbackBoard, keygen, write_ssh_config

EBEDGE = os.path.join(os.path.dirname(sys.executable), "ebedge")

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


def hostile_ebedge(path, answers_path):
    """An ebedge for the board whose `agent status` answers what `answers_path` holds."""
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
        argv = list(kwargs.pop("wrap", ())) + [EBEDGE, "remote", command, host, "--ssh-config", self.config,
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


def write_run(run_dir, run_id, status="complete"):
    """A small run directory as the runner writes it (one phase, one meter at 10 W), and the
    agent's log beside it."""
    os.makedirs(run_dir, exist_ok=True)
    log_dir = os.path.join(os.path.dirname(run_dir), ".agent", run_id)
    os.makedirs(log_dir, exist_ok=True)
    with open(os.path.join(log_dir, "log.txt"), "w") as f:
        f.write("epoch 1/1\n")
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump({"run_id": run_id, "settings": {}}, f)
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump({"run_id": run_id, "status": status, "flags": []}, f)
    with open(os.path.join(run_dir, "phases.csv"), "w") as f:
        f.write("run_id,phase,epoch,t_start_mono,t_end_mono,t_start_wall,t_end_wall\n"
                "%s,search,0,100.0,110.0,1000100.0,1000110.0\n" % run_id)
    with open(os.path.join(run_dir, "samples.csv"), "w") as f:
        f.write("run_id,meter,rail,t_mono,t_wall,power_w,voltage_v,current_a,meter_energy_j,"
                "flags\n")
        for i in range(101):
            t = 100.0 + 0.1 * i
            f.write("%s,tegrastats,total,%.1f,%.1f,10.0,,,,\n" % (run_id, t, t + 1e6))
    return run_dir


def no_symlinks_or_specials(top):
    """Every path under `top` that is not a plain file or directory."""
    import stat
    bad = []
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            mode = os.lstat(os.path.join(dirpath, name)).st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                bad.append(os.path.join(dirpath, name))
    return bad
