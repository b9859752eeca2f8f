"""Unstructured (weight-level) pruning for LT and SNIP: a keep-mask over every conv and linear
weight, applied by zeroing, held by re-zeroing after every optimizer step.

The network keeps its dense shape, so its FLOPs, time and energy are those of the dense network
(no sparse kernels on the device): that is how the EB paper's Table 2 prices LT (2 x dense) and
SNIP (1 x dense). `kept_weights` / `total_weights` say how sparse the network is.
"""
import numpy as np
import torch


def prunable_weights(model):
    """The weights unstructured pruning scores: every conv and linear weight (biases and BN stay)."""
    return [p for p in model.parameters() if p.dim() > 1]


def global_keep_mask(scores, ratio):
    """Flat bool mask keeping the top (1 - ratio) of `scores` (one global ranking)."""
    keep = np.zeros(scores.numel(), dtype=bool)
    keep[torch.topk(scores, scores.numel() - int(scores.numel() * ratio))[1].cpu().numpy()] = True
    return keep


def score_weights(model, score):
    """score(weight) of every prunable weight, flattened and concatenated (CPU tensor)."""
    with torch.no_grad():
        return torch.cat([score(p).flatten() for p in prunable_weights(model)]).cpu()


def split(model, keep):
    """The flat mask as one float tensor per prunable weight, on the weight's device."""
    masks, start = [], 0
    for p in prunable_weights(model):
        part = keep[start:start + p.numel()].reshape(p.shape)
        masks.append(torch.as_tensor(part.astype(np.float32), device=p.device))
        start += p.numel()
    return masks


def apply(model, masks):
    with torch.no_grad():
        for p, m in zip(prunable_weights(model), masks):
            p.mul_(m)


def holder(model, keep):
    """An `after_step` hook that keeps the removed weights at zero."""
    masks = split(model, keep)
    return lambda m: apply(m, masks)


def pack(keep):
    return np.packbits(keep), int(keep.size)


def unpack(packed):
    bits, size = packed
    return np.unpackbits(np.asarray(bits, dtype=np.uint8))[:size].astype(bool)
