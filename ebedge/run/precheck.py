"""The pre-run check of a cell, without data or training: `ebedge bench SUITE --check`.

For one resolved settings dict: the method's own check, then the dense model built, the layers
the method prunes given a mask of the method's kind (global channels, per-layer filters, ThiNet's
in-block layers, unstructured weights), the pruned shape built from it and one forward pass of a
zero image through it. A cell that passes cannot fail later for its model/method pairing; weights
are untrained, so the widths are what-if widths, not the ticket's.
"""
import numpy as np
import torch

from ebedge.training import flops
from ebedge import models
from ebedge.errors import EbedgeError
from ebedge.config import catalog
from ebedge.prune import thinet
from ebedge.prune import weight_masks
from ebedge.prune.filters import channel_scores, global_mask, kept_count, per_layer_mask
from ebedge.prune.masks import bn_layers
from ebedge.prune.physical import prune_model

CLASSES = {"cifar10": 10, "cifar100": 100, "synthetic": 10}
_checked = {}  # (model, classes, mask kind, ratio, width) -> description: a shape is checked once


def _mask(model, kind, ratio):
    """A what-if mask of `kind` (ebedge.config.catalog.MASK_KINDS) at `ratio`."""
    if kind == "per-layer filters":
        return per_layer_mask(channel_scores(model, lambda w: w * w), ratio)
    if kind == "global filters":
        return global_mask(channel_scores(model, torch.abs), ratio)
    if kind == "in-block layers":
        parts = []
        for (_, bn), consumer in zip(bn_layers(model), thinet.consumers(model)):
            keep = np.ones(bn.num_features, dtype=bool)
            if consumer is not None:
                keep[kept_count(bn.num_features, ratio):] = False
            parts.append(keep)
        return np.concatenate(parts)
    return flops.uniform_mask(model, ratio)  # the BN-scale methods: a what-if global mask


def check_cell(settings):
    """Raise EbedgeError naming the problem if the cell cannot run; else a one-line description
    of the dense and pruned shapes."""
    catalog.check(settings)
    name = settings.model
    classes = CLASSES.get(settings.dataset, 1000 if name in ("resnet18", "resnet50") else 10)
    kind = catalog.get(settings.method).mask_kind
    key = (name, classes, kind, settings.prune_ratio[0], settings.width,
           settings.resnet_prune_scope)
    if key not in _checked:
        _checked[key] = _check_shapes(settings, name, classes, kind)
    return _checked[key]


def _check_shapes(settings, name, classes, kind):
    try:
        model = models.build_model(name, classes, width=settings.width,
                                   prune_scope=settings.resnet_prune_scope)
        size = models.input_size(name)
        dense = flops.forward_flops(model, size)
        if kind == "dense":
            return "dense %.4g GFLOPs/image" % (dense / 1e9)
        if kind == "weights":
            weight_masks.split(model, weight_masks.global_keep_mask(
                weight_masks.score_weights(model, torch.abs), settings.prune_ratio[0]))
            return "dense shape kept (unstructured) %.4g GFLOPs/image" % (dense / 1e9)
        pruned, report = prune_model(model, _mask(model, kind, settings.prune_ratio[0]))
        pruned_flops = flops.forward_flops(pruned, size)
    except (ValueError, RuntimeError, KeyError, IndexError, AttributeError) as exc:
        raise EbedgeError("%s on %s cannot be pruned: %s: %s"
                          % (settings.method, name, type(exc).__name__, exc))
    return "dense %.4g -> pruned %.4g GFLOPs/image (%d of %d channels)" % (
        dense / 1e9, pruned_flops / 1e9, report.kept_channels, report.total_channels)
