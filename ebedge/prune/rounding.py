"""`--channel-multiple K`, beyond the paper: round each layer's kept channels up to a multiple of K.

Tensor cores (Volta and later: Xavier, Orin) and many CPU kernels run fastest on channel counts
that are multiples of 8, so a ticket of 37 channels may run no faster than one of 40. Rounding up
keeps the ticket's channels and adds the next-largest |gamma| of the same layer; FLOPs are then
counted on the pruned network as built, so they are what really runs. K = 1 is the paper.
"""
import numpy as np

from ebedge.prune.masks import bn_layers, split_mask


def round_kept_channels(model, flat_mask, multiple):
    """`flat_mask` with every layer keeping its top-|gamma| channels, rounded up to `multiple`.

    A layer the mask would empty keeps `multiple` channels (capped at its width), so no layer is
    left to physical pruning's one-channel guard.
    """
    flat_mask = np.asarray(flat_mask, dtype=bool)
    if multiple <= 1:
        return flat_mask
    parts = []
    for (_, bn), keep in zip(bn_layers(model), split_mask(model, flat_mask)):
        width = keep.size
        target = min(width, -(-max(int(keep.sum()), 1) // multiple) * multiple)
        order = np.argsort(-bn.weight.detach().abs().cpu().numpy(), kind="stable")
        rounded = np.zeros(width, dtype=bool)
        rounded[order[:target]] = True  # includes the kept ones: they are above a global threshold
        parts.append(rounded)
    return np.concatenate(parts)
