"""Analytic per-layer MACs and FLOPs, and the training-FLOPs convention that reproduces the paper.

Conventions (the ones that reproduce Early-Bird Table 2, see docs/reference/eb-train.md section 5):
  MACs          conv: k*k*Cin/groups * Cout*Hout*Wout; linear: in*out; biases not counted;
  FLOPs         = 2 x MACs (what torch.utils.flop_counter reports);
  training step = 3 x forward (backward ~ 2 x forward), so train FLOPs = 3 * forward FLOPs * images * epochs.
BN, ReLU, pooling and other elementwise work is reported per layer as `other_ops` and kept out of
MACs/FLOPs. Shapes come from one forward pass of a zero image through hooks on the leaf modules;
everything else is a formula, so the count works on any torch the device has (1.10 included).
"""
import torch
import torch.nn as nn

from ebedge import models
from ebedge.config.schedules import method_epochs

TRAIN_STEP_FACTOR = 3
FLOPS_PER_MAC = 2

_POOLS = (nn.MaxPool2d, nn.AvgPool2d)
_ADAPTIVE_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


def _macs_and_other(module, inp, out):
    """(MACs, other elementwise ops) of one call, per image."""
    out_numel = out[0].numel()
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return kh * kw * (module.in_channels // module.groups) * out_numel, 0
    if isinstance(module, nn.Linear):
        return module.in_features * (out_numel // module.out_features) * module.out_features, 0
    if isinstance(module, _NORMS):
        return 0, 2 * out_numel
    if isinstance(module, (nn.ReLU, nn.ReLU6)):
        return 0, out_numel
    if isinstance(module, _POOLS):
        kh, kw = _pair(module.kernel_size)
        return 0, kh * kw * out_numel
    if isinstance(module, _ADAPTIVE_POOLS):
        return 0, inp[0].numel()
    return 0, 0


def layer_macs(model, input_size):
    """One dict per leaf-module call: name, type, macs, other_ops, params, out_shape (batch of 1)."""
    rows, handles = [], []

    def hook(name):
        def record(module, inp, out):
            macs, other = _macs_and_other(module, inp, out)
            rows.append({"name": name, "type": type(module).__name__, "macs": int(macs),
                         "other_ops": int(other), "params": sum(p.numel() for p in module.parameters(False)),
                         "out_shape": tuple(out.shape[1:])})
        return record

    for name, module in model.named_modules():
        if not list(module.children()):
            handles.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1,) + tuple(input_size), device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return rows


def forward_macs(model, input_size):
    """Multiply-accumulates of one forward pass of one image (conv + linear only)."""
    return sum(row["macs"] for row in layer_macs(model, input_size))


def forward_flops(model, input_size):
    return FLOPS_PER_MAC * forward_macs(model, input_size)


def train_flops(forward_flops_per_image, images, epochs):
    """Training FLOPs: a step costs 3 x forward, over `images` per epoch for `epochs` epochs."""
    return TRAIN_STEP_FACTOR * forward_flops_per_image * images * epochs


def summary(model, input_size, images, epochs):
    """forward_macs, forward_flops, params and train_flops of `model` in one dict."""
    macs = forward_macs(model, input_size)
    return {"forward_macs": macs, "forward_flops": FLOPS_PER_MAC * macs, "params": count_params(model),
            "train_flops": train_flops(FLOPS_PER_MAC * macs, images, epochs)}


def flops_from_cfg(name, cfg=None, num_classes=10, width=1.0, input_size=None):
    """summary-style dict (without training terms) of build_model(name, num_classes, cfg, width)."""
    model = models.build_model(name, num_classes, cfg=cfg, width=width)
    size = input_size if input_size is not None else models.input_size(name)
    macs = forward_macs(model, size)
    return {"forward_macs": macs, "forward_flops": FLOPS_PER_MAC * macs, "params": count_params(model)}


DATASET_IMAGES = {"cifar10": 50000, "cifar100": 50000, "imagenet": 1281167, "synthetic": 2000}
DATASET_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet": 1000, "synthetic": 10}


def uniform_mask(model, ratio):
    """A keep-mask pruning `ratio` of every prunable layer (for what-if counts without training)."""
    import numpy as np
    from ebedge.prune.masks import bn_layers
    parts = []
    for _, bn in bn_layers(model):
        keep = np.zeros(bn.num_features, dtype=bool)
        keep[:max(1, int(round(bn.num_features * (1.0 - ratio))))] = True
        parts.append(keep)
    return np.concatenate(parts)


def training_cost(name, dataset="cifar10", epochs=160, images=None, prune_ratio=None, width=1.0):
    """Per-image forward cost, params and training FLOPs of `name` trained on `dataset`.

    With `prune_ratio`, the network is first pruned uniformly per layer at that ratio (a what-if:
    a real ticket's per-layer widths come from training); dense figures are kept beside it.
    """
    from ebedge.prune.physical import prune_model
    if dataset not in DATASET_IMAGES:
        raise ValueError("unknown dataset %r; choose one of: %s"
                         % (dataset, ", ".join(sorted(DATASET_IMAGES))))
    if prune_ratio is not None and not 0.0 < prune_ratio < 1.0:
        raise ValueError("prune ratio must be in (0, 1), got %g" % prune_ratio)
    if epochs < 1:
        raise ValueError("epochs must be at least 1, got %d" % epochs)
    classes = DATASET_CLASSES[dataset]
    images = images if images is not None else DATASET_IMAGES[dataset]
    size = models.input_size(name)
    model = models.build_model(name, classes, width=width)
    dense = summary(model, size, images, epochs)
    result = dict(dense, model=name, dataset=dataset, num_classes=classes, images=images,
                  epochs=epochs, prune_ratio=prune_ratio, dense=dense)
    if prune_ratio is not None:
        pruned, _ = prune_model(model, uniform_mask(model, prune_ratio))
        result.update(summary(pruned, size, images, epochs))
    return result


def method_training_flops(cost, method, eb_epoch=None, pruned_fraction=None):
    """Total training FLOPs of `method` from a `training_cost` result: dense epochs at the dense
    network's cost, pruned epochs at `pruned_fraction` of it (default: the uniform-mask network
    of cost["prune_ratio"]). Returns {"total", "dense_epochs", "pruned_epochs", "structure"}."""
    n = cost["epochs"]
    dense_epochs, pruned_epochs, structure = method_epochs(method, n, eb_epoch)
    per_epoch = cost["dense"]["train_flops"] / float(n)
    if pruned_epochs and pruned_fraction is None:
        if cost["prune_ratio"] is None:
            raise ValueError("method %s trains a pruned network: give --pruned-fraction or "
                             "--prune-ratio" % method)
        pruned_fraction = cost["forward_flops"] / float(cost["dense"]["forward_flops"])
    if pruned_fraction is not None and not 0 < pruned_fraction <= 1:
        raise ValueError("pruned fraction must be in (0, 1], got %g" % pruned_fraction)
    total = per_epoch * (dense_epochs + pruned_epochs * (pruned_fraction or 0.0))
    return {"total": total, "dense_epochs": dense_epochs, "pruned_epochs": pruned_epochs,
            "pruned_fraction": pruned_fraction, "structure": structure}
