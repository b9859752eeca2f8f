"""VGG with batch norm for 32x32 inputs, built from a channel cfg (the Early-Bird / slimming layout).

A pruned VGG is the same builder with a smaller cfg: ints are conv widths, 'M' a 2x2 max pool.
"""
import torch.nn as nn

from ebedge.models._init import init_slimming, scaled

VGG_CFGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
}


def vgg_default_cfg(name, width=1.0):
    return [v if v == "M" else scaled(v, width) for v in VGG_CFGS[name]]


class VGG(nn.Module):
    """conv3x3(bias=False)+BN+ReLU stack, 2x2 average pool to 1x1, one Linear classifier."""

    def __init__(self, cfg, num_classes=10):
        super(VGG, self).__init__()
        convs = [v for v in cfg if v != "M"]
        if not convs or any(int(v) < 1 for v in convs):
            raise ValueError("VGG cfg needs at least one conv and every conv at least 1 channel: %r" % (cfg,))
        self.cfg = list(cfg)
        self.num_classes = num_classes
        layers = []
        in_ch = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_ch, int(v), kernel_size=3, padding=1, bias=False),
                           nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True)]
                in_ch = int(v)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d(2)
        self.classifier = nn.Linear(in_ch, num_classes)
        init_slimming(self, linear_std=0.01)

    def forward(self, x):
        x = self.pool(self.features(x))
        return self.classifier(x.view(x.size(0), -1))
