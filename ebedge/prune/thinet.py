"""ThiNet's channel selection (Luo et al., ICCV 2017): keep the channels the next layer needs
to reconstruct its output, chosen greedily on sampled outputs (the method: ebedge.methods.thinet)."""
import numpy as np
import torch
import torch.nn as nn

from ebedge.models.preresnet import PreResNet
from ebedge.models.vgg import VGG
from ebedge.prune.filters import kept_count
from ebedge.prune.masks import bn_layers

SAMPLE_BATCHES = 4  # training batches whose activations are sampled
POINTS_PER_IMAGE = 10  # sampled (location, output channel) points per image, as in the paper


def consumers(model):
    """Per prunable BN (bn_layers order), the layer whose output its channels are selected to
    reconstruct, or None where the layer is kept whole (trunk channels)."""
    if isinstance(model, VGG):
        convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
        return convs[1:] + [model.classifier]
    modules = dict(model.named_modules())
    out = []
    for name, _ in bn_layers(model):
        prefix, _, leaf = name.rpartition(".")
        block = modules.get(prefix) if prefix else None
        if isinstance(model, PreResNet):
            inside = {"bn2": "conv2", "bn3": "conv3"}
        elif hasattr(block, "conv3"):  # ResNet bottleneck: conv1 and conv2 outputs stay inside
            inside = {"bn1": "conv2", "bn2": "conv3"}
        else:  # ResNet basic block: conv1's output stays inside
            inside = {"bn1": "conv2"}
        following = inside.get(leaf) if block is not None else None
        out.append(getattr(block, following) if following else None)
    return out


def select_channels(ctx, model):
    """Flat keep-mask over bn_layers(model) by greedy reconstruction of each consumer's output."""
    ratio = ctx.settings.prune_ratio[0]
    layers = bn_layers(model)
    targets = consumers(model)
    with ctx.phase("prune"):
        used = [c for c in targets if c is not None]
        sampled, images = _sample_contributions(ctx, model, used)
        by_layer = dict(zip([id(c) for c in used], sampled))
        keep = []
        for (_, bn), consumer in zip(layers, targets):
            layer = np.ones(bn.num_features, dtype=bool)
            if consumer is not None:
                count = bn.num_features - kept_count(bn.num_features, ratio)
                layer[greedy_removal(by_layer[id(consumer)], count)] = False
            keep.append(layer)
    ctx.add_flops("prune", ctx.forward_flops(model) * images)
    return np.concatenate(keep)


def _sample_contributions(ctx, model, consumers):
    """Per consumer, an (m, C_in) tensor: each input channel's term of m sampled outputs."""
    gen = torch.Generator().manual_seed(int(ctx.settings.seed))
    parts = [[] for _ in consumers]
    handles = [layer.register_forward_hook(_collector(layer, parts[i], gen))
               for i, layer in enumerate(consumers)]
    images = 0
    model.eval()
    try:
        with torch.no_grad():
            for batch, (x, _) in enumerate(ctx.train_loader):
                if batch == SAMPLE_BATCHES:
                    break
                model(x.to(ctx.device))
                images += x.size(0)
    finally:
        for h in handles:
            h.remove()
    return [torch.cat(p) for p in parts], images


def _collector(layer, out, gen):
    def hook(module, inputs, output):
        out.append(contributions(layer, inputs[0], gen))
    return hook


def contributions(layer, x, gen):
    """Terms of POINTS_PER_IMAGE random outputs per image of `layer`, split by input channel."""
    n = x.size(0)
    m = n * POINTS_PER_IMAGE
    images = torch.arange(n).repeat_interleave(POINTS_PER_IMAGE)
    weight = layer.weight
    outs = torch.randint(0, weight.size(0), (m,), generator=gen)
    if isinstance(layer, nn.Linear):
        return x[images.to(x.device)] * weight[outs.to(x.device)]
    kh, kw = layer.kernel_size
    ph, pw = layer.padding
    sh, sw = layer.stride
    padded = nn.functional.pad(x, (pw, pw, ph, ph))
    rows = torch.randint(0, (x.size(2) + 2 * ph - kh) // sh + 1, (m,), generator=gen) * sh
    cols = torch.randint(0, (x.size(3) + 2 * pw - kw) // sw + 1, (m,), generator=gen) * sw
    r = (rows[:, None] + torch.arange(kh)).to(x.device)
    c = (cols[:, None] + torch.arange(kw)).to(x.device)
    channels = torch.arange(x.size(1), device=x.device)
    patches = padded[images.to(x.device)[:, None, None, None], channels[None, :, None, None],
                     r[:, None, :, None], c[:, None, None, :]]  # (m, C, kh, kw)
    return (patches * weight[outs.to(x.device)]).sum((2, 3))


def greedy_removal(z, count):
    """Indices of `count` channels whose summed terms stay smallest, chosen one at a time.

    ||t + z_c||^2 = ||t||^2 + 2 t.z_c + ||z_c||^2, so each step is one matrix-vector product.
    """
    total = torch.zeros(z.size(0), dtype=z.dtype, device=z.device)
    square = (z * z).sum(0)
    removed = []
    available = torch.ones(z.size(1), dtype=torch.bool, device=z.device)
    for _ in range(count):
        cost = 2 * (total @ z) + square
        cost[~available] = float("inf")
        best = int(torch.argmin(cost))
        removed.append(best)
        available[best] = False
        total += z[:, best]
    return removed
