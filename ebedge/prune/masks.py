"""Channel masks from BN scaling factors: one global |gamma| threshold over the prunable BNs.

The mask is a flat bool vector over every prunable BN channel, in module order (True = kept). This
is the object the Early-Bird detector compares between epochs and physical pruning consumes.
"""
import numpy as np
import torch
import torch.nn as nn


def bn_layers(model):
    """(name, BatchNorm2d) pairs that take part in the global threshold, in module order.

    A model may say which with a `prunable_bn_names()` method; otherwise every BatchNorm2d counts.
    VGG: all BNs. PreResNet: all BNs, including each block's input bn1 (narrowed through the channel
    selection) and the final bn, as in the official code. ResNet-18/50: only the BNs after the inner
    block convs (bn1, and bn2 of a Bottleneck); trunk BNs are never pruned, so they are left out of
    the threshold rather than counted and then ignored.
    """
    modules = dict(model.named_modules())
    names_fn = getattr(model, "prunable_bn_names", None)
    if names_fn is not None:
        return [(name, modules[name]) for name in names_fn()]
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]


def bn_scales(model):
    """|gamma| of every prunable BN channel, concatenated in module order (float32 numpy)."""
    layers = bn_layers(model)
    if not layers:
        raise ValueError("model has no BatchNorm2d layers to build a channel mask from")
    return np.concatenate([m.weight.detach().abs().cpu().numpy().astype(np.float32) for _, m in layers])


def threshold(scales, ratio):
    """The official global threshold: sorted(|gamma|)[int(total * ratio)]; channels strictly above survive."""
    if not 0.0 < ratio < 1.0:
        raise ValueError("prune ratio must be strictly between 0 and 1, got %r" % (ratio,))
    return np.sort(scales)[int(len(scales) * ratio)]


def channel_mask(model, ratio):
    """Flat bool mask (True = kept) for pruning a fraction `ratio` of the prunable channels."""
    scales = bn_scales(model)
    return scales > threshold(scales, ratio)


def mask_distance(a, b):
    """Normalized Hamming distance: fraction of positions where the two masks differ."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError("mask shapes differ: %s vs %s" % (a.shape, b.shape))
    if a.size == 0:
        raise ValueError("cannot compare empty masks")
    return float(np.count_nonzero(a != b)) / a.size


def split_mask(model, flat_mask):
    """Cut a flat mask into one bool array per prunable BN (same order as bn_layers)."""
    flat_mask = np.asarray(flat_mask, dtype=bool)
    sizes = [m.num_features for _, m in bn_layers(model)]
    if flat_mask.ndim != 1 or flat_mask.size != sum(sizes):
        raise ValueError("mask has %d entries, model has %d prunable BN channels" % (flat_mask.size, sum(sizes)))
    return np.split(flat_mask, np.cumsum(sizes)[:-1])


def zero_pruned_channels(model, flat_mask):
    """Set gamma and beta of the masked-out channels to zero in place (the 'soft' pruning of mask-impl).

    In eval mode such a channel outputs exactly zero after BN, so the model computes what the
    physically pruned one does (used to check pruning, and for the official 'mask' variant).
    """
    for (_, bn), keep in zip(bn_layers(model), split_mask(model, flat_mask)):
        drop = torch.as_tensor(np.flatnonzero(~keep), dtype=torch.long, device=bn.weight.device)
        bn.weight.data[drop] = 0.0
        bn.bias.data[drop] = 0.0
