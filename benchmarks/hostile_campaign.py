"""The hostile-board campaign of `bench_faults.py --hostile`: boards that lie, over a real sshd.

Each attack is one `ebedge remote` command against a loopback board whose ebedge (or rsync)
lies in one way, one payload per attack and several payloads per class (issue 16): terminal
escapes in every place board text is shown, floods (a huge answer, an endless log line, JSON
nested 100k deep, a stderr flood), silence (an rsync that never answers), endless re-attach,
oversize copies on rsync and scp (many files, a sparse file), in-place writes into the earlier
copy, forged laptop recordings, broken runs (a list for config.json, a tree deeper than any run,
non-finite and wrong-typed numbers), and answers about another run.

An attack `held` when its check passed: the command ended (within TIMEOUT_S) with the expected
outcome, no traceback, no raw control character on stdout or stderr, and the results directory
as it should be (the honest run collected, the bad one refused, nothing left staged, the earlier
copy untouched). `hung`: it did not end in time. `broke`: anything else. `peak_rss_mb` is the
largest resident set of any process of any attack (the CLI, ssh, rsync, scp).
"""
import json
import os
import shutil
import subprocess
import sys

from support.remote_fixtures import (Lab, hostile_ebedge, lying_ebedge, runner_ebedge,
                                     no_symlinks_or_specials, write_run)

TIMEOUT_S = 120
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\u2066", "\x7f", "\x00")
ESCAPES = {"title": "\x1b]0;owned\x07", "clear": "\x1b[2J\x1b[H", "clipboard":
           "\x1b]52;c;ZXZpbA==\x07", "bidi": "\u202egnp.exe\u2066", "c1": "\x9b31m\x7f\x00"}


def _clean(done):
    return not any(c in done.stdout + done.stderr for c in RAW) and "Traceback" not in \
        done.stdout + done.stderr


def _one_line_error(done):
    lines = [l for l in done.stderr.strip().splitlines() if l.strip()]
    return done.returncode != 0 and len(lines) == 1


class Campaign(object):
    """A loopback board, a scratch area for the board's run directories, and the tally."""

    def __init__(self, root, say):
        self.root = root
        self.say = say
        self.lab = Lab(os.path.join(root, "lab"))
        self.board = os.path.join(root, "board")
        self.bin = os.path.join(root, "bin")
        os.makedirs(self.bin)
        self.tally = {"attacks": 0, "held": 0, "broke": 0, "hung": 0, "peak_rss_mb": 0.0}
        self.broken = []
        self._n = 0

    def fake(self, code):
        self._n += 1
        return lying_ebedge(os.path.join(self.bin, "ebedge%d" % self._n), code)

    def statuses(self, runs):
        """A board whose `agent status` lists `runs`: (run id, directory) or a raw answer."""
        self._n += 1
        answers = os.path.join(self.bin, "answers%d.json" % self._n)
        with open(answers, "w") as f:
            json.dump([r if isinstance(r, dict) else
                       {"run_id": r[0], "state": "complete", "out": r[1]} for r in runs], f)
        return hostile_ebedge(os.path.join(self.bin, "ebedge%d" % self._n), answers)

    def run_dir(self, run_id):
        return write_run(os.path.join(self.board, run_id), run_id)

    def results(self, run_id):
        return os.path.join(self.lab.results, "board1", run_id)

    def staged(self):
        top = os.path.join(self.lab.results, "board1")
        return [n for n in os.listdir(top) if n.startswith(".")] if os.path.isdir(top) else []

    def attack(self, name, args, check, lab=None, **kwargs):
        """Run `ebedge remote ARGS` against the board; judge it with check(done)."""
        lab = lab or self.lab
        self.tally["attacks"] += 1
        try:
            done, peak = lab.remote_peak(*args, timeout=TIMEOUT_S, **kwargs)
        except subprocess.TimeoutExpired:
            self.tally["hung"] += 1
            self.say("attack %-28s HUNG" % name)
            return
        self.tally["peak_rss_mb"] = max(self.tally["peak_rss_mb"], round(peak, 1))
        try:
            ok = _clean(done) and check(done)
        except (OSError, ValueError, KeyError) as exc:
            ok = False
            done.stderr += " [check: %s]" % exc
        self.tally["held" if ok else "broke"] += 1
        if not ok:
            self.broken.append(name)
        self.say("attack %-28s %-5s peak %5.1f MB  %s" % (
            name, "held" if ok else "BROKE", peak,
            (done.stderr.strip().splitlines() or [""])[-1][:110]))

    def close(self):
        self.lab.stop()


