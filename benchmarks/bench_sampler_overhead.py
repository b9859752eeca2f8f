"""What meter sampling costs: CPU share of one core per meter and rate, and the training loop's slowdown.

1. For `ina3221` (a fake TX2 sysfs tree, so every reading is real file I/O as on a board), `tegrastats`
   (the fake tegrastats child; its own CPU is not counted, as the real one is NVIDIA's process) and
   `jtop` (the real client where jetson-stats runs, else the fake client of meters/sim/jtop_client.py,
   said so in the output) at 1, 10 and 100 Hz: process CPU seconds per wall second while only the
   sampler of a run (`ebedge.measure.sampling.MeterSampler`, draining into samples.csv) runs, less
   what the process uses without it (the fake tree's writer thread). Key `<meter>_<rate>hz_core_pct`.
2. With `--power-meter NAME` (a measuring meter: the board's INA3221, an external meter), the
   sampler's own power: the same idle window with the sampler at each rate and off, average watts of
   the power meter, key `<meter>_<rate>hz_power_w` (on minus off). Without one the keys are absent.
3. Epoch time with and without the ina3221 sampler at `--interval`, interleaved (ABAB): the ratio of
   each pair, median over pairs with its spread (target: median below 1.01).

    python benchmarks/bench_sampler_overhead.py [--seconds 5] [--epochs 6] [--interval 0.01] [--json]
"""
import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from ebedge.measure import energy  # noqa: E402
from ebedge.measure.sampling import MeterSampler  # noqa: E402
from ebedge.models import build_model  # noqa: E402
from ebedge.run.rundir import RunDir  # noqa: E402
from ebedge.training.data import load_dataset, make_loaders  # noqa: E402
from ebedge.training.train import make_optimizer, seed_everything, train_epoch  # noqa: E402
from ebedge.util import stats  # noqa: E402
from meters.sim import tegrastats as tegrastats_sim  # noqa: E402
from meters.sim.profile import PowerProfile  # noqa: E402
from meters.sim.sysfs import FakeIna3221Tree  # noqa: E402

RATES_HZ = (1, 10, 100)
METERS = ("ina3221", "tegrastats", "jtop")


def _cpu_seconds():
    """CPU seconds of this process and of its ended children: the sampler's own process once
    stopped (and, for tegrastats, the fake tegrastats it ran)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _cpu_per_second(start, stop, seconds):
    """CPU seconds per wall second between start() and stop(), this thread asleep; the sampler
    process's own CPU included."""
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    start()
    time.sleep(seconds)
    stop()
    return (_cpu_seconds() - cpu0) / (time.perf_counter() - wall0)


# A `jtop` module for the sampler's own process (it imports meters afresh): the fake client
_FAKE_JTOP = """import sys
from meters.sim import jtop_client
_power = jtop_client.power_of("4.3.1", [("VDD_IN", 5000), ("VDD_CPU_GPU_CV", 1500)])
sys.modules[__name__] = jtop_client.module("4.3.1", lambda: _power)
"""


def _jtop_options(tmp):
    """Options for the jtop meter, and a note: the real client where it runs, else the fake one
    (a `jtop` module on the path the sampler process is given)."""
    try:
        import jtop  # noqa: F401
        if os.path.exists("/run/jtop.sock"):
            return {}, "real jetson-stats client"
    except ImportError:
        pass
    with open(os.path.join(tmp, "jtop.py"), "w") as f:
        f.write(_FAKE_JTOP)
    sys.path.insert(0, tmp)
    return {}, "fake jetson-stats 4.3.1 client (meters/sim/jtop_client.py)"


def meter_options(tmp, tree):
    os.environ.update(tegrastats_sim.sim_env(PowerProfile.default()))
    jtop_opts, jtop_note = _jtop_options(tmp)
    return ({"ina3221": {"root": tree.root}, "tegrastats": {"executable": tegrastats_sim.BIN},
             "jtop": jtop_opts},
            {"ina3221": "fake TX2 sysfs tree", "tegrastats": "fake tegrastats (its CPU not counted)",
             "jtop": jtop_note})


def _idle_watts(power_meter, seconds, during=None):
    """Average watts of the power meter's total over `seconds`, with `during` (start, stop) running."""
    kept = []
    sampler = MeterSampler([power_meter[0]], kept.extend, {power_meter[0]: power_meter[1]})
    sampler.start()
    if during:
        during[0]()
    t0 = time.monotonic()
    time.sleep(seconds)
    t1 = time.monotonic()
    if during:
        during[1]()
    sampler.settle(t1)
    sampler.stop()
    total = [s for s in kept if s.rail == "total"]
    return energy.integrate(total, t0, t1).avg_power_w if total else None


