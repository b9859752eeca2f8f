"""Weight initialisation shared by the CIFAR models (network-slimming / Early-Bird convention).

BN gamma starts at 0.5 rather than 1 so the L1 sparsity term on gamma has room to separate
channels early; the conv init is He-normal over fan-out, as in the official code.
"""
import math

import torch.nn as nn


def init_slimming(model, linear_std=None):
    """Conv N(0, sqrt(2/(k*k*out))), BN gamma 0.5 / beta 0; Linear N(0, linear_std), bias 0 if given."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 0.5)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)


def scaled(channels, width):
    """A default channel count times `width`, never below one channel."""
    return max(1, int(round(channels * width)))
