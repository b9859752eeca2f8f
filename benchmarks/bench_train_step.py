"""Does the measured cost of training follow its compute? Step times of the training loop.

On VGG16 (width 0.5 by default) over the CIFAR-10 JPEG subset, batch 64:
  data_overhead            = time of N training steps fed by the real pipeline / the same N steps on
                             batches already resident on the device (goal <= 1.10); measured for the
                             device-resident tensor pipeline and for the per-image torchvision one;
  pruned_speedup_vs_flops  = (dense step time / p = 0.5 ticket step time) / (dense FLOPs / ticket
                             FLOPs) (goal >= 0.80), also with the ticket rounded by --channel-multiple 8;
  guard cost per epoch     = three power-mode checks (one per phase mark), as the runner did them
                             (board.snapshot: files and nvpmodel/jetson_clocks processes) and as it
                             does them now (board.StateWatcher: files, commands at most every 30 s).
Conditions are interleaved (ABAB: every condition once per round, short blocks, several rounds), and
every ratio is taken within a round, then reported as the median over rounds with its spread (min and
max): load on the machine that comes and goes hits both sides of a ratio alike, and the spread shows
how much it moved. A ratio of medians taken apart would let a burst of load fake the result.
The ticket is the global-threshold mask of seeded uniform |gamma| (or the pruned cfg of a finished
run's summary.json with --ticket-from), so its shape is illustrative, its FLOPs exact.

    python benchmarks/bench_train_step.py [--steps 30] [--rounds 3] [--json]
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from ebedge.measure import board
from ebedge.util import stats  # noqa: E402
from ebedge.training import flops# noqa: E402
from ebedge.training.data import load_dataset, make_loaders, make_pipeline  # noqa: E402
from ebedge.models import build_model  # noqa: E402
from ebedge.prune.masks import bn_layers, channel_mask  # noqa: E402
from ebedge.prune.physical import prune_model  # noqa: E402
from ebedge.prune.rounding import round_kept_channels  # noqa: E402
from ebedge.training.train import make_optimizer, pick_device, seed_everything, synchronize  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "cifar10-jpeg")


def timed_steps(model, batches, device, steps):
    """Seconds for `steps` SGD steps over `batches` (an iterable, restarted as needed)."""
    optimizer = make_optimizer(model, 0.01)
    criterion = nn.CrossEntropyLoss()
    model.train()
    done = 0
    synchronize(device)
    began = time.perf_counter()
    while done < steps:
        for images, labels in batches:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            criterion(model(images), labels).backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    synchronize(device)
    return time.perf_counter() - began


def ticket(model, ratio, multiple, ticket_from):
    if ticket_from:
        with open(os.path.join(ticket_from, "summary.json")) as handle:
            cfg = json.load(handle)["pruned_cfg"]
        return build_model(model.arch, num_classes=10, cfg=cfg, width=1.0)
    generator = torch.Generator().manual_seed(0)
    for _, bn in bn_layers(model):
        bn.weight.data = torch.rand(bn.num_features, generator=generator).to(bn.weight.device)
    mask = round_kept_channels(model, channel_mask(model, ratio), multiple)
    return prune_model(model, mask)[0]


def guard_seconds_per_epoch(repeats=5):
    """Three marks per epoch: the old way (snapshot) and the new (StateWatcher), median of repeats."""
    old, new = [], []
    watcher = board.StateWatcher()
    for _ in range(repeats):
        began = time.perf_counter()
        for _ in range(3):
            board.snapshot().comparable()
        old.append(time.perf_counter() - began)
        began = time.perf_counter()
        for _ in range(3):
            watcher.read().comparable()
        new.append(time.perf_counter() - began)
    return statistics.median(old), statistics.median(new)


def _paired(result, key, numer, denom, scale=1.0):
    """result[key] = median over rounds of scale x numer[i] / denom[i]; key_spread = [min, max]."""
    result[key], low, high = stats.paired_ratios(numer, denom, scale)
    result[key + "_spread"] = [low, high]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="training steps per measurement")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved rounds (ratios per round, median and spread)")
    parser.add_argument("--prune-ratio", type=float, default=0.5)
    parser.add_argument("--ticket-from", help="a finished eb run directory: use its pruned cfg")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of results")
    args = parser.parse_args()

    seed_everything(1)
    device = pick_device(args.device)
    images = args.steps * args.batch_size
    began = time.perf_counter()
    data = load_dataset("imagefolder", data_dir=args.data_dir, limit_train=images, limit_test=64)
    tensor_train, _, info = make_pipeline(data, args.batch_size, device, "tensor", seed=1)
    load_s = time.perf_counter() - began
    per_image, _ = make_loaders(data, args.batch_size, workers=0, seed=1)
    resident = [(x.clone(), y.clone()) for x, y in tensor_train]  # the same batches, made once

    dense = build_model("vgg16", num_classes=10, width=args.width).to(device)
    models = {"dense": dense}
    for multiple in (1, 8):
        copy = build_model("vgg16", num_classes=10, width=args.width).to(device)
        models["ticket_k%d" % multiple] = ticket(copy, args.prune_ratio, multiple,
                                                 args.ticket_from if multiple == 1 else None)
    macs = {name: flops.forward_macs(m, (3, 32, 32)) for name, m in models.items()}

    feeds = {"resident": resident, "tensor": tensor_train, "torchvision": per_image}
    times = {key: [] for key in ["feed_" + f for f in feeds] + ["step_" + m for m in models]}
    for name, model in models.items():  # warm-up: allocator, kernels
        timed_steps(model, resident, device, 3)
    for _ in range(args.rounds):
        for feed, batches in feeds.items():
            times["feed_" + feed].append(timed_steps(dense, batches, device, args.steps))
        for name, model in models.items():
            times["step_" + name].append(timed_steps(model, resident, device, args.steps)
                                         / args.steps)
    med = {key: statistics.median(values) for key, values in times.items()}
    steps = {name: times["step_" + name] for name in models}
    guard_old, guard_new = guard_seconds_per_epoch()
    result = {
        "device": str(device), "threads": torch.get_num_threads(), "width": args.width,
        "batch_size": args.batch_size, "steps": args.steps, "rounds": args.rounds,
        "load_s": round(load_s, 3), "cache": info["data_cache"]["train"],
        "dense_step_s": med["step_dense"],
    }
    _paired(result, "data_overhead", times["feed_tensor"], times["feed_resident"])
    _paired(result, "data_overhead_torchvision", times["feed_torchvision"], times["feed_resident"])
    for multiple in (1, 8):
        name = "ticket_k%d" % multiple
        suffix = "" if multiple == 1 else "_k8"
        result["ticket_step_s" + suffix] = med["step_" + name]
        result["flops_ratio" + suffix] = macs[name] / float(macs["dense"])
        _paired(result, "pruned_speedup_vs_flops" + suffix, steps["dense"], steps[name],
                scale=macs[name] / float(macs["dense"]))
    steps_per_epoch = -(-10000 // args.batch_size)
    result.update(guard_s_per_epoch_snapshot=guard_old, guard_s_per_epoch_watcher=guard_new,
                  guard_share_of_epoch_snapshot=guard_old / (steps_per_epoch * med["step_dense"]),
                  guard_share_of_epoch_watcher=guard_new / (steps_per_epoch * med["step_dense"]))

    print("VGG16 width %g, batch %d, %d steps x %d rounds on %s (%d threads)" % (
        args.width, args.batch_size, args.steps, args.rounds, device, result["threads"]))
    print("data load + decode %.2fs (cache %s)" % (load_s, "hit" if result["cache"]["hit"] else "miss"))
    print("%-34s %8s" % ("", "value"))
    for key in ("data_overhead", "data_overhead_torchvision", "dense_step_s", "ticket_step_s",
                "flops_ratio", "pruned_speedup_vs_flops", "ticket_step_s_k8", "flops_ratio_k8",
                "pruned_speedup_vs_flops_k8", "guard_s_per_epoch_snapshot",
                "guard_s_per_epoch_watcher"):
        spread = result.get(key + "_spread")
        print("%-34s %8.4g%s" % (key, result[key], "   (rounds %.4g .. %.4g)" % tuple(spread)
                                 if spread else ""))
    if args.json:
        print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
