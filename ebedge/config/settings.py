"""Run settings: one validated, JSON-serialisable description of what a run does.

The CLI, suites and the remote orchestrator all produce the same dict, so a run on a board is
exactly the run its settings say, and `config_hash` identifies equal settings. This module
imports nothing heavy, so a laptop validates settings without loading torch.
"""
import hashlib
import json
import math

from ebedge.errors import EbedgeError

MODEL_NAMES = ("vgg11", "vgg16", "preresnet101", "preresnet164", "resnet18", "resnet50")
DATASETS = ("synthetic", "cifar10", "cifar100", "imagefolder")
METHODS = ("dense", "eb", "eb-reinit", "eb-lf", "eb-ll", "ns", "lt", "snip", "thinet", "sfp",
           "lt-structured", "snip-channel")
RETRAIN_MODES = ("finetune", "reinit")
DATA_PIPELINES = ("auto", "tensor", "torchvision")
REINIT_EPOCHS = ("full", "remaining")
RESNET_PRUNE_SCOPES = ("all-bn", "inner-only")

DEFAULTS = {
    "method": "eb",
    "model": "vgg16",
    "dataset": "synthetic",
    "data_dir": None,
    "download": False,
    "prune_ratio": [0.5],  # the first is the ratio the run prunes at; others are detected for study
    "epochs": 160,
    "retrain_epochs": None,  # None: the remaining epochs of the original schedule
    "batch_size": 256,
    "retrain_batch_size": None,  # None: batch_size; the official ResNet-18 ImageNet retrain uses 128
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "sparsity": 1e-4,
    "retrain_sparsity": None,  # EB Train's retrain L1 strength; None: sparsity (official CIFAR scripts)
    "epsilon": 0.1,
    "window": 5,
    "keep_searching": False,
    "retrain": "finetune",
    # The paper's experiments (Table 1, Figs. 1-5, Table 3 protocol):
    "milestones": None,  # epochs where lr *= lr_gamma; None: the paper's per dataset (50%/75%; ImageNet 1/3, 2/3)
    "lr_gamma": 0.1,
    "lr_schedule": None,  # "0:0.01,100:0.001" = the paper's [0LR0.01, 100LR0.001]; overrides lr/milestones
    "retrain_lr_schedule": None,  # the retrain's own schedule, same form (Table 1); None: lr_schedule's
    "draw_at": None,  # draw the ticket after exactly this many epochs (Figs. 1, 2, 5; Tables 1, 4)
    "reinit_epochs": "full",  # re-init retrain: the full schedule (paper, main_scratch.py) or "remaining"
    "resnet_prune_scope": "all-bn",  # ResNet-18/50: every BN (official) or "inner-only" (block-inner BNs)
    "width": 1.0,
    "limit_train": None,
    "limit_test": None,
    "seed": 1,
    "device": "auto",
    "workers": "auto",  # torchvision pipeline's loader processes; auto = cores - 1
    "meters": ["auto"],  # meter names; ["auto"] = the best meters.detect() finds; ["none"] = []
    "meter_options": {},  # {meter name: {option: value}}
    "meter_interval": None,
    "idle_seconds": 0.0,
    "include_eval_in_total": False,
    "allow": False,  # record (rather than refuse) power-mode or clock changes mid-run
    "cooldown_temp_c": None,
    "repeat": 0,
    "min_coverage": 0.95,  # a phase whose meter covered less of it than this is flagged
    # compute pipeline (issue 11): recorded in config.json["compute"] as resolved
    "data_pipeline": "auto",  # tensor (device-resident, small images), torchvision, auto
    "amp": False,  # CUDA autocast fp16 + grad scaler
    "channels_last": False,
    "cudnn_benchmark": True,  # CUDA only
    "channel_multiple": 1,  # round kept channels per layer up to a multiple (1 = the paper)
}


def _number(key, value):
    """`value` as a finite float, or a one-line EbedgeError naming `key`."""
    if isinstance(value, bool):
        raise EbedgeError("%s must be a number, got %r" % (key, value))
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise EbedgeError("%s must be a number, got %r" % (key, value))
    if not math.isfinite(x):
        raise EbedgeError("%s must be a finite number, got %r" % (key, value))
    return x


def _integer(key, value, minimum):
    x = _number(key, value)
    if x != int(x):
        raise EbedgeError("%s must be a whole number, got %r" % (key, value))
    if x < minimum:
        raise EbedgeError("%s must be at least %d, got %r" % (key, minimum, value))
    return int(x)


def _ranged(key, value, low, high, low_open, high_open):
    """A finite float inside the interval from `low` to `high` (None: unbounded)."""
    x = _number(key, value)
    below = low is not None and (x <= low if low_open else x < low)
    above = high is not None and (x >= high if high_open else x > high)
    if below or above:
        raise EbedgeError("%s must be in %s%s, %s%s, got %r" % (
            key, "(" if low_open else "[", "-inf" if low is None else "%g" % low,
            "inf" if high is None else "%g" % high, ")" if high_open else "]", value))
    return x


# key -> (low, high, low excluded, high excluded); None is unbounded
RANGES = {
    "lr": (0.0, None, True, True),
    "momentum": (0.0, 1.0, False, True),
    "weight_decay": (0.0, None, False, True),
    "sparsity": (0.0, None, False, True),
    "epsilon": (0.0, 1.0, True, False),
    "width": (0.0, 8.0, True, False),
    "idle_seconds": (0.0, None, False, True),
    "min_coverage": (0.0, 1.0, False, False),
}
OPTIONAL_RANGES = {  # None means "not set"
    "retrain_sparsity": (0.0, None, False, True),
    "meter_interval": (0.0, None, True, True),
    "cooldown_temp_c": (0.0, 150.0, True, True),
}
INTEGERS = {"epochs": 1, "batch_size": 1, "window": 1, "seed": 0, "repeat": 0,
            "channel_multiple": 1}
