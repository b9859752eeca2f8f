"""ResNet-18/50 (ImageNet layout) on torchvision's ResNet classes, with prunable inner block widths.

The trunk (stem, each block's last conv, downsample) keeps its width so residual additions line up;
only the convs inside a block are narrowed: conv1 of a BasicBlock, conv1 and conv2 of a Bottleneck.

cfg (flat): per block in order, [conv1 out] for BasicBlock or [conv1 out, conv2 out] for Bottleneck.
No weights are downloaded; init follows torchvision (Kaiming fan-out, BN gamma 1).
"""
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


def resnet_default_cfg(name, width=1.0):
    block, layers = SPECS[name]
    cfg = []
    for planes, count in zip(STAGE_PLANES, layers):
        cfg += [scaled(planes, width)] * (count * inner_convs(block))
    return cfg


class PrunableResNet(ResNet):
    """torchvision ResNet whose blocks are rebuilt to the widths in `cfg` (trunk scaled by `width`)."""

    def __init__(self, name, cfg=None, num_classes=1000, width=1.0):
        block, layers = SPECS[name]
        super(PrunableResNet, self).__init__(block, layers, num_classes=num_classes)
        default = resnet_default_cfg(name, width)
        cfg = default if cfg is None else [int(c) for c in cfg]
        if len(cfg) != len(default) or any(c < 1 for c in cfg):
            raise ValueError("%s cfg needs %d positive ints, got %r" % (name, len(default), cfg))
        self.cfg = cfg
        self.width = width
        self.num_classes = num_classes
        if cfg != resnet_default_cfg(name, 1.0) or width != 1.0:
            self._rebuild(block, cfg, width)

    def _rebuild(self, block, cfg, width):
        stem = scaled(STEM, width)
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        inplanes = stem
        widths = iter(cfg)
        for s, planes in enumerate(STAGE_PLANES):
            out = scaled(planes, width) * block.expansion
            for blk in getattr(self, "layer%d" % (s + 1)):
                stride = blk.stride
                if block is BasicBlock:
                    c1 = next(widths)
                    blk.conv1, blk.bn1 = conv3x3(inplanes, c1, stride), nn.BatchNorm2d(c1)
                    blk.conv2, blk.bn2 = conv3x3(c1, out), nn.BatchNorm2d(out)
                else:
                    c1, c2 = next(widths), next(widths)
                    blk.conv1, blk.bn1 = conv1x1(inplanes, c1), nn.BatchNorm2d(c1)
                    blk.conv2, blk.bn2 = conv3x3(c1, c2, stride), nn.BatchNorm2d(c2)
                    blk.conv3, blk.bn3 = conv1x1(c2, out), nn.BatchNorm2d(out)
                if blk.downsample is not None:
                    blk.downsample = nn.Sequential(conv1x1(inplanes, out, stride), nn.BatchNorm2d(out))
                inplanes = out
        self.fc = nn.Linear(inplanes, self.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def prunable_bn_names(self):
        """BNs after the inner convs: bn1 (BasicBlock) or bn1, bn2 (Bottleneck), in module order."""
        inner = ("bn1",) if isinstance(self.layer1[0], BasicBlock) else ("bn1", "bn2")
        names = []
        for s in range(1, 5):
            for b in range(len(getattr(self, "layer%d" % s))):
                names += ["layer%d.%d.%s" % (s, b, bn) for bn in inner]
        return names