def sampler_costs(options, seconds, rundir, power_meter=None):
    result = {}
    base = _cpu_per_second(lambda: None, lambda: None, seconds)
    off_w = _idle_watts(power_meter, seconds) if power_meter else None
    for name in METERS:
        for hz in RATES_HZ:
            key = "%s_%dhz" % (name, hz)
            try:
                sampler = MeterSampler([name], rundir.log_samples, {name: options[name]}, 1.0 / hz)
            except Exception as exc:  # a meter this machine cannot run: say why, go on
                result[key + "_error"] = str(exc)
                continue
            cost = _cpu_per_second(sampler.start, sampler.stop, seconds) - base
            result[key + "_core_pct"] = round(100.0 * cost, 3)
            print("%s: %.2f%% of one core" % (key, 100.0 * cost), file=sys.stderr, flush=True)
            if power_meter:
                sampler = MeterSampler([name], rundir.log_samples, {name: options[name]}, 1.0 / hz)
                on_w = _idle_watts(power_meter, seconds, (sampler.start, sampler.stop))
                if on_w is not None and off_w is not None:
                    result[key + "_power_w"] = round(on_w - off_w, 4)
    result["base_core_pct"] = round(100.0 * base, 3)
    return result


def epoch_ratio(tree, rundir, interval, epochs, images):
    """Median and spread of (epoch with sampler / the epoch before it without), ABAB."""
    seed_everything(1)
    loader, _ = make_loaders(load_dataset("synthetic", limit_train=images), batch_size=64)
    model = build_model("vgg16", width=0.125)
    optimizer = make_optimizer(model, 0.05)
    device = torch.device("cpu")
    train_epoch(model, loader, optimizer, device)  # warm-up
    without, with_ = [], []
    for _ in range(epochs):
        times = []
        for sampled in (False, True):
            sampler = None
            if sampled:
                sampler = MeterSampler(["ina3221"], rundir.log_samples, {"ina3221": {"root": tree.root}},
                                       interval)
                sampler.start()
            began = time.perf_counter()
            train_epoch(model, loader, optimizer, device)
            times.append(time.perf_counter() - began)
            if sampler is not None:
                sampler.stop()
        without.append(times[0])
        with_.append(times[1])
    median, low, high = stats.paired_ratios(with_, without)
    return {"epoch_ratio": median, "epoch_ratio_spread": [low, high],
            "epoch_interval_s": interval, "epoch_pairs": epochs}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per CPU-share window")
    parser.add_argument("--epochs", type=int, default=6, help="interleaved epoch pairs (0: skip)")
    parser.add_argument("--interval", type=float, default=0.01, help="sampling interval of the epoch test (s)")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--power-meter", default=None, help="a measuring meter for the sampler's own power")
    parser.add_argument("--power-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of results")
    args = parser.parse_args()

    power_meter = None
    if args.power_meter:
        power_meter = (args.power_meter, dict(kv.split("=", 1) for kv in args.power_option))
    with tempfile.TemporaryDirectory() as tmp:
        tree = FakeIna3221Tree(os.path.join(tmp, "sys"), "tx2")
        tree.start(rate_hz=100.0)
        rundir = RunDir(os.path.join(tmp, "run"), "bench")
        options, notes = meter_options(tmp, tree)
        result = sampler_costs(options, args.seconds, rundir, power_meter)
        if args.epochs > 0:
            result.update(epoch_ratio(tree, rundir, args.interval, args.epochs, args.images))
        rundir.close()
        tree.close()
    result.update(seconds=args.seconds, sources=notes, power_meter=args.power_meter,
                  cpus=os.cpu_count(), load_avg=list(os.getloadavg()))
    for name in METERS:
        print("%-11s %s" % (name, "  ".join(
            "%3d Hz: %s" % (hz, ("%.2f%% of a core" % result["%s_%dhz_core_pct" % (name, hz)])
                            if "%s_%dhz_core_pct" % (name, hz) in result else "n/a")
            for hz in RATES_HZ)), "(%s)" % notes[name])
    if "epoch_ratio" in result:
        print("epoch time with/without a %g Hz ina3221 sampler: median %.4f (pairs %.4f .. %.4f; target < 1.01)"
              % ((1 / args.interval, result["epoch_ratio"]) + tuple(result["epoch_ratio_spread"])))
    if args.json:
        print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
