"""--channel-multiple K (beyond the paper): kept channels rounded up per layer, top-|gamma| kept,
FLOPs counted on the network that really runs."""
import numpy as np
import torch
import torch.nn as nn

from ebedge.training import flops
from ebedge.models import build_model
from ebedge.prune.masks import bn_layers, channel_mask, split_mask
from ebedge.prune.physical import prune_model
from ebedge.prune.rounding import round_kept_channels


def _model_with_scales(seed=0):
    torch.manual_seed(seed)
    model = build_model("vgg11", num_classes=10, width=0.25)
    for _, bn in bn_layers(model):
        bn.weight.data.uniform_(0.0, 1.0)
    return model


def _hooked_macs(model):
    """MACs counted by running the model (independent of ebedge.training.flops)."""
    total = []

    def conv(module, inputs, output):
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        total.append(output.numel() * k)

    def linear(module, inputs, output):
        total.append(output.numel() * module.in_features)
    hooks = [m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else linear)
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    return sum(total)


def test_rounding_keeps_top_gamma_channels_in_multiples():
    model = _model_with_scales()
    mask = channel_mask(model, 0.5)
    rounded = round_kept_channels(model, mask, 8)
    assert (rounded | mask).sum() == rounded.sum()  # every ticket channel is still kept
    for (_, bn), keep, new in zip(bn_layers(model), split_mask(model, mask), split_mask(model, rounded)):
        width, kept = bn.num_features, int(new.sum())
        assert kept == min(width, -(-max(int(keep.sum()), 1) // 8) * 8)
        scales = bn.weight.detach().abs().numpy()
        assert scales[new].min() >= scales[~new].max() if (~new).any() else True
    assert np.array_equal(round_kept_channels(model, mask, 1), mask)  # K = 1 is the paper


def test_an_emptied_layer_keeps_k_channels():
    model = _model_with_scales()
    mask = channel_mask(model, 0.5)
    first = bn_layers(model)[0][1].num_features
    mask[:first] = False
    rounded = round_kept_channels(model, mask, 4)
    assert split_mask(model, rounded)[0].sum() == 4


def test_flops_are_counted_for_the_rounded_network():
    model = _model_with_scales(1)
    mask = channel_mask(model, 0.7)
    plain, _ = prune_model(model, mask)
    rounded, report = prune_model(model, round_kept_channels(model, mask, 8))
    widths = [c for c in report.cfg if c != "M"]
    full = [bn.num_features for _, bn in bn_layers(model)]
    assert all(w % 8 == 0 or w == f for w, f in zip(widths, full))
    assert flops.forward_macs(rounded, (3, 32, 32)) == _hooked_macs(rounded)
    assert flops.forward_macs(plain, (3, 32, 32)) == _hooked_macs(plain)
    assert _hooked_macs(plain) < _hooked_macs(rounded) < _hooked_macs(model)


def test_eb_run_prunes_to_multiples_and_reports_that_network(tmp_path):
    from ebedge.run.runner import execute
    summary = execute({"method": "eb", "model": "vgg11", "width": 0.25, "epochs": 2,
                       "limit_train": 64, "limit_test": 16, "batch_size": 32, "device": "cpu",
                       "channel_multiple": 4}, out=str(tmp_path / "run"), quiet=True)
    widths = [c for c in summary["pruned_cfg"] if c != "M"]
    full = [c for c in build_model("vgg11", num_classes=10, width=0.25).cfg if c != "M"]
    assert all(w % 4 == 0 or w == f for w, f in zip(widths, full))
    pruned = build_model("vgg11", num_classes=10, cfg=summary["pruned_cfg"], width=0.25)
    assert summary["forward_flops_pruned"] == 2 * _hooked_macs(pruned)