def _escapes(c):
    for kind, payload in sorted(ESCAPES.items()):
        liar = c.statuses([{"run_id": "good", "state": "complete"},
                           {"run_id": "x" + payload, "state": "failed" + payload,
                            "error": payload}])
        c.attack("escape-status-" + kind, ("status", "board1"),
                 lambda d: d.returncode == 0 and d.stdout.startswith("good"),
                 remote_ebedge=liar)
    run = c.run_dir("esc")
    with open(os.path.join(run, "summary.json"), "w") as f:
        json.dump({"run_id": "esc", "status": "complete" + ESCAPES["clear"],
                   "flags": [ESCAPES["clipboard"]]}, f)
    fake = runner_ebedge(os.path.join(c.bin, "esc-runner"), {"esc": run},
                         watch="print(%r)" % ("epoch 1 " + "".join(sorted(ESCAPES.values()))))
    c.attack("escape-log-and-summary", ("run", "board1", "--results", c.lab.results, "--name",
                                        "esc", "--epochs", "1"),
             lambda d: d.returncode == 0 and "\\x1b]0;owned\\x07" in d.stdout,
             remote_ebedge=fake)
    stopper = c.fake("if args[:2] == ['agent', 'stop']:\n    say({'run_id': args[2], "
                     "'signalled': %r, 'state': %r})\n" % (ESCAPES["title"], ESCAPES["bidi"]))
    c.attack("escape-stop", ("stop", "board1", "r1"),
             lambda d: d.returncode == 0 and "\\u202e" in d.stdout, remote_ebedge=stopper)
    unlocker = c.fake("if args[:2] == ['agent', 'unlock']:\n    sys.stderr.write(%r)\n"
                      "    sys.exit(2)\n" % ("no " + ESCAPES["clipboard"] + "\nsecond line\n"))
    c.attack("escape-error", ("unlock", "board1"), _one_line_error, remote_ebedge=unlocker)


def _floods(c):
    huge = c.fake("if args[:2] == ['agent', 'status']:\n    c = 'x' * 2 ** 20\n"
                  "    sys.stdout.write('[\"')\n    for _ in range(1024):\n"
                  "        sys.stdout.write(c)\n    sys.exit(0)\n")
    c.attack("flood-answer-1GiB-line", ("status", "board1"),
             lambda d: _one_line_error(d) and "16777216 bytes" in d.stderr, remote_ebedge=huge)
    for where, code in (("status", "print('[' * 100000 + ']' * 100000)"),
                        ("status", "print('{\"a\":' * 100000 + '1' + '}' * 100000)")):
        deep = c.fake("if args[:2] == ['agent', %r]:\n    %s\n    sys.exit(0)\n" % (where, code))
        c.attack("flood-json-100k-deep-%s" % ("list" if "[" in code else "object"),
                 ("status", "board1"),
                 lambda d: _one_line_error(d) and "deeper than" in d.stderr, remote_ebedge=deep)
    stderr = c.fake("if args[:2] == ['agent', 'unlock']:\n    c = 'e' * 2 ** 20\n"
                    "    for _ in range(512):\n        sys.stderr.write(c)\n    sys.exit(1)\n")
    c.attack("flood-stderr-512MiB", ("unlock", "board1"), _one_line_error,
             remote_ebedge=stderr)
    run = c.run_dir("longline")
    endless = runner_ebedge(os.path.join(c.bin, "longline"), {"longline": run}, watch=(
        "for _ in range(1024):\n    sys.stdout.write('y' * 2 ** 20)\n"
        "sys.stdout.write('\\n')\nsys.stdout.flush()"))
    c.attack("flood-log-line-1GiB", ("run", "board1", "--results", c.lab.results, "--name",
                                     "longline", "--epochs", "1"),
             lambda d: d.returncode == 0 and "cut by ebedge" in d.stdout, remote_ebedge=endless)


