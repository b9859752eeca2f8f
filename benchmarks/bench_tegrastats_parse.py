"""How many tegrastats lines per second `meters.tegrastats.replay` turns into samples (one core).

    python benchmarks/bench_tegrastats_parse.py [--lines N] [--board tx2|orin-nano|agx-orin]

Target: >= 100,000 lines/s, so that replaying a day of 10 Hz logs takes seconds and the live
meter's parsing never matters. Lines come from the tegrastats simulator (a TX2 JetPack 4 line has
6 rails; every line also yields a `total` sample), so the figure needs no fixtures.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from meters.sim.profile import PowerProfile  # noqa: E402
from meters.sim.tegrastats import BOARDS, LineMaker  # noqa: E402
from meters.tegrastats import replay  # noqa: E402


def make_lines(board, n):
    maker = LineMaker(board, PowerProfile.default())
    distinct = [maker.line(0.1 * k, wall=1.7e9 + 0.1 * k) + "\n" for k in range(200)]
    return (distinct * (n // len(distinct) + 1))[:n]


def bench(lines, repeats=3):
    best = None
    for _ in range(repeats):
        start = time.process_time()
        n_samples = sum(1 for _ in replay(lines, interval_s=0.1))
        elapsed = time.process_time() - start
        best = elapsed if best is None else min(best, elapsed)
    return len(lines) / best, n_samples


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=200000)
    ap.add_argument("--board", choices=BOARDS, default="tx2")
    args = ap.parse_args()
    lines = make_lines(args.board, args.lines)
    rate, n_samples = bench(lines)
    print("board=%s lines=%d samples=%d best-of-3 CPU rate=%.0f lines/s (target 100000)"
          % (args.board, len(lines), n_samples, rate))
    return 0 if rate >= 100000 else 1


if __name__ == "__main__":
    sys.exit(main())
