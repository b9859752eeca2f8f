"""Model builders: one name -> one family builder; a pruned model is the same builder with a smaller cfg.

Every built model carries `.arch`, `.cfg` (JSON-serialisable channel list), `.width` and `.num_classes`.
VGG's cfg fixes every width, so build_model(arch, n, cfg=model.cfg) rebuilds its shape exactly. For the
residual nets the trunk width comes from `width`, not the cfg, so a model built with width != 1 is
rebuilt with build_model(arch, n, cfg=model.cfg, width=model.width), which is what rebuild() does.
"""
from ebedge.models.preresnet import DEPTHS, PreResNet, preresnet_default_cfg
from ebedge.models.resnet import SPECS, PrunableResNet, resnet_default_cfg
from ebedge.models.vgg import VGG, VGG_CFGS, vgg_default_cfg
from ebedge.config.settings import MODEL_NAMES



def _check(name):
    if name not in MODEL_NAMES:
        raise ValueError("unknown model %r; known models: %s" % (name, ", ".join(MODEL_NAMES)))


def default_cfg(name, width=1.0, prune_scope="all-bn"):
    """The unpruned channel configuration of `name`, every width multiplied by `width` (min 1);
    `prune_scope` shapes ResNet-18/50's cfg (see models/resnet.py)."""
    _check(name)
    if name in VGG_CFGS:
        return vgg_default_cfg(name, width)
    if name in DEPTHS:
        return preresnet_default_cfg(name, width)
    return resnet_default_cfg(name, width, prune_scope)


def input_size(name):
    """(C, H, W) of one input image: CIFAR 32x32 for VGG/PreResNet, ImageNet 224x224 for ResNet."""
    _check(name)
    return (3, 224, 224) if name in SPECS else (3, 32, 32)


def build_model(name, num_classes=10, cfg=None, width=1.0, prune_scope="all-bn"):
    """Build `name` with `num_classes` outputs; `cfg` (e.g. a pruned one) overrides the default widths.
    `prune_scope` ("all-bn", the official, or "inner-only") applies to ResNet-18/50 only."""
    _check(name)
    if cfg is not None:
        cfg = list(cfg)
    if name in VGG_CFGS:
        model = VGG(cfg if cfg is not None else vgg_default_cfg(name, width), num_classes)
        model.width = width
    elif name in DEPTHS:
        model = PreResNet(DEPTHS[name], cfg, num_classes, width)
    else:
        model = PrunableResNet(name, cfg, num_classes, width, prune_scope)
    model.arch = name
    return model


def model_spec(model):
    """What a checkpoint needs to rebuild the shape of `model` (JSON-serialisable)."""
    return {"arch": model.arch, "num_classes": model.num_classes, "cfg": list(model.cfg), "width": model.width,
            "prune_scope": getattr(model, "prune_scope", "all-bn")}


def rebuild(model, cfg=None):
    """A freshly initialised model of the same family and trunk as `model`, with `cfg` (default: its own)."""
    spec = model_spec(model)
    return build_model(spec["arch"], spec["num_classes"], cfg if cfg is not None else spec["cfg"], spec["width"],
                       spec["prune_scope"])
