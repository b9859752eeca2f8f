"""Global |gamma| masks, mask distance and per-layer splitting."""
import numpy as np
import pytest
import torch

from ebedge.models import build_model
from ebedge.prune.masks import (bn_layers, bn_scales, channel_mask, mask_distance, split_mask,
                                zero_pruned_channels)


def _model_with_scales(values):
    """A small VGG whose prunable gammas are `values` (one per channel, in module order)."""
    model = build_model("vgg11", width=1.0 / 32)
    start = 0
    for _, bn in bn_layers(model):
        n = bn.num_features
        bn.weight.data.copy_(torch.as_tensor(values[start:start + n], dtype=torch.float32))
        start += n
    assert start == len(values)
    return model


def _total(model):
    return sum(bn.num_features for _, bn in bn_layers(model))


def test_mask_distance_hand_cases():
    assert mask_distance([1, 1, 0, 0], [1, 0, 0, 1]) == 0.5
    assert mask_distance([True] * 8, [True] * 8) == 0.0
    assert mask_distance([1, 0, 1, 0, 1], [0, 1, 0, 1, 0]) == 1.0
    assert mask_distance(np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], bool), np.array([1] * 9 + [0], bool)) == 0.1


def test_mask_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        mask_distance([1, 0], [1, 0, 1])


def test_global_threshold_keeps_channels_strictly_above_the_official_cut():
    total = _total(build_model("vgg11", width=1.0 / 32))
    rng = np.random.RandomState(0)
    values = rng.permutation(np.arange(1, total + 1)) * rng.choice([-1.0, 1.0], size=total) / total
    model = _model_with_scales(values)
    for ratio in (0.3, 0.5, 0.7):
        mask = channel_mask(model, ratio)
        cut = int(total * ratio)
        # |values| are 1..total / total: the kept ones are exactly the ranks above position `cut`.
        assert mask.dtype == bool and mask.shape == (total,)
        assert mask.sum() == total - cut - 1
        assert np.array_equal(mask, np.abs(values) * total > cut + 1)


def test_ratio_outside_open_interval_is_rejected():
    model = build_model("vgg11", width=1.0 / 32)
    for ratio in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            channel_mask(model, ratio)


def test_scales_and_split_follow_module_order():
    model = build_model("vgg11", width=1.0 / 16)
    layers = bn_layers(model)
    for i, (_, bn) in enumerate(layers):
        bn.weight.data.fill_(-(i + 1.0))
    scales = bn_scales(model)
    parts = split_mask(model, scales > 0)
    assert [p.size for p in parts] == [bn.num_features for _, bn in layers]
    assert np.array_equal(np.unique(scales), np.arange(1.0, len(layers) + 1))
    with pytest.raises(ValueError):
        split_mask(model, np.ones(scales.size + 1, bool))


def test_bn_layers_per_architecture():
    pre = build_model("preresnet101", width=0.125)
    names = [n for n, _ in bn_layers(pre)]
    assert "layer1.0.bn1" in names and names[-1] == "bn" and len(names) == 3 * 33 + 1
    assert sum(bn.num_features for _, bn in bn_layers(build_model("preresnet101"))) == 7408
    assert sum(bn.num_features for _, bn in bn_layers(build_model("vgg16"))) == 4224
    r18 = [n for n, _ in bn_layers(build_model("resnet18", width=0.125, prune_scope="inner-only"))]
    assert r18 == ["layer%d.%d.bn1" % (s, b) for s in range(1, 5) for b in range(2)]
    r50 = [n for n, _ in bn_layers(build_model("resnet50", width=0.125, prune_scope="inner-only"))]
    assert len(r50) == 32 and not any(n.endswith("bn3") or n == "bn1" for n in r50)
    # the official scope (default): every BN2d, stem and downsample included
    r18 = [n for n, _ in bn_layers(build_model("resnet18", width=0.125))]
    assert len(r18) == 1 + 8 * 2 + 3 and r18[0] == "bn1" and "layer2.0.downsample.1" in r18
    r50 = build_model("resnet50")
    assert [n for n, _ in bn_layers(r50)] == [n for n, m in r50.named_modules()
                                               if isinstance(m, torch.nn.BatchNorm2d)]


def test_zero_pruned_channels_zeroes_gamma_and_beta_of_dropped_channels_only():
    model = build_model("vgg11", width=1.0 / 16)
    for _, bn in bn_layers(model):
        bn.bias.data.fill_(0.25)
    mask = np.arange(_total(model)) % 3 != 0
    zero_pruned_channels(model, mask)
    gammas = np.concatenate([bn.weight.detach().numpy() for _, bn in bn_layers(model)])
    betas = np.concatenate([bn.bias.detach().numpy() for _, bn in bn_layers(model)])
    assert np.all(gammas[~mask] == 0) and np.all(betas[~mask] == 0)
    assert np.all(gammas[mask] == 0.5) and np.all(betas[mask] == 0.25)