def _time(c):
    fakebin = os.path.join(c.root, "fakebin")
    os.makedirs(fakebin)
    with open(os.path.join(fakebin, "rsync"), "w") as f:
        f.write("#!/bin/sh\nexec sleep 3600\n")
    os.chmod(os.path.join(fakebin, "rsync"), 0o755)
    silent = Lab(os.path.join(c.root, "silent-lab"),
                 env={"PATH": "%s:/usr/bin:/bin" % fakebin})
    try:
        liar = c.statuses([("stuck", c.run_dir("stuck"))])
        c.attack("silent-rsync", ("collect", "board1", "stuck", "--results", silent.results,
                                  "--stall-timeout", "3"),
                 lambda d: _one_line_error(d) and "no byte from the board" in d.stderr,
                 lab=silent, remote_ebedge=liar)
    finally:
        silent.stop()
    run = c.run_dir("flappy")
    for kind, watch in (("drops-at-once", "sys.exit(0)"),
                        ("garbled-final-state", "print('@@ebedge-state nan'); sys.exit(0)")):
        c._n += 1
        fake = runner_ebedge(os.path.join(c.bin, "flappy%d" % c._n), {"flappy": run},
                             extra="if args[:2] == ['agent', 'watch']:\n    %s" % watch)
        c.attack("reattach-" + kind, ("run", "board1", "--results", c.lab.results,
                                      "--name", "flappy", "--epochs", "1",
                                               "--reattach-limit", "2"),
                 lambda d: _one_line_error(d) and "without progress" in d.stderr,
                 remote_ebedge=fake)


def _sizes(c, no_rsync_env):
    big = c.run_dir("big")
    for i in range(8):
        with open(os.path.join(big, "part%d.bin" % i), "wb") as f:
            f.write(os.urandom(4 * 2 ** 20))
    sparse = c.run_dir("sparse")
    with open(os.path.join(sparse, "hole.bin"), "wb") as f:
        f.truncate(2 ** 30)
    fits = c.run_dir("fits")
    liar = c.statuses([("big", big), ("sparse", sparse), ("fits", fits)])
    for transport, env in (("rsync", None), ("scp", no_rsync_env)):
        shutil.rmtree(c.lab.results, ignore_errors=True)
        c.attack("max-bytes-%s" % transport, ("collect", "board1", "--results", c.lab.results,
                                              "--max-bytes", "10000000"),
                 lambda d: ("2 run(s)" in d.stderr and not os.path.exists(c.results("big"))
                            and not os.path.exists(c.results("sparse")) and not c.staged()
                            and os.path.exists(os.path.join(c.results("fits"), "summary.json"))),
                 remote_ebedge=liar, env=env)
    run = c.run_dir("inplace")
    liar = c.statuses([("inplace", run)])
    c.lab.remote("collect", "board1", "inplace", "--results", c.lab.results,
                 remote_ebedge=liar, env=no_rsync_env)
    path = os.path.join(c.results("inplace"), "summary.json")
    before = (open(path).read(), os.stat(path).st_ino)
    with open(os.path.join(run, "summary.json"), "w") as f:
        json.dump({"run_id": "inplace", "status": "failed: rewritten"}, f)
    with open(os.path.join(run, "config.json"), "w") as f:
        f.write("[]")
    c.attack("in-place-into-earlier-copy", ("collect", "board1", "inplace", "--results",
                                            c.lab.results),
             lambda d: (_one_line_error(d) and (open(path).read(), os.stat(path).st_ino)
                        == before and not c.staged()),
             remote_ebedge=liar, env=no_rsync_env)


