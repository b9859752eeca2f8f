"""The built-in default run (`ebedge run`): EB Train beside dense training, small enough for a
laptop CPU, on the synthetic dataset that ships with the code. `benchmarks/quick.toml` holds
the same settings as a suite.
"""
import os

from ebedge.runner import execute

QUICK_SETTINGS = {
    "model": "vgg16",
    "width": 0.125,
    "dataset": "synthetic",
    "epochs": 20,
    "batch_size": 64,
    "lr": 0.1,
    "prune_ratio": [0.5],
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
