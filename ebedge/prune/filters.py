"""Which weights define each prunable channel, and per-layer keep masks over them.

The baselines score channels by their weights rather than by BN scales (SNIP: |g * w| of a
filter, SFP: the filter's L2 norm), yet they prune through the same physical pruning, which
takes a flat keep-mask over `bn_layers`. This module bridges the two.

A prunable BN's channels are produced by the conv right before it (VGG: every conv; ResNet: the
inner convs of a block; PreResNet: conv1 -> bn2 and conv2 -> bn3). PreResNet's block-input bn1 and
final bn sit on the residual trunk, which no single conv produces; their channels are defined by
the layer that reads them through the channel selection (the block's conv1, or fc). The trunk BNs
of an all-bn ResNet (stem, each block's last, downsample) are role "trunk": these methods keep them.
"""
import numpy as np
import torch

from ebedge.models.preresnet import PreResNet
from ebedge.models.resnet import PrunableResNet
from ebedge.models.vgg import VGG
from ebedge.prune.masks import bn_layers


def kept_count(channels, ratio):
    """Channels a layer keeps when a fraction `ratio` is pruned per layer (at least one)."""
    return max(1, channels - int(channels * ratio))


def channel_weights(model):
    """[(bn_name, weight, role, select)] in bn_layers order.

    role "produces": weight's dim 0 is the BN's channels (a conv filter per channel);
    role "reads": weight's dim 1 holds the channels picked by `select` (a ChannelSelect);
    role "trunk": no weight (None); the channels are kept.
    """
    modules = dict(model.named_modules())
    out = []
    for name, bn in bn_layers(model):
        prefix, _, leaf = name.rpartition(".")
        if isinstance(model, VGG):
            index = int(leaf)
            out.append((name, model.features[index - 1].weight, "produces", None))
        elif isinstance(model, PrunableResNet):
            block = modules[prefix] if prefix else None
            inner = ("bn1",) if not hasattr(block, "conv3") else ("bn1", "bn2")
            if block is not None and leaf in inner and "downsample" not in prefix:
                out.append((name, getattr(block, "conv" + leaf[2:]).weight, "produces", None))
            else:
                out.append((name, None, "trunk", None))
        elif isinstance(model, PreResNet):
            if name == "bn":
                out.append((name, model.fc.weight, "reads", model.select))
            elif leaf == "bn1":
                block = modules[prefix]
                out.append((name, block.conv1.weight, "reads", block.select))
            else:  # bn2 <- conv1, bn3 <- conv2
                block = modules[prefix]
                out.append((name, getattr(block, "conv%d" % (int(leaf[2:]) - 1)).weight,
                            "produces", None))
        else:
            raise ValueError("no channel weights known for %s" % type(model).__name__)
    return out


def channel_scores(model, weight_score):
    """[(bn_name, scores, role)]: `weight_score(weight)` (same shape) summed per channel.

    A trunk channel that the selection does not pass on scores 0; a "trunk" BN's channels score
    +inf (always kept).
    """
    out = []
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, weight, role, select in channel_weights(model):
            if role == "trunk":
                out.append((name, np.full(modules[name].num_features, np.inf), role))
                continue
            score = weight_score(weight).detach()
            if role == "produces":
                per_channel = score.reshape(score.size(0), -1).sum(1).cpu().numpy()
            else:
                bn = dict(model.named_modules())[name]
                picked = score.transpose(0, 1).reshape(score.size(1), -1).sum(1).cpu().numpy()
                per_channel = np.zeros(bn.num_features, dtype=picked.dtype)
                per_channel[select.indices.cpu().numpy()] = picked
            out.append((name, per_channel, role))
    return out


def per_layer_mask(scores, ratio, roles=("produces",)):
    """Flat keep-mask: in each layer whose role is in `roles`, the top `kept_count` scores;
    other layers are kept whole."""
    parts = []
    for _, s, role in scores:
        keep = np.ones(len(s), dtype=bool)
        if role in roles:
            keep[:] = False
            keep[np.argsort(-s, kind="stable")[:kept_count(len(s), ratio)]] = True
        parts.append(keep)
    return np.concatenate(parts)


def global_mask(scores, ratio):
    """Flat keep-mask: one global ranking over every channel, the top (1 - ratio) kept."""
    flat = np.concatenate([s for _, s, _ in scores])
    keep = np.zeros(flat.size, dtype=bool)
    keep[np.argsort(-flat, kind="stable")[:flat.size - int(flat.size * ratio)]] = True
    return keep


def zero_weakest_filters(model, ratio):
    """In every prunable conv, zero the weights of the filters outside the top `kept_count` by L2
    norm. Nothing else is touched, so their gradients stay alive and they can recover."""
    with torch.no_grad():
        for bn_name, weight, role, _ in channel_weights(model):
            if role != "produces":
                continue
            norms = weight.reshape(weight.size(0), -1).norm(dim=1)
            weakest = torch.argsort(norms)[:weight.size(0) - kept_count(weight.size(0), ratio)]
            weight[weakest] = 0.0
