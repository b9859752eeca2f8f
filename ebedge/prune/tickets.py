"""A run's Early-Bird ticket read back from its files (masks.npz, summary.json), and two runs'
tickets compared: does an 8-bit search (eb-lf) draw the ticket the FP32 one does?"""
import json
import os

import numpy as np

from ebedge.errors import EbedgeError
from ebedge.prune.masks import mask_distance


def _ticket(run_dir, ratio):
    """(EB epoch or None, the ticket's mask) of one run: the mask at the EB epoch, else the last."""
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    ratio = summary["prune_ratio"] if ratio is None else ratio
    with np.load(os.path.join(run_dir, "masks.npz")) as masks:
        key = "ratio_%g" % ratio
        if key + "_masks" not in masks:
            raise EbedgeError("%s has no masks for prune ratio %g" % (run_dir, ratio))
        epochs, history = masks[key + "_epochs"], masks[key + "_masks"]
    if len(epochs) == 0:
        raise EbedgeError("%s recorded no masks" % run_dir)
    eb_epoch = (summary.get("eb_epochs") or {}).get("%g" % ratio)
    drawn = np.flatnonzero(epochs == eb_epoch) if eb_epoch is not None else []
    index = int(drawn[0]) if len(drawn) else -1
    return eb_epoch, history[index], int(epochs[index])


def compare_tickets(run_dir_a, run_dir_b, ratio=None):
    """The two runs' EB tickets side by side with their mask distance (e.g. LF vs FF).

    Where a run drew no ticket its last searched mask stands in, and `eb_epoch` says None.
    """
    eb_a, mask_a, epoch_a = _ticket(run_dir_a, ratio)
    eb_b, mask_b, epoch_b = _ticket(run_dir_b, ratio)
    if mask_a.shape != mask_b.shape:
        raise EbedgeError("the runs' masks cover different networks (%d vs %d channels)"
                          % (mask_a.size, mask_b.size))
    return {"a": {"run": run_dir_a, "eb_epoch": eb_a, "mask_epoch": epoch_a},
            "b": {"run": run_dir_b, "eb_epoch": eb_b, "mask_epoch": epoch_b},
            "mask_distance": float(mask_distance(mask_a, mask_b))}
