"""ThiNet (Luo et al., ICCV 2017): keep the channels the next layer needs to reconstruct its output.

Paper: on a pretrained VGG-16, layer by layer, sample (image, location, output channel) points
of the NEXT layer; each input channel contributes one term to that output; greedily remove the
channel whose removal (with those already removed) changes the sampled outputs least, at a
uniform per-layer ratio; rescale the remaining weights by least squares; fine-tune briefly after
each layer and longer at the end.

What we do, as the EB paper's comparison (train dense, prune, retrain) asks: `search` trains the
dense network for the whole schedule (plain training, no BN L1 term: the criterion does not use
BN scales); `prune` samples the next layer's inputs from a few training batches (their forward
FLOPs are counted), runs the greedy selection for every conv at ratio p, prunes physically;
`retrain` fine-tunes for as many epochs as the search (settings["retrain_epochs"] overrides),
like NS. Deliberate differences: all layers are selected in one pass over the unpruned
network's activations, no least-squares rescaling and no per-layer fine-tuning (the final
fine-tuning recovers what those would). VGG only: the residual nets' trunk channels have no
single next layer to reconstruct, and the paper prunes only inner block layers there.
"""
import numpy as np
import torch
import torch.nn as nn

from ebedge.errors import EbedgeError
from ebedge.methods.filters import kept_count
from ebedge.methods.stages import Search, prune_stage, pruned_fields, retrain_stage
from ebedge.models.vgg import VGG_CFGS

SUPPORTED = tuple(sorted(VGG_CFGS))
SAMPLE_BATCHES = 4  # training batches whose activations are sampled
POINTS_PER_IMAGE = 10  # sampled (location, output channel) points per image, as in the paper


def check(settings):
    if settings["model"] not in SUPPORTED:
        raise EbedgeError("method thinet supports only %s, not model %r"
                          % (", ".join(SUPPORTED), settings["model"]))


def run(ctx):
    search = Search(ctx, stop_on_ticket=False, sparsity=0.0)
    trained = search.run()
    mask = None if ctx.is_finished("prune") else select_channels(ctx, trained)
    pruned = prune_stage(ctx, trained, mask)
    epochs = ctx.settings["epochs"]
    retrain_stage(ctx, pruned, epochs=epochs)
    return ctx.result(eb_epoch=None, eb_epochs=search.eb_epochs(), ticket_epoch=epochs,
                      searched_epochs=epochs, **pruned_fields(ctx))


def select_channels(ctx, model):
    """Flat keep-mask over the VGG convs (bn_layers order) by greedy reconstruction."""
    ratio = ctx.settings["prune_ratio"][0]
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    consumers = convs[1:] + [model.classifier]
    with ctx.phase("prune"):
        contributions, images = _sample_contributions(ctx, model, consumers)
        keep = []
        for conv, z in zip(convs, contributions):
            removed = greedy_removal(z, conv.out_channels - kept_count(conv.out_channels, ratio))
            layer = np.ones(conv.out_channels, dtype=bool)
            layer[removed] = False
            keep.append(layer)
    ctx.add_flops("prune", ctx.forward_flops(model) * images)
    return np.concatenate(keep)


def _sample_contributions(ctx, model, consumers):
    """Per consumer, an (m, C_in) tensor: each input channel's term of m sampled outputs."""
    gen = torch.Generator().manual_seed(int(ctx.settings["seed"]))
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
    padded = nn.functional.pad(x, (pw, pw, ph, ph))
    rows = torch.randint(0, x.size(2) + 2 * ph - kh + 1, (m,), generator=gen)
    cols = torch.randint(0, x.size(3) + 2 * pw - kw + 1, (m,), generator=gen)
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