OPTIONAL_INTEGERS = {"limit_train": 1, "limit_test": 1, "retrain_epochs": 1, "retrain_batch_size": 1}
FLAGS = ("download", "keep_searching", "include_eval_in_total", "allow",
         "amp", "channels_last", "cudnn_benchmark")
DEVICES = ("auto", "cpu", "cuda")


def _ratio_list(value):
    values = value if isinstance(value, (list, tuple)) else [value]
    out = [_ranged("prune ratio", v, 0.0, 1.0, True, True) for v in values]
    if not out:
        raise EbedgeError("at least one prune ratio is needed")
    return out


def _choice(key, value, choices):
    if value not in choices:
        raise EbedgeError("unknown %s %r; choose one of: %s" % (key, value, ", ".join(choices)))


def resolve(overrides):
    """Defaults + `overrides`, validated. Unknown keys and impossible values (not finite, out of
    range, wrong type) raise a one-line EbedgeError; nothing here touches the disk or torch,
    so every caller can check settings before it creates anything."""
    if not isinstance(overrides, dict):
        raise EbedgeError("settings must be a JSON object, got %s" % type(overrides).__name__)
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise EbedgeError("unknown setting(s): %s" % ", ".join(unknown))
    s = dict(DEFAULTS)
    s.update({k: v for k, v in overrides.items() if v is not None or k in ("data_dir",)})
    _choice("method", s["method"], METHODS)
    _choice("model", s["model"], MODEL_NAMES)
    _choice("dataset", s["dataset"], DATASETS)
    _choice("retrain mode", s["retrain"], RETRAIN_MODES)
    _choice("device", s["device"], DEVICES)
    s["prune_ratio"] = _ratio_list(s["prune_ratio"])
    for key, minimum in INTEGERS.items():
        s[key] = _integer(key, s[key], minimum)
    for key, minimum in OPTIONAL_INTEGERS.items():
        if s[key] is not None:
            s[key] = _integer(key, s[key], minimum)
    for key, bounds in RANGES.items():
        s[key] = _ranged(key, s[key], *bounds)
    for key, bounds in OPTIONAL_RANGES.items():
        if s[key] is not None:
            s[key] = _ranged(key, s[key], *bounds)
    for key in FLAGS:
        if not isinstance(s[key], bool):
            raise EbedgeError("%s must be true or false, got %r" % (key, s[key]))
    if s["data_dir"] is not None and not isinstance(s["data_dir"], str):
        raise EbedgeError("data_dir must be a path, got %r" % (s["data_dir"],))
    if s["data_pipeline"] not in DATA_PIPELINES:
        raise EbedgeError("unknown data pipeline %r; choose one of: %s"
                          % (s["data_pipeline"], ", ".join(DATA_PIPELINES)))
    _resolve_paper_options(s)  # after the integers: draw_at is checked against epochs
    if s["workers"] != "auto":
        s["workers"] = _integer("workers", s["workers"], 0)
    if isinstance(s["meters"], str):
        s["meters"] = [m for m in s["meters"].split(",") if m]
    if not isinstance(s["meters"], list) or not all(isinstance(m, str) for m in s["meters"]):
        raise EbedgeError("meters must be a list of meter names, got %r" % (s["meters"],))
    if not isinstance(s["meter_options"], dict) or not all(
            isinstance(v, dict) for v in s["meter_options"].values()):
        raise EbedgeError("meter_options must map meter names to option objects, got %r"
                          % (s["meter_options"],))
    if "none" in s["meters"]:  # measuring nothing is an explicit choice, never mixed with meters
        if len(s["meters"]) > 1:
            raise EbedgeError("meter 'none' cannot be combined with other meters")
        s["meters"] = []
    return s


def _resolve_paper_options(s):
    """Validate the schedule and ticket-drawing keys in place (see schedules.py for their meaning)."""
    from ebedge.config import schedules
    if s["reinit_epochs"] not in REINIT_EPOCHS:
        raise EbedgeError("reinit_epochs must be full or remaining, got %r" % (s["reinit_epochs"],))
    if s["resnet_prune_scope"] not in RESNET_PRUNE_SCOPES:
        raise EbedgeError("resnet_prune_scope must be %s, got %r"
                          % (" or ".join(RESNET_PRUNE_SCOPES), s["resnet_prune_scope"]))
    if s["milestones"] is not None:
        s["milestones"] = schedules.parse_milestones(s["milestones"])
    s["lr_gamma"] = _ranged("lr_gamma", s["lr_gamma"], 0.0, None, True, True)
    if s["lr_schedule"] is not None:
        s["lr_schedule"] = schedules.format_lr_schedule(schedules.parse_lr_schedule(s["lr_schedule"]))
    if s["retrain_lr_schedule"] is not None:
        s["retrain_lr_schedule"] = schedules.format_lr_schedule(
            schedules.parse_lr_schedule(s["retrain_lr_schedule"]))
    if s["draw_at"] is not None:
        draw = s["draw_at"]
        if isinstance(draw, bool) or not isinstance(draw, int) or not 1 <= draw < int(s["epochs"]):
            raise EbedgeError("draw_at must be a whole number of epochs from 1 to epochs - 1 (%s), "
                              "got %r" % (s["epochs"], draw))


def config_hash(settings):
    """Hash of what determines the result (not where it is written or which repeat it is)."""
    keys = sorted(k for k in settings if k not in ("repeat", "workers", "meters", "meter_options",
                                                   "meter_interval", "min_coverage"))
    blob = json.dumps({k: settings[k] for k in keys}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]
