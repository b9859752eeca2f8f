"""What a 10 Hz meter sampler costs the training loop: epoch time with and without it.

The sampler is the one a run uses (`ebedge.measure.sampling.MeterSampler` draining into samples.csv)
over an INA3221 meter reading a fake TX2 sysfs tree, so every sample is real file I/O as on a
board. Epochs alternate between the two conditions so that drift (thermal, other load) hits both
alike; the figure is the ratio of median epoch times (target below 1.01). Because epoch times
on a shared machine vary by several percent, the sampler's own CPU use is also measured
directly (CPU seconds per wall second of this process and the sampler's own process while only
the sampler runs, less what the fake sysfs tree's writer thread uses on its own), which bounds its
cost to the training loop from above.

    python benchmarks/bench_sampler_overhead.py [--epochs 8] [--interval 0.1]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from ebedge.training.data import load_dataset, make_loaders  # noqa: E402
from ebedge.models import build_model  # noqa: E402
from ebedge.run.rundir import RunDir  # noqa: E402
from ebedge.measure.sampling import MeterSampler  # noqa: E402
from ebedge.training.train import make_optimizer, seed_everything, train_epoch  # noqa: E402
from meters.sim.sysfs import FakeIna3221Tree  # noqa: E402


def _cpu_seconds():
    """CPU seconds of this process and of its children that have ended (the sampler process,
    once stopped)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _cpu_per_second(start, stop, seconds=10.0):
    """CPU seconds per wall second between start() and stop(), this thread asleep; the sampler
    process's own CPU included."""
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    start()
    time.sleep(seconds)
    stop()
    return (_cpu_seconds() - cpu0) / (time.perf_counter() - wall0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8, help="epochs per condition")
    parser.add_argument("--interval", type=float, default=0.1, help="sampling interval (s)")
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()

    seed_everything(1)
    data = load_dataset("synthetic", limit_train=args.images)
    loader, _ = make_loaders(data, batch_size=64)
    model = build_model("vgg16", width=0.125)
    optimizer = make_optimizer(model, 0.05)
    device = torch.device("cpu")
    times = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        tree = FakeIna3221Tree(os.path.join(tmp, "sys"), "tx2")
        tree.start(rate_hz=50.0)
        rundir = RunDir(os.path.join(tmp, "run"), "bench")
        train_epoch(model, loader, optimizer, device)  # warm-up
        for i in range(2 * args.epochs):
            sampled = i % 2 == 1
            sampler = None
            if sampled:
                sampler = MeterSampler(["ina3221"], rundir.log_samples, {"ina3221": {"root": tree.root}},
                                       args.interval)
                sampler.start()
            began = time.perf_counter()
            train_epoch(model, loader, optimizer, device)
            times[sampled].append(time.perf_counter() - began)
            if sampler is not None:
                sampler.stop()
        base_cost = _cpu_per_second(lambda: None, lambda: None)  # the fake tree's own writer
        sampler = MeterSampler(["ina3221"], rundir.log_samples, {"ina3221": {"root": tree.root}},
                               args.interval)
        idle_cost = _cpu_per_second(sampler.start, sampler.stop) - base_cost
        rundir.close()
        tree.close()
    without, with_ = statistics.median(times[False]), statistics.median(times[True])
    print("epoch time without sampler: median %.3f s (%s)" % (
        without, ", ".join("%.3f" % t for t in times[False])))
    print("epoch time with %g Hz sampler: median %.3f s (%s)" % (
        1 / args.interval, with_, ", ".join("%.3f" % t for t in times[True])))
    print("ratio with/without: %.4f (target < 1.01)" % (with_ / without))
    print("sampler alone: %.4f CPU seconds per second (%.2f%% of one core)" % (idle_cost,
                                                                           100 * idle_cost))


if __name__ == "__main__":
    main()
