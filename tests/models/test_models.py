"""Model builders: shapes, cfg round trips, official default cfgs and init, channel selection."""
import json

import pytest
import torch

from ebedge.models import MODEL_NAMES, build_model, default_cfg, input_size, model_spec, rebuild
from ebedge.models.preresnet import ChannelSelect

SMALL = 0.125


def _shapes(model):
    return dict((k, tuple(v.shape)) for k, v in model.state_dict().items())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_small_model_forward_and_rebuild_from_json_cfg(name):
    model = build_model(name, num_classes=7, width=SMALL).eval()
    assert model.arch == name
    size = (3, 64, 64) if name.startswith("resnet") else input_size(name)
    with torch.no_grad():
        assert model(torch.zeros((1,) + size)).shape == (1, 7)
    spec = json.loads(json.dumps(model_spec(model)))
    again = build_model(spec["arch"], spec["num_classes"], cfg=spec["cfg"], width=spec["width"])
    assert _shapes(again) == _shapes(model)
    assert _shapes(rebuild(model)) == _shapes(model)


def test_vgg_cfg_alone_fixes_the_shape():
    model = build_model("vgg16", width=0.25)
    assert _shapes(build_model("vgg16", cfg=model.cfg)) == _shapes(model)


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ValueError) as err:
        build_model("alexnet")
    assert "vgg16" in str(err.value) and "preresnet164" in str(err.value)


def test_official_default_cfgs():
    assert default_cfg("vgg16") == [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
    assert default_cfg("vgg11") == [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512]
    n = 11
    expected = ([16, 16, 16] + [64, 16, 16] * (n - 1) + [64, 32, 32] + [128, 32, 32] * (n - 1)
                + [128, 64, 64] + [256, 64, 64] * (n - 1) + [256])
    assert default_cfg("preresnet101") == expected
    assert len(default_cfg("preresnet164")) == 9 * 18 + 1
    assert default_cfg("resnet18", prune_scope="inner-only") == [64, 64, 128, 128, 256, 256, 512, 512]
    assert len(default_cfg("resnet50", prune_scope="inner-only")) == 2 * (3 + 4 + 6 + 3)
    # all-bn (default): each block's selected inputs before its inner widths, then fc's inputs
    assert default_cfg("resnet18") == [64, 64, 64, 64, 64, 128, 128, 128, 128, 256, 256, 256,
                                       256, 512, 512, 512, 512]
    assert len(default_cfg("resnet50")) == 3 * (3 + 4 + 6 + 3) + 1 and default_cfg("resnet50")[-1] == 2048


def test_width_scales_and_never_drops_below_one_channel():
    assert default_cfg("vgg11", 0.5)[0] == 32
    assert all(c == 1 for c in default_cfg("vgg11", 1e-4) if c != "M")
    assert min(default_cfg("preresnet101", 1e-4)) >= 1


def test_input_sizes():
    assert input_size("vgg16") == (3, 32, 32)
    assert input_size("preresnet101") == (3, 32, 32)
    assert input_size("resnet50") == (3, 224, 224)


def test_slimming_init_on_cifar_models():
    for name in ("vgg11", "preresnet101"):
        model = build_model(name, width=SMALL)
        gammas = torch.cat([m.weight for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)])
        assert torch.all(gammas == 0.5)
    vgg = build_model("vgg11", width=SMALL)
    assert torch.all(vgg.classifier.bias == 0) and vgg.classifier.weight.std().item() < 0.05


def test_bad_cfg_is_rejected():
    with pytest.raises(ValueError):
        build_model("vgg11", cfg=[0, "M", 4])
    with pytest.raises(ValueError):
        build_model("preresnet101", cfg=[16, 16, 16])
    with pytest.raises(ValueError):
        build_model("resnet18", cfg=[64] * 3)


def test_channel_select_gathers_its_indices_and_saves_them():
    select = ChannelSelect(2)
    select.indices.copy_(torch.tensor([3, 1]))
    x = torch.arange(5.0).view(1, 5, 1, 1)
    assert select(x).flatten().tolist() == [3.0, 1.0]
    assert "indices" in select.state_dict()
