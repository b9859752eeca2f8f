"""What `ebedge remote run` costs over running `ebedge train` on the board itself.

Starts a real sshd on loopback (the "board" is this machine), runs the same small training once
with `ebedge train` and once with `ebedge remote run` (detached start, log streaming, clock-free
board-meter run, rsync back), alternating the order over --repeats, and prints the wall-time
ratio remote / local of each pair, as the median over pairs with its spread (target: <= 1.05). On a shared, loaded machine the two runs' own durations
vary more than the orchestration costs, so it also prints the fixed overhead: the remote command's
wall time minus the board-side run's (agent start to final summary), and the ratio that overhead
gives over the local run. Needs /usr/sbin/sshd, ssh and rsync.

    .venv/bin/python benchmarks/bench_remote_overhead.py --epochs 6 --repeats 1
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ebedge.remote.loopback import EBEDGE, LoopbackBoard, keygen, write_ssh_config  # noqa: E402
from ebedge.util import stats  # noqa: E402


def train_args(args):
    return ["--model", "vgg16", "--width", str(args.width), "--dataset", "synthetic",
            "--batch-size", "64", "--limit-train", str(args.limit_train), "--limit-test", "128",
            "--epochs", str(args.epochs), "--seed", "1"]


def timed(argv, cwd):
    t0 = time.monotonic()
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, cwd=cwd)
    if done.returncode != 0:
        raise SystemExit("failed: %s\n%s" % (" ".join(argv), done.stdout[-2000:]))
    return time.monotonic() - t0


def board_side_seconds(runs_root, run_id):
    """Agent start to the run's last summary write, as the board saw it."""
    with open(os.path.join(runs_root, ".agent", run_id, "pid.json")) as f:
        started = json.load(f)["started_wall"]
    with open(os.path.join(runs_root, run_id, "summary.json")) as f:
        return json.load(f)["heartbeat_wall"] - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--limit-train", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="ebedge-bench-remote-")
    board = None
    try:
        board = LoopbackBoard(work, "bench", keygen(os.path.join(work, "id"))).start()
        config = write_ssh_config(os.path.join(work, "ssh_config"), [board],
                                  os.path.join(work, "id"), os.path.join(work, "known_hosts"))
        local_t, remote_t, overhead = [], [], []
        for i in range(args.repeats):
            local = [EBEDGE, "train", "--out", os.path.join(work, "local-%d" % i),
                     "--quiet"] + train_args(args)
            remote = [EBEDGE, "remote", "run", "bench", "--ssh-config", config, "--remote-ebedge",
                      EBEDGE, "--root", board.runs_root, "--results", os.path.join(work, "results"),
                      "--name", "remote-%d" % i] + train_args(args)
            order = [(local, local_t), (remote, remote_t)]
            for argv, sink in (order if i % 2 == 0 else order[::-1]):
                sink.append(timed(argv, work))
                print("%-6s run %d: %.1f s" % ("local" if sink is local_t else "remote", i,
                                               sink[-1]), flush=True)
            overhead.append(remote_t[-1] - board_side_seconds(board.runs_root, "remote-%d" % i))
        ratio, low, high = stats.paired_ratios(remote_t, local_t)
        with_overhead = stats.paired_ratios([l + o for l, o in zip(local_t, overhead)], local_t)
        print("local %.1f s, remote %.1f s (mean of %d): remote/local median %.3f (pairs %.3f .. "
              "%.3f; target <= 1.05)" % (sum(local_t) / len(local_t), sum(remote_t) / len(remote_t),
                                         args.repeats, ratio, low, high))
        print("orchestration overhead %.2f s per run: (local + overhead)/local median %.3f "
              "(pairs %.3f .. %.3f)" % ((sum(overhead) / len(overhead),) + with_overhead))
    finally:
        if board is not None:
            board.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
