"""EB Train LF and LL (paper section 4.3, Table 2): EB Train with an 8-bit search.

`eb-lf` searches for the ticket in 8-bit block floating point (ebedge.training.lowp) and retrains the
pruned network in FP32; `eb-ll` retrains it in 8 bits too. Both are `eb` with the low-precision
transform and optimizer hooks plugged into its search (and retrain, for LL); the retrain mode
(`finetune` by default, inheriting the ticket's weights as the official `main_c_lp.py` does)
comes from the settings like `eb`'s. The summary adds the bit width of every phase beside the
FP32-equivalent FLOPs; see ebedge.training.lowp for how savings are (and are not) counted.
"""
import json
import os

import numpy as np

from ebedge.training import lowp
from ebedge.errors import EbedgeError
from ebedge.methods import eb
from ebedge.prune.masks import mask_distance
from ebedge.training.train import make_optimizer

WORD_LENGTH = 8
ROUNDING = "stochastic"


def _loop_options(ctx):
    """Optimizer factory and hooks that train a low-precision model (one hooks object each)."""
    s = ctx.settings
    hooks = lowp.LowPrecisionOptimizerHooks(WORD_LENGTH, ROUNDING)

    def optimizer_for(model):
        return hooks.bind(make_optimizer(model, s.lr, s.momentum, s.weight_decay))

    return optimizer_for, {"after_backward": hooks.after_backward,
                           "after_step": hooks.after_step}


def _to_low_precision(model):
    return lowp.make_low_precision(model, WORD_LENGTH, ROUNDING)


def _search_options(ctx):
    optimizer_for, hooks = _loop_options(ctx)
    return dict(hooks, model_transform=_to_low_precision, optimizer_factory=optimizer_for)


def _low_precision_retrain(ctx):
    def setup(pruned):  # the pruned model is a fresh module: quantize it again
        optimizer_for, hooks = _loop_options(ctx)
        return dict(hooks, optimizer=optimizer_for(_to_low_precision(pruned)))
    return setup


def _run(ctx, retrain_bits):
    summary = eb.run(ctx, search_options=_search_options(ctx),
                     retrain_setup=_low_precision_retrain(ctx) if retrain_bits < lowp.FULL_BITS
                     else None)
    bits = {"search": WORD_LENGTH, "prune": lowp.FULL_BITS, "retrain": retrain_bits}
    summary.update(
        lowp_bits=bits,
        lowp_format="block floating point, wl=%d, shared exponent per dim-0 slice, %s rounding"
                    % (WORD_LENGTH, ROUNDING),
        train_flops_total_bitscaled=lowp.bit_scaled_flops(ctx.carry["train_flops"], bits))
    return summary


def run_lf(ctx):
    return _run(ctx, lowp.FULL_BITS)


def run_ll(ctx):
    return _run(ctx, WORD_LENGTH)


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
