"""Physical pruning builds a smaller network that computes what the masked dense one computes."""
import logging

import numpy as np
import pytest
import torch

from ebedge.training.flops import count_params, forward_macs
from ebedge.models import build_model, input_size
from ebedge.prune.masks import bn_layers, channel_mask, zero_pruned_channels
from ebedge.prune.physical import prune_by_ratio, prune_model


def _trained_looking(model, seed=0):
    """Spread gammas, betas and running stats as training would, so pruning is not trivial."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.data.copy_(torch.rand(n, generator=gen) * 2 - 0.5)
            m.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
    return model.eval()


def _check_equivalent(name, width, ratio, size=None, tol=1e-5):
    dense = _trained_looking(build_model(name, width=width))
    mask = channel_mask(dense, ratio)
    pruned, report = prune_model(dense, mask)
    assert report.guarded_layers == []
    assert report.kept_channels == int(mask.sum()) and report.total_channels == mask.size
    rebuilt = build_model(name, cfg=report.cfg, width=width)
    assert count_params(pruned) == count_params(rebuilt) == report.params_after
    assert report.params_after < report.params_before == count_params(dense)
    zero_pruned_channels(dense, mask)
    x = torch.randn((2,) + (size or input_size(name)), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = dense(x), pruned(x)
    assert torch.allclose(got, expected, atol=tol, rtol=0), (got - expected).abs().max()
    return dense, pruned, report


def test_vgg16_full_width_prunes_to_cfg_and_matches_masked_dense():
    _, pruned, report = _check_equivalent("vgg16", 1.0, 0.5)
    convs = [m for m in pruned.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [v for v in report.cfg if v != "M"]
    assert pruned.classifier.in_features == convs[-1].out_channels
    assert forward_macs(pruned, (3, 32, 32)) < forward_macs(build_model("vgg16"), (3, 32, 32))


@pytest.mark.slow  # full-width PreResNet
def test_preresnet101_full_width_keeps_trunk_and_matches_masked_dense():
    dense, pruned, report = _check_equivalent("preresnet101", 1.0, 0.4, tol=1e-4)
    pruned_modules = dict(pruned.named_modules())
    for name, module in dense.named_modules():
        if name.endswith("conv3"):
            assert pruned_modules[name].out_channels == module.out_channels
        if "downsample" in name and isinstance(module, torch.nn.Conv2d):
            assert pruned_modules[name].weight.shape == module.weight.shape
    block = pruned.layer2[3]
    assert block.select.indices.numel() == report.cfg[3 * (11 + 3)] == block.conv1.in_channels
    assert pruned.select.indices.numel() == report.cfg[-1] == pruned.fc.in_features


@pytest.mark.parametrize("name", ["resnet18", pytest.param("resnet50", marks=pytest.mark.slow)])
def test_resnet_inner_only_channels_prune_and_match(name):
    dense = _trained_looking(build_model(name, width=0.125, prune_scope="inner-only"))
    mask = channel_mask(dense, 0.5)
    pruned, report = prune_model(dense, mask)
    assert pruned.layer1[0].conv1.out_channels == report.cfg[0]
    assert count_params(pruned) == count_params(
        build_model(name, cfg=report.cfg, width=0.125, prune_scope="inner-only"))
    zero_pruned_channels(dense, mask)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(pruned(x), dense(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["resnet18", pytest.param("resnet50", marks=pytest.mark.slow)])
def test_resnet_official_scope_selects_block_inputs_and_matches(name):
    """Every BN thresholded (official resprune.py): block inputs and fc read only the channels
    their feeding BN keeps; the trunk keeps its width with those BNs' pruned channels zeroed. The
    pruned network equals the masked one whose selected-away input columns are zeroed too."""
    from ebedge.prune.masks import split_mask
    from ebedge.prune.physical import _resnet_selects
    dense = _trained_looking(build_model(name, width=0.125))
    mask = channel_mask(dense, 0.5)
    pruned, report = prune_model(dense, mask)
    assert report.guarded_layers == []
    keep = dict(zip([n for n, _ in bn_layers(dense)], split_mask(dense, mask)))
    assert pruned.layer2[1].conv1.in_channels == int(keep["layer2.0.bn%d" % (
        3 if name == "resnet50" else 2)].sum()) == pruned.layer2[1].conv1.indices.numel()
    assert pruned.fc.in_features == report.cfg[-1] < dense.fc.in_features
    assert pruned.layer3[0].downsample[0].weight.shape == dense.layer3[0].downsample[0].weight.shape
    assert count_params(pruned) == count_params(build_model(name, cfg=report.cfg, width=0.125))
    zero_pruned_channels(dense, mask)
    with torch.no_grad():
        for feeding, reader, _ in _resnet_selects(dense):
            reader.weight[:, ~torch.as_tensor(keep[feeding])] = 0
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(pruned(x), dense(x), atol=1e-5, rtol=0)
    twice, again = prune_model(pruned, channel_mask(_trained_looking(pruned, seed=3), 0.3))
    assert again.params_after < report.params_after


@pytest.mark.slow  # full-width PreResNet
def test_pruning_a_pruned_preresnet_again_stays_consistent():
    dense = _trained_looking(build_model("preresnet101", width=0.5))
    once, first = prune_by_ratio(dense, 0.2)
    _trained_looking(once, seed=5)
    mask = channel_mask(once, 0.4)
    twice, report = prune_model(once, mask)
    assert first.guarded_layers == [] and report.guarded_layers == []
    assert count_params(twice) == count_params(build_model("preresnet101", cfg=report.cfg, width=0.5))
    assert report.params_after < first.params_after
    # a block input can only keep channels the first pruning still selected
    for old, new in zip(once.modules(), twice.modules()):
        if hasattr(new, "indices"):
            assert set(new.indices.tolist()) <= set(old.indices.tolist())
    zero_pruned_channels(once, mask)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(twice(x), once(x), atol=1e-4, rtol=0)


def test_layer_with_only_tiny_gammas_keeps_its_largest_channel(caplog):
    model = _trained_looking(build_model("vgg16", width=0.25))
    name, victim = bn_layers(model)[4]
    victim.weight.data.uniform_(1e-6, 1e-5)
    victim.weight.data[3] = 2e-5
    mask = channel_mask(model, 0.3)
    assert not mask[sum(bn.num_features for _, bn in bn_layers(model)[:4]):][:victim.num_features].any()
    with caplog.at_level(logging.WARNING):
        pruned, report = prune_model(model, mask)
    assert report.guarded_layers == [name] and name in caplog.text
    assert [v for v in report.cfg if v != "M"][4] == 1
    kept_gamma = [bn for n, bn in bn_layers(pruned)][4].weight.item()
    assert kept_gamma == pytest.approx(2e-5)
    with torch.no_grad():
        assert pruned(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_guard_on_a_preresnet_block_input_keeps_one_selected_channel():
    model = _trained_looking(build_model("preresnet101", width=0.25))
    bn = model.layer1[2].bn1
    bn.weight.data.fill_(1e-7)
    bn.weight.data[5] = 1e-6
    pruned, report = prune_by_ratio(model, 0.5)
    assert "layer1.2.bn1" in report.guarded_layers
    assert pruned.layer1[2].select.indices.tolist() == [5]
    with torch.no_grad():
        assert pruned(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_training_mode_is_preserved_and_unknown_models_are_refused():
    model = build_model("vgg11", width=0.125).train()
    pruned, _ = prune_by_ratio(model, 0.5)
    assert pruned.training and pruned.arch == "vgg11"
    with pytest.raises(ValueError):
        prune_model(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)), np.ones(4, bool))
