"""ResNet-18/50 (ImageNet layout) on torchvision's ResNet classes, with prunable block widths.

The trunk (stem, each block's last conv, downsample) keeps its width so residual additions line up.
Two pruning scopes:
  all-bn      (default, the official resprune.py) every BN2d takes part in the threshold; the convs
              inside a block are narrowed (conv1 of a BasicBlock, conv1 and conv2 of a Bottleneck),
              and each block's input is narrowed before its conv1 through a channel selection
              chosen by the BN that produced it (the stem's bn1, or the previous block's last BN;
              the last one selects what fc reads). Trunk BNs keep their width, their pruned
              channels zeroed, as the official code leaves them.
  inner-only  only the BNs after the inner convs are thresholded; block inputs are never narrowed.

cfg (flat): per block in order, [input channels selected] (all-bn only), then [conv1 out] for a
BasicBlock or [conv1 out, conv2 out] for a Bottleneck; all-bn ends with [channels fc reads].
No weights are downloaded; init follows torchvision (Kaiming fan-out, BN gamma 1).
"""
import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet, conv1x1, conv3x3

from ebedge.models._init import scaled

SPECS = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
}
STAGE_PLANES = (64, 128, 256, 512)
STEM = 64


def inner_convs(block):
    """How many of a block's convs are prunable (their outputs stay inside the block)."""
    return 1 if block is BasicBlock else 2


SCOPES = ("all-bn", "inner-only")


def resnet_default_cfg(name, width=1.0, scope="all-bn"):
    block, layers = SPECS[name]
    cfg = []
    inplanes = scaled(STEM, width)
    for planes, count in zip(STAGE_PLANES, layers):
        for _ in range(count):
            if scope == "all-bn":
                cfg.append(inplanes)
            cfg += [scaled(planes, width)] * inner_convs(block)
            inplanes = scaled(planes, width) * block.expansion
    return cfg + ([inplanes] if scope == "all-bn" else [])


class SelectConv2d(nn.Conv2d):
    """A conv that reads only the input channels in its `indices` buffer (a block's input
    selection, kept in the state_dict); `in_channels` is the number selected."""

    def __init__(self, selected, *args, **kwargs):
        super(SelectConv2d, self).__init__(*args, **kwargs)
        self.register_buffer("indices", torch.arange(int(selected), dtype=torch.long))

    def forward(self, x):
        return super(SelectConv2d, self).forward(x.index_select(1, self.indices))


class SelectLinear(nn.Linear):
    """The classifier reading only the features in its `indices` buffer."""

    def __init__(self, selected, *args, **kwargs):
        super(SelectLinear, self).__init__(*args, **kwargs)
        self.register_buffer("indices", torch.arange(int(selected), dtype=torch.long))

    def forward(self, x):
        return super(SelectLinear, self).forward(x.index_select(1, self.indices))


class PrunableResNet(ResNet):
    """torchvision ResNet whose blocks are rebuilt to the widths in `cfg` (trunk scaled by `width`)."""

    def __init__(self, name, cfg=None, num_classes=1000, width=1.0, scope="all-bn"):
        block, layers = SPECS[name]
        super(PrunableResNet, self).__init__(block, layers, num_classes=num_classes)
        if scope not in SCOPES:
            raise ValueError("ResNet pruning scope must be one of %s, got %r" % (SCOPES, scope))
        default = resnet_default_cfg(name, width, scope)
        cfg = default if cfg is None else [int(c) for c in cfg]
        if len(cfg) != len(default) or any(c < 1 for c in cfg):
            raise ValueError("%s cfg needs %d positive ints, got %r" % (name, len(default), cfg))
        self.cfg = cfg
        self.width = width
        self.num_classes = num_classes
        self.prune_scope = scope
        if scope == "all-bn" or cfg != resnet_default_cfg(name, 1.0, scope) or width != 1.0:
            self._rebuild(block, cfg, width, scope == "all-bn")

    def _rebuild(self, block, cfg, width, select):
        stem = scaled(STEM, width)
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        inplanes = stem
        widths = iter(cfg)
        for s, planes in enumerate(STAGE_PLANES):
            out = scaled(planes, width) * block.expansion
            for blk in getattr(self, "layer%d" % (s + 1)):
                stride = blk.stride
                reads = next(widths) if select else inplanes
                if block is BasicBlock:
                    c1 = next(widths)
                    blk.conv1 = _first_conv(select, reads, c1, 3, stride)
                    blk.bn1 = nn.BatchNorm2d(c1)
                    blk.conv2, blk.bn2 = conv3x3(c1, out), nn.BatchNorm2d(out)
                else:
                    c1, c2 = next(widths), next(widths)
                    blk.conv1, blk.bn1 = _first_conv(select, reads, c1, 1, 1), nn.BatchNorm2d(c1)
                    blk.conv2, blk.bn2 = conv3x3(c1, c2, stride), nn.BatchNorm2d(c2)
                    blk.conv3, blk.bn3 = conv1x1(c2, out), nn.BatchNorm2d(out)
                if blk.downsample is not None:
                    blk.downsample = nn.Sequential(conv1x1(inplanes, out, stride), nn.BatchNorm2d(out))
                inplanes = out
        if select:
            self.fc = SelectLinear(cfg[-1], cfg[-1], self.num_classes)
        else:
            self.fc = nn.Linear(inplanes, self.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def prunable_bn_names(self):
        """all-bn: every BN2d in module order. inner-only: the BNs after the inner convs, bn1
        (BasicBlock) or bn1, bn2 (Bottleneck), in module order."""
        if self.prune_scope == "all-bn":
            return [n for n, m in self.named_modules() if isinstance(m, nn.BatchNorm2d)]
        inner = ("bn1",) if isinstance(self.layer1[0], BasicBlock) else ("bn1", "bn2")
        names = []
        for s in range(1, 5):
            for b in range(len(getattr(self, "layer%d" % s))):
                names += ["layer%d.%d.%s" % (s, b, bn) for bn in inner]
        return names


def _first_conv(select, reads, out, kernel, stride):
    """A block's conv1: reading `reads` selected input channels (all-bn) or all of them."""
    if select:
        return SelectConv2d(reads, reads, out, kernel_size=kernel, stride=stride,
                            padding=kernel // 2, bias=False)
    return conv3x3(reads, out, stride) if kernel == 3 else conv1x1(reads, out, stride)
