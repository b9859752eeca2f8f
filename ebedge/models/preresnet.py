"""Pre-activation bottleneck ResNet for 32x32 inputs (depth 9n+2), prunable the network-slimming way.

The residual trunk (stem, conv3 outputs, downsample convs) keeps its width so every addition still
lines up. Pruning happens inside blocks: a block's input BN (bn1) stays whole, and a ChannelSelect
gathers the channels it keeps before conv1; bn2/bn3 are physically narrowed. The final BN is handled
the same way before the classifier.

cfg (flat, the official format): 3 ints per block [kept after bn1, conv1 out, conv2 out], then one
int for the channels kept after the final BN. Default for n blocks per stage:
[16,16,16] + [64,16,16]*(n-1) + [64,32,32] + [128,32,32]*(n-1) + [128,64,64] + [256,64,64]*(n-1) + [256].
"""
import torch
import torch.nn as nn

from ebedge.models._init import init_slimming, scaled

DEPTHS = {"preresnet101": 101, "preresnet164": 164}
EXPANSION = 4
STAGE_PLANES = (16, 32, 64)


def blocks_per_stage(depth):
    if (depth - 2) % 9 != 0:
        raise ValueError("PreResNet depth must be 9n+2, got %d" % depth)
    return (depth - 2) // 9


def trunk_planes(width=1.0):
    """Bottleneck planes per stage; the trunk width of a stage is planes * 4, the stem outputs planes[0]."""
    return [scaled(p, width) for p in STAGE_PLANES]


def preresnet_default_cfg(name, width=1.0):
    return _cfg_for_n(blocks_per_stage(DEPTHS[name]), trunk_planes(width))


class ChannelSelect(nn.Module):
    """Gather a fixed subset of input channels; `indices` is a buffer so it lives in the state_dict.

    Replaces the official numpy-per-forward channel_selection with one index_select on the device.
    """

    def __init__(self, num_selected):
        super(ChannelSelect, self).__init__()
        self.register_buffer("indices", torch.arange(int(num_selected), dtype=torch.long))

    def forward(self, x):
        return x.index_select(1, self.indices)


class Bottleneck(nn.Module):
    def __init__(self, inplanes, planes, cfg, stride=1, downsample=None):
        super(Bottleneck, self).__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.select = ChannelSelect(cfg[0])
        self.conv1 = nn.Conv2d(cfg[0], cfg[1], kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cfg[1])
        self.conv2 = nn.Conv2d(cfg[1], cfg[2], kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(cfg[2])
        self.conv3 = nn.Conv2d(cfg[2], planes * EXPANSION, kernel_size=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.select(self.bn1(x)))
        out = self.relu(self.bn2(self.conv1(out)))
        out = self.relu(self.bn3(self.conv2(out)))
        out = self.conv3(out)
        residual = x if self.downsample is None else self.downsample(x)
        return out + residual


class PreResNet(nn.Module):
    def __init__(self, depth=164, cfg=None, num_classes=10, width=1.0):
        super(PreResNet, self).__init__()
        n = blocks_per_stage(depth)
        planes = trunk_planes(width)
        if cfg is None:
            cfg = _cfg_for_n(n, planes)
        if len(cfg) != 9 * n + 1 or any(int(c) < 1 for c in cfg):
            raise ValueError("PreResNet-%d cfg needs %d positive ints, got %d" % (depth, 9 * n + 1, len(cfg)))
        self.cfg = [int(c) for c in cfg]
        self.depth = depth
        self.width = width
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(3, planes[0], kernel_size=3, padding=1, bias=False)
        inplanes = planes[0]
        stages = []
        for s, p in enumerate(planes):
            stride = 1 if s == 0 else 2
            blocks = []
            for b in range(n):
                i = 3 * (s * n + b)
                downsample = None
                if b == 0 and (stride != 1 or inplanes != p * EXPANSION):
                    downsample = nn.Sequential(
                        nn.Conv2d(inplanes, p * EXPANSION, kernel_size=1, stride=stride, bias=False))
                blocks.append(Bottleneck(inplanes, p, self.cfg[i:i + 3], stride if b == 0 else 1, downsample))
                inplanes = p * EXPANSION
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn = nn.BatchNorm2d(inplanes)
        self.select = ChannelSelect(self.cfg[-1])
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.cfg[-1], num_classes)
        init_slimming(self)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        x = self.avgpool(self.relu(self.select(self.bn(x))))
        return self.fc(x.view(x.size(0), -1))


def _cfg_for_n(n, planes):
    """Unpruned cfg: each block selects its whole input and keeps its planes."""
    cfg = []
    in_ch = planes[0]
    for p in planes:
        for _ in range(n):
            cfg += [in_ch, p, p]
            in_ch = p * EXPANSION
    return cfg + [in_ch]
