"""The built-in default run (`ebedge run`): EB Train beside dense training, small enough for a
laptop CPU, on the synthetic dataset that ships with the code. `benchmarks/quick.toml` holds
the same settings as a suite.

Sized so the paper's effect shows in under 3 minutes on 2 CPU cores: VGG16 at 1/4 width (wide
enough that convolutions, not per-batch overheads, set a step's time, so a ticket's smaller FLOPs
show up as a shorter step), 30 epochs of the 2,000 synthetic images (the Early-Bird masks settle
after about a third of them with the paper's epsilon 0.1 and window 5), the paper's p = 0.7 and
lr 0.1. Known edge: on this small set the masks' epoch-to-epoch distance plateaus near epsilon
(0.10-0.12) before the first LR step, so the EB epoch moves with float rounding (11 of 30 with one
torch thread, 15 with two); lr 0.05 draws it at 10 reliably but costs the ticket 1.8 points.
"""
import os

from ebedge.runner import execute

QUICK_SETTINGS = {
    "model": "vgg16",
    "width": 0.25,
    "dataset": "synthetic",
    "epochs": 30,
    "batch_size": 64,
    "lr": 0.1,
    "prune_ratio": [0.7],
    "meters": ["auto"],
    "idle_seconds": 5.0,
}
QUICK_METHODS = ("eb", "dense")


def run_default(out_root, overwrite=False, quiet=False, overrides=None):
    """Run every method of the default into `out_root/<method>`; returns their summaries."""
    summaries = []
    for method in QUICK_METHODS:
        settings = dict(QUICK_SETTINGS, method=method, **(overrides or {}))
        out = os.path.join(out_root, method)
        summaries.append((out, execute(settings, out=out, overwrite=overwrite, quiet=quiet)))
    return summaries
