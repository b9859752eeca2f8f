"""The built-in default run (`ebedge run`): EB Train beside dense training, small enough for a
laptop CPU, on the synthetic dataset that ships with the code. `benchmarks/quick.toml` holds
the same settings as a suite.

Sized so the paper's effect shows in under 3 minutes on 2 CPU cores: VGG16 at 1/2 width (wide
enough that convolutions, not per-layer overheads, set a step's time, so a ticket's smaller FLOPs
show up as a shorter step: a retrain step costs about 0.33 of a dense one here), 1,000 of the 2,000
synthetic images for 40 epochs (the Early-Bird masks settle after 10-12 epochs with the paper's
epsilon 0.1 and window 5, a quarter of the schedule), the paper's p = 0.7 and lr 0.1. Chosen by
measurement (docs/results.md, "The default run"): at 30 epochs the same ticket is drawn at 10-12 too, which is a
third of that schedule, and EB Train's time came out at 0.57-0.66 of dense.
"""
import os

from ebedge.run.runner import execute

QUICK_SETTINGS = {
    "model": "vgg16",
    "width": 0.5,
    "dataset": "synthetic",
    "limit_train": 1000,
    "epochs": 40,
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
