"""SNIP (Lee et al., ICLR 2019), at channel level: prune at initialisation, then train.

Paper: at initialisation, one mini-batch gives each weight's connection sensitivity |g * w|
(g = dLoss/dw); the weights outside the global top (1 - p) are removed for good and the sparse
network is trained for the whole schedule. That is unstructured: the network keeps its dense
shape, so on a GPU it saves no FLOPs, time or energy.

What we do by default (deliberate difference): the same sensitivity, summed per output channel
over the filter that produces it (see methods/filters.py for the residual nets), one global
ranking, keep the top (1 - p) of channels, prune physically, train the smaller network for the
whole schedule (settings["retrain_epochs"] overrides). Phases: the scoring pass (one forward and
backward on the dense net, its FLOPs counted) is the `search`; then `prune`, `retrain`, `eval`.

settings["snip_unstructured"] = True runs the original: weights zeroed and kept at zero after
every step, the network dense; its FLOPs are counted as dense (no sparse kernels on the device),
and `kept_weights` / `total_weights` say how sparse it is.
"""
import numpy as np
import torch
import torch.nn.functional as F

from ebedge import flops
from ebedge.methods.filters import channel_scores, global_mask
from ebedge.methods.stages import prune_stage, pruned_fields, retrain_stage
from ebedge.prune.masks import bn_layers


def run(ctx):
    unstructured = ctx.settings["snip_unstructured"]
    model = score_stage(ctx, unstructured)
    kept = _unpack(ctx.carry["snip_mask"])
    if unstructured:
        model = mask_stage(ctx, model, kept)
        masks = _split_weights(model, kept)
        retrain_stage(ctx, model, epochs=ctx.settings["epochs"],
                      after_step=lambda m: _apply(m, masks))
        fields = {"kept_weights": int(kept.sum()), "total_weights": int(kept.size)}
    else:
        model = prune_stage(ctx, model, kept)
        retrain_stage(ctx, model, epochs=ctx.settings["epochs"])
        fields = {}
    return ctx.result(eb_epoch=None, eb_epochs={}, searched_epochs=0,
                      snip_unstructured=bool(unstructured), **dict(pruned_fields(ctx), **fields))


def score_stage(ctx, unstructured):
    """Connection sensitivity of a fresh network on one mini-batch -> keep mask in ctx.carry."""
    if ctx.is_finished("search"):
        return ctx.restored_model()
    model = ctx.build_model()
    forward = ctx.forward_flops(model)
    ctx.carry["params_dense"] = flops.count_params(model)
    ctx.carry["forward_flops_dense"] = forward
    ratio = ctx.settings["prune_ratio"][0]
    with ctx.phase("search", 0):
        images, labels = next(iter(ctx.train_loader))
        model.train()
        model.zero_grad()
        F.cross_entropy(model(images.to(ctx.device)), labels.to(ctx.device)).backward()
        if unstructured:
            keep = _weight_mask(model, ratio)
        else:
            keep = global_mask(channel_scores(model, lambda w: (w.grad * w).abs()), ratio)
        model.zero_grad()
    ctx.add_flops("search", 3 * forward * images.size(0))
    ctx.carry["snip_mask"] = (np.packbits(keep), int(keep.size))
    ctx.finish_stage("search", model)
    return model


def _weights(model):
    """The weights SNIP scores: every conv and linear weight (biases and BN stay)."""
    return [p for p in model.parameters() if p.dim() > 1]


def _weight_mask(model, ratio):
    with torch.no_grad():
        scores = torch.cat([(p.grad * p).abs().flatten() for p in _weights(model)]).cpu()
    keep = np.zeros(scores.numel(), dtype=bool)
    keep[torch.topk(scores, scores.numel() - int(scores.numel() * ratio))[1].numpy()] = True
    return keep


def _split_weights(model, keep):
    masks, start = [], 0
    for p in _weights(model):
        part = keep[start:start + p.numel()].reshape(p.shape)
        masks.append(torch.as_tensor(part.astype(np.float32), device=p.device))
        start += p.numel()
    return masks


def _apply(model, masks):
    with torch.no_grad():
        for p, m in zip(_weights(model), masks):
            p.mul_(m)


def mask_stage(ctx, model, keep):
    """Unstructured 'pruning': zero the removed weights; the network keeps its dense shape."""
    if ctx.is_finished("prune"):
        return ctx.restored_model()
    with ctx.phase("prune"):
        _apply(model, _split_weights(model, keep))
    channels = sum(bn.num_features for _, bn in bn_layers(model))
    ctx.carry["prune"] = {"cfg": model.cfg, "kept_channels": channels,
                          "total_channels": channels, "guarded_layers": [],
                          "params_pruned": ctx.carry["params_dense"],
                          "forward_flops_pruned": ctx.carry["forward_flops_dense"]}
    ctx.finish_stage("prune", model)
    return model


def _unpack(packed):
    bits, size = packed
    return np.unpackbits(bits)[:size].astype(bool)
