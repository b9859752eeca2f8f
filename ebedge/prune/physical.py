"""Physical channel pruning: a genuinely smaller dense network, not a masked one.

The pruned model is the same builder with a smaller cfg (ebedge.models.rebuild); the kept slices of
every conv, BN (gamma, beta, running stats) and Linear are copied into it. Per architecture:
  VGG        every conv narrowed by its BN's mask, the classifier loses the matching columns;
  PreResNet  trunk unpruned; a block's input bn1 and the final bn stay whole and their masks become
             the indices of the ChannelSelect that follows; bn2/bn3 narrow conv1/conv2/conv3;
  ResNet     trunk width kept; the inner convs of each block are narrowed by their BNs' masks; with
             the official all-bn scope, each block's input (and fc's) is narrowed through its
             channel selection by the mask of the BN that produced it, and the trunk BNs (stem,
             each block's last, downsample) keep their width with pruned channels zeroed, as the
             official resprune.py leaves them.
Guard: a layer whose mask keeps nothing keeps its single largest-|gamma| channel instead of
breaking the network (the official vggprune silently does); such layers are reported and logged.
Pruned channels' beta is dropped, not folded forward, exactly as in the official code.
"""
import logging

import numpy as np
import torch

from ebedge.models import rebuild
from ebedge.models.preresnet import PreResNet
from ebedge.models.resnet import PrunableResNet, inner_convs
from ebedge.models.vgg import VGG
from ebedge.prune.masks import bn_layers, channel_mask, split_mask

log = logging.getLogger(__name__)


class PruneReport(object):
    """What pruning did: the new cfg, channel counts (prunable BNs only), guarded layers, params."""

    def __init__(self, cfg, layer_kept, layer_total, guarded_layers, params_before, params_after):
        self.cfg = cfg
        self.layer_kept = layer_kept
        self.layer_total = layer_total
        self.kept_channels = sum(layer_kept.values())
        self.total_channels = sum(layer_total.values())
        self.guarded_layers = guarded_layers
        self.params_before = params_before
        self.params_after = params_after

    def as_dict(self):
        return {"cfg": self.cfg, "kept_channels": self.kept_channels, "total_channels": self.total_channels,
                "guarded_layers": list(self.guarded_layers), "params_before": self.params_before,
                "params_after": self.params_after}


def prune_by_ratio(model, ratio):
    """Prune the fraction `ratio` of prunable channels by the global |gamma| threshold."""
    return prune_model(model, channel_mask(model, ratio))


def prune_model(model, flat_mask):
    """(pruned_model, PruneReport) for the flat keep-mask over bn_layers(model)."""
    planner = _planner(model)
    layers = bn_layers(model)
    allowed = _selectable(model)
    keep, guarded = {}, []
    for (name, bn), mask in zip(layers, split_mask(model, flat_mask)):
        usable = allowed.get(name, np.ones(bn.num_features, dtype=bool))
        idx = np.flatnonzero(mask & usable)
        if idx.size == 0:
            scales = np.where(usable, bn.weight.detach().abs().cpu().numpy(), -np.inf)
            idx = np.array([int(np.argmax(scales))])
            guarded.append(name)
            log.warning("pruning would remove every channel of %s; keeping its largest-|gamma| channel", name)
        keep[name] = idx
    cfg, slices, buffers = planner(model, keep)
    pruned = rebuild(model, cfg)
    _copy_kept(model, pruned, slices, buffers)
    device = next(model.parameters()).device
    pruned.to(device).train(model.training)
    report = PruneReport(cfg, dict((n, int(keep[n].size)) for n, _ in layers),
                         dict((n, int(bn.num_features)) for n, bn in layers), guarded,
                         _params(model), _params(pruned))
    return pruned, report


def _params(model):
    return sum(p.numel() for p in model.parameters())


def _planner(model):
    for cls, planner in ((VGG, _plan_vgg), (PreResNet, _plan_preresnet), (PrunableResNet, _plan_resnet)):
        if isinstance(model, cls):
            return planner
    raise ValueError("physical pruning supports ebedge VGG, PreResNet and ResNet models, not %s"
                     % type(model).__name__)


def _selectable(model):
    """For PreResNet and all-bn ResNet, the channels each select-fed BN can still pass on (earlier
    pruning may have cut some)."""
    if isinstance(model, PrunableResNet) and model.prune_scope == "all-bn":
        pairs = [(bn, sel) for bn, sel, _ in _resnet_selects(model)]
    elif isinstance(model, PreResNet):
        pairs = _preresnet_selects(model)
    else:
        return {}
    allowed = {}
    for bn_name, select in pairs:
        bn = dict(model.named_modules())[bn_name]
        usable = np.zeros(bn.num_features, dtype=bool)
        usable[select.indices.cpu().numpy()] = True
        allowed[bn_name] = usable
    return allowed


def _preresnet_selects(model):
    pairs = []
    for s in (1, 2, 3):
        for b, block in enumerate(getattr(model, "layer%d" % s)):
            pairs.append(("layer%d.%d.bn1" % (s, b), block.select))
    return pairs + [("bn", model.select)]


def _plan_vgg(model, keep):
    """cfg, {module: (out_idx, in_idx)}, {} for VGG: each conv follows the BN right after it."""
    bn_names = [name for name, _ in bn_layers(model)]
    conv_names = ["features." + n for n, m in model.features.named_children() if isinstance(m, torch.nn.Conv2d)]
    slices, prev = {}, None
    for conv, bn in zip(conv_names, bn_names):
        slices[conv] = (keep[bn], prev)
        slices[bn] = (keep[bn], None)
        prev = keep[bn]
    slices["classifier"] = (None, prev)
    widths = iter(keep[bn].size for bn in bn_names)
    cfg = [v if v == "M" else int(next(widths)) for v in model.cfg]
    return cfg, slices, {}


