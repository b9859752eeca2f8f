"""The settings spec is the one place a bound lives: every numeric setting's extreme accepted
values build the objects that use them, and values just outside are refused in one line before
a run directory exists."""
import json
import pickle

import pytest
from click.testing import CliRunner

from ebedge.cli import main
from ebedge.config import spec
from ebedge.config.settings import Settings, config_hash, merge, resolve
from ebedge.errors import EbedgeError

NUMERIC = [s for s in spec.SPEC if s.kind in ("int", "float", "ratios")]
UNBOUNDED = {"int": 10 ** 6, "float": 1e6}
STEP = 1e-9


def _setting_value(setting, x):
    return [x] if setting.kind == "ratios" else x


def _extremes(setting):
    """The lowest and highest values the spec accepts (an open end: one tiny step inside)."""
    kind = "float" if setting.kind == "ratios" else setting.kind
    step = 1 if kind == "int" else STEP
    low = setting.low + (step if setting.low_open else 0)
    high = UNBOUNDED[kind] if setting.high is None else setting.high - (step if setting.high_open else 0)
    return low, high


def _outside(setting):
    """Values just outside the accepted range (an open end: the end itself)."""
    kind = "float" if setting.kind == "ratios" else setting.kind
    step = 1 if kind == "int" else STEP
    out = [setting.low if setting.low_open else setting.low - step]
    if setting.high is not None:
        out.append(setting.high if setting.high_open else setting.high + step)
    return out


def _context(name, x):
    """Settings that use the extreme value (draw_at needs epochs beyond it)."""
    extra = {"epochs": x + 1} if name == "draw_at" else {}
    return resolve(dict(extra, **{name: x}))


def _build_users(settings):
    """The objects a run builds from the settings: detectors, schedules, the optimiser, the
    model (at the smallest model, width-scaled cfg only above width 1: width 8 of VGG-11 is GBs),
    the channel rounding of a pruned mask and the pruned network."""
    import torch
    from ebedge import models
    from ebedge.config.schedules import retrain_schedule_for, schedule_for
    from ebedge.training.stages import detectors_for
    from ebedge.prune.masks import channel_mask
    from ebedge.prune.physical import prune_model
    from ebedge.prune.rounding import round_kept_channels
    from ebedge.training.train import make_optimizer
    detectors = detectors_for(settings)
    assert set(detectors) == set(settings.prune_ratio)
    assert schedule_for(settings).lr_at(settings.epochs - 1) > 0
    assert retrain_schedule_for(settings, 1).lr_at(0) > 0
    cfg = models.default_cfg("vgg11", settings.width)
    assert all(c >= 1 for c in cfg if isinstance(c, int))
    model = models.build_model("vgg11", 10, width=min(settings.width, 1.0) / 16)
    make_optimizer(model, settings.lr, settings.momentum, settings.weight_decay).step()
    with torch.no_grad():
        for _, module in model.named_modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.1, 1.0)
    mask = round_kept_channels(model, channel_mask(model, settings.prune_ratio[0]),
                               settings.channel_multiple)
    pruned, _ = prune_model(model, mask)  # p near 1 empties layers: the one-channel guard keeps one
    assert pruned(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("setting", NUMERIC, ids=[s.name for s in NUMERIC])
def test_extreme_accepted_values_build_what_uses_them(setting):
    for x in _extremes(setting):
        settings = _context(setting.name, _setting_value(setting, x))
        assert settings[setting.name] == _setting_value(setting, x)
        _build_users(settings)


@pytest.mark.parametrize("setting", NUMERIC, ids=[s.name for s in NUMERIC])
def test_values_just_outside_are_refused_in_one_line_before_the_run_directory(setting, tmp_path):
    for x in _outside(setting):
        with pytest.raises(EbedgeError):
            resolve({setting.name: _setting_value(setting, x)})
        settings_file = tmp_path / "settings.json"
        settings_file.write_text(json.dumps({setting.name: _setting_value(setting, x)}))
        out = tmp_path / "run"
        result = CliRunner().invoke(main, ["train", "--settings", str(settings_file), "--out",
                                           str(out), "--quiet"])
        assert result.exit_code == 1, result.output
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
        assert not out.exists()


def test_window_1_is_refused_by_settings_as_by_the_detector():
    from ebedge.prune.earlybird import EarlyBirdDetector
    with pytest.raises(EbedgeError, match="window must be at least 2"):
        resolve({"window": 1})
    with pytest.raises(ValueError):
        EarlyBirdDetector(0.5, window=1)
    EarlyBirdDetector(0.5, window=resolve({"window": 2}).window)


def test_settings_are_frozen_attributes_that_still_serialise():
    s = resolve({"epochs": 3, "meters": "none"})
    assert s.epochs == s["epochs"] == 3 and s.meters == [] and s.get("nothing") is None
    with pytest.raises(TypeError):
        s["epochs"] = 4
    with pytest.raises(TypeError):
        s.epochs = 4
    assert json.loads(json.dumps(s)) == dict(s)
    assert pickle.loads(pickle.dumps(s)) == s and isinstance(pickle.loads(pickle.dumps(s)), Settings)
    assert resolve(s) is s  # resolved once: resolving again is free
    assert s.replace(seed=7).seed == 7 and s.seed == 1
    with pytest.raises(EbedgeError):
        s.replace(window=1)


@pytest.mark.host  # the report reads runs with pandas
def test_hash_and_report_keys_come_from_the_spec_roles():
    from ebedge.report.runs import settings_key
    s = resolve({"epochs": 3})
    observed = s.replace(meters=["none"], data_dir="/elsewhere", min_coverage=0.5, repeat=3)
    assert config_hash(observed) == config_hash(s) and settings_key(observed) == settings_key(s)
    reseeded = s.replace(seed=2)
    assert config_hash(reseeded) != config_hash(s) and settings_key(reseeded) == settings_key(s)
    assert config_hash(s.replace(window=3)) != config_hash(s)
    assert settings_key(s.replace(window=3)) != settings_key(s)


def test_meter_options_merge_per_meter_and_option():
    base = {"meter_options": {"wattsup": {"port": "/dev/a", "baud": 9600}, "um": {"port": "x"}}}
    merged = merge(base, {"meter_options": {"wattsup": {"port": "/dev/b"}}, "epochs": 2})
    assert merged == {"epochs": 2, "meter_options": {"wattsup": {"port": "/dev/b", "baud": 9600},
                                                     "um": {"port": "x"}}}


def test_help_shows_each_default_from_the_spec():
    text = CliRunner().invoke(main, ["train", "--help"], terminal_width=200).output
    for setting in spec.SPEC:
        if setting.option:
            assert setting.option in text
    assert "[default: 160]" in text and "[default: eb]" in text


def test_markdown_table_lists_every_setting():
    table = spec.markdown_table()
    assert all("`%s`" % s.name in table for s in spec.SPEC)
    assert len(table.strip().splitlines()) == len(spec.SPEC) + 2


def test_the_settings_page_shows_the_spec_as_it_is():
    import os
    import sys
    docs = os.path.join(os.path.dirname(__file__), "..", "..", "docs")
    sys.path.insert(0, docs)
    try:
        import gen_settings
    finally:
        sys.path.remove(docs)
    with open(gen_settings.PAGE) as f:
        page = f.read()
    assert gen_settings.render(page) == page, "run python docs/gen_settings.py"
