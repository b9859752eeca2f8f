"""Measure the energy of a plain PyTorch training loop with ebedge.Monitor.

Nothing here uses ebedge except the Monitor: the model, data and loop are ordinary PyTorch.

    python examples/measure_pytorch_loop.py                        # the best meter present
    python examples/measure_pytorch_loop.py --meter wattsup --port /dev/ttyUSB0
    python examples/measure_pytorch_loop.py --log-dir results/my-loop && ebedge report results/my-loop
"""
import argparse

import torch
from torch import nn

from ebedge import Monitor


def make_data(n=2048, features=64, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = (x[:, :classes].argmax(dim=1) + (x[:, -1] > 1).long()) % classes
    return torch.utils.data.TensorDataset(x, y)


def train_one_epoch(model, loader, optimizer):
    model.train()
    for x, y in loader:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meter", default="auto", help="meter name, or auto [default: auto]")
    parser.add_argument("--port", help="serial port of an external meter (wattsup, um, scpi, lines)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--idle", type=float, default=2.0, help="seconds of idle power first")
    parser.add_argument("--log-dir", help="write samples/windows/energy CSVs here for `ebedge report`")
    args = parser.parse_args()

    data = make_data()
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    options = {args.meter: {"port": args.port}} if args.port else None

    with Monitor(meters=[args.meter], meter_options=options, log_dir=args.log_dir) as mon:
        if args.idle > 0:
            idle = mon.measure_idle(args.idle)
            print("idle: %.2f W (%s, %s)" % (idle.power_w, idle.method, idle.meter))

        @mon.measure("eval")
        def evaluate():
            model.eval()
            with torch.no_grad():
                x, y = data.tensors
                return (model(x).argmax(dim=1) == y).float().mean().item()

        for epoch in range(args.epochs):
            mon.begin_window("epoch-%d" % epoch)
            train_one_epoch(model, loader, optimizer)
            m = mon.end_window("epoch-%d" % epoch)
            acc = evaluate()
            net = "" if m.net_energy_j is None else ", net %.2f J" % m.net_energy_j
            print("epoch %d: acc %.3f, %.2f s, %.2f J (%.2f W avg%s), %s by %s%s" % (
                epoch, acc, m.seconds, m.energy_j, m.power_w, net, m.method, m.meter,
                "".join("\n  flag: " + f for f in m.flags)))


if __name__ == "__main__":
    main()