def _plan_preresnet(model, keep):
    """Trunk kept; select indices from bn1/bn masks, conv inputs re-indexed within the old selection."""
    cfg, slices, buffers = [], {}, {}
    for bn_name, select in _preresnet_selects(model):
        prefix = bn_name[:-len("bn1")] if bn_name != "bn" else ""
        chosen = keep[bn_name]
        positions = np.searchsorted(select.indices.cpu().numpy(), chosen)
        buffers[prefix + "select.indices"] = torch.as_tensor(chosen, dtype=torch.long)
        if bn_name == "bn":
            slices["fc"] = (None, positions)
            cfg.append(int(chosen.size))
            continue
        k2, k3 = keep[prefix + "bn2"], keep[prefix + "bn3"]
        slices[prefix + "conv1"] = (k2, positions)
        slices[prefix + "bn2"] = (k2, None)
        slices[prefix + "conv2"] = (k3, k2)
        slices[prefix + "bn3"] = (k3, None)
        slices[prefix + "conv3"] = (None, k3)
        cfg += [int(chosen.size), int(k2.size), int(k3.size)]
    return cfg, slices, buffers


def _resnet_selects(model):
    """[(feeding BN, module holding `indices`, name prefix of the block or '' for fc)] of an
    all-bn ResNet: the stem's bn1 feeds layer1.0, each block's last BN the next block, the
    last block's last BN the classifier."""
    per_block = inner_convs(type(model.layer1[0]))
    out, feeding = [], "bn1"
    for s in range(1, 5):
        for b, block in enumerate(getattr(model, "layer%d" % s)):
            prefix = "layer%d.%d." % (s, b)
            out.append((feeding, block.conv1, prefix))
            feeding = prefix + "bn%d" % (per_block + 1)
    return out + [(feeding, model.fc, "")]


def _zeroed_bn(model, name, idx):
    """{state key: value} for BN `name` kept whole with the channels outside `idx` zeroed."""
    bn = dict(model.named_modules())[name]
    keep = torch.zeros(bn.num_features, dtype=torch.bool, device=bn.weight.device)
    keep[torch.as_tensor(idx, dtype=torch.long, device=bn.weight.device)] = True
    return {name + ".weight": bn.weight.detach() * keep, name + ".bias": bn.bias.detach() * keep}


def _plan_resnet_all_bn(model, keep):
    """Block inputs and fc narrowed by selection, inner convs by their BNs, trunk BNs zeroed."""
    cfg, slices, buffers = [], {}, {}
    per_block = inner_convs(type(model.layer1[0]))
    for feeding, reader, prefix in _resnet_selects(model):
        chosen = keep[feeding]
        positions = np.searchsorted(reader.indices.cpu().numpy(), chosen)
        buffers[(prefix or "fc.") + ("conv1.indices" if prefix else "indices")] = \
            torch.as_tensor(chosen, dtype=torch.long)
        buffers.update(_zeroed_bn(model, feeding, chosen))
        cfg.append(int(chosen.size))
        if not prefix:
            slices["fc"] = (None, positions)
            continue
        prev = positions
        for j in range(1, per_block + 1):
            k = keep[prefix + "bn%d" % j]
            slices[prefix + "conv%d" % j] = (k, prev)
            slices[prefix + "bn%d" % j] = (k, None)
            prev = k
            cfg.append(int(k.size))
        slices[prefix + "conv%d" % (per_block + 1)] = (None, prev)
        if prefix + "downsample.1" in keep:
            buffers.update(_zeroed_bn(model, prefix + "downsample.1", keep[prefix + "downsample.1"]))
    return cfg, slices, buffers


def _plan_resnet(model, keep):
    """Inner convs narrowed; each block's last conv loses only input channels."""
    if model.prune_scope == "all-bn":
        return _plan_resnet_all_bn(model, keep)
    cfg, slices = [], {}
    names = [name for name, _ in bn_layers(model)]
    per_block = inner_convs(type(model.layer1[0]))
    for i in range(0, len(names), per_block):
        prefix = names[i][:-len("bn1")]
        prev = None
        for j in range(per_block):
            k = keep[names[i + j]]
            slices[prefix + "conv%d" % (j + 1)] = (k, prev)
            slices[prefix + "bn%d" % (j + 1)] = (k, None)
            prev = k
            cfg.append(int(k.size))
        slices[prefix + "conv%d" % (per_block + 1)] = (None, prev)
    return cfg, slices, {}


def _copy_kept(old, new, slices, buffers):
    """Fill `new` from `old`: dim 0 sliced by out_idx, dim 1 by in_idx, named buffers replaced."""
    old_state = old.state_dict()
    state = {}
    for key, target in new.state_dict().items():
        module = key.rpartition(".")[0]
        if key in buffers:
            value = buffers[key]
        else:
            value = old_state[key]
            out_idx, in_idx = slices.get(module, (None, None))
            if out_idx is not None and value.dim() >= 1:
                value = value.index_select(0, torch.as_tensor(out_idx, dtype=torch.long, device=value.device))
            if in_idx is not None and value.dim() >= 2:
                value = value.index_select(1, torch.as_tensor(in_idx, dtype=torch.long, device=value.device))
        if value.shape != target.shape:
            raise RuntimeError("pruning plan mismatch at %s: %s vs %s" % (key, tuple(value.shape), tuple(target.shape)))
        state[key] = value
    new.load_state_dict(state)