def _forgeries_and_bad_runs(c):
    forged = c.run_dir("forged")
    os.makedirs(os.path.join(forged, "laptop"))
    for name in ("samples.csv", "clock.json"):
        with open(os.path.join(forged, "laptop", name), "w") as f:
            f.write("{}\n")
    with open(os.path.join(forged, "samples.csv"), "a") as f:
        f.write("forged,um@laptop,total,100.0,1000100.0,10.0,,,,\n")
    liar = c.statuses([("forged", forged)])
    c.attack("forged-laptop-meter", ("collect", "board1", "forged", "--results", c.lab.results),
             lambda d: (d.returncode == 0 and "refused laptop/clock.json" in d.stdout
                        and not os.path.exists(os.path.join(c.results("forged"), "laptop"))
                        and "@laptop" not in open(os.path.join(c.results("forged"),
                                                               "samples.csv")).read()),
             remote_ebedge=liar)
    bad = {}
    bad["listy"] = c.run_dir("listy")
    with open(os.path.join(bad["listy"], "config.json"), "w") as f:
        f.write("[1, 2]")
    bad["deep"] = c.run_dir("deep")
    os.makedirs(os.path.join(bad["deep"], *(["d"] * 200)))
    bad["wide"] = c.run_dir("wide")
    with open(os.path.join(bad["wide"], "summary.json"), "w") as f:
        f.write('{"run_id": "wide", "status": "complete", "flags": "x", "test_acc": "high", '
                '"runtime_s": NaN, "train_flops_total": "1e9"}')
    bad["other"] = c.run_dir("other")
    with open(os.path.join(bad["other"], "config.json"), "w") as f:
        json.dump({"run_id": "someone-else"}, f)
    good = c.run_dir("zgood")
    for rid, path in sorted(bad.items()):
        liar = c.statuses([(rid, path), ("zgood", good)])
        expect_refused = rid != "wide"
        c.attack("bad-run-%s" % rid, ("collect", "board1", "--results", c.lab.results),
                 lambda d, rid=rid, refused=expect_refused: (
                     (("1 run(s)" in d.stderr) if refused else d.returncode == 0)
                     and os.path.exists(c.results(rid)) != refused and not c.staged()
                     and os.path.exists(os.path.join(c.results("zgood"), "summary.json"))
                     and no_symlinks_or_specials(c.lab.results) == []),
                 remote_ebedge=liar)
    swapper = c.fake("if args[:2] == ['agent', 'status'] and len(args) > 2:\n"
                     "    say({'run_id': 'zgood', 'state': 'complete', 'out': %r})\n" % good)
    c.attack("answer-about-another-run", ("collect", "board1", "asked", "--results",
                                          c.lab.results),
             lambda d: _one_line_error(d) and not os.path.exists(c.results("asked")),
             remote_ebedge=swapper)


def run_campaign(root, say):
    """Every attack once; the tally dict (attacks, held, broke, hung, peak_rss_mb, broken)."""
    c = Campaign(root, say)
    no_rsync = os.path.join(root, "no-rsync-bin")
    os.makedirs(no_rsync)
    for tool in ("ssh", "scp"):
        os.symlink(shutil.which(tool), os.path.join(no_rsync, tool))
    env = dict(os.environ, PATH="%s:%s" % (no_rsync, os.path.dirname(sys.executable)))
    try:
        for part in (_escapes, _floods, _time, _forgeries_and_bad_runs):
            part(c)
        _sizes(c, env)
    finally:
        c.close()
    return dict(c.tally, broken=c.broken)
