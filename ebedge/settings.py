"""Run settings: one validated, JSON-serialisable description of what a run does.

The CLI, suites and the remote orchestrator all produce the same dict, so a run on a board is
exactly the run its settings say, and `config_hash` identifies equal settings. This module
imports nothing heavy, so a laptop validates settings without loading torch.
"""
import hashlib
import json

from ebedge.errors import EbedgeError

MODEL_NAMES = ("vgg11", "vgg16", "preresnet101", "preresnet164", "resnet18", "resnet50")
DATASETS = ("synthetic", "cifar10", "cifar100", "imagefolder")
METHODS = ("dense", "eb", "eb-reinit", "eb-lf", "eb-ll", "ns", "lt", "snip", "thinet", "sfp")
RETRAIN_MODES = ("finetune", "reinit")
DATA_PIPELINES = ("auto", "tensor", "torchvision")

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
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "sparsity": 1e-4,
    "epsilon": 0.1,
    "window": 5,
    "keep_searching": False,
    "retrain": "finetune",
    "snip_unstructured": False,  # snip: the original weight-level SNIP (dense FLOPs) instead of channels
    "width": 1.0,
    "limit_train": None,
    "limit_test": None,
    "seed": 1,
    "device": "auto",
    "workers": "auto",  # torchvision pipeline's loader processes; auto = cores - 1
    "meters": [],  # meter names; [] = none, ["auto"] = the best meters.detect() finds
    "meter_options": {},  # {meter name: {option: value}}
    "meter_interval": None,
    "idle_seconds": 0.0,
    "include_eval_in_total": False,
    "allow": False,  # record (rather than refuse) power-mode or clock changes mid-run
    "cooldown_temp_c": None,
    "repeat": 0,
    # compute pipeline (issue 11): recorded in config.json["compute"] as resolved
    "data_pipeline": "auto",  # tensor (device-resident, small images), torchvision, auto
    "amp": False,  # CUDA autocast fp16 + grad scaler
    "channels_last": False,
    "cudnn_benchmark": True,  # CUDA only
    "channel_multiple": 1,  # round kept channels per layer up to a multiple (1 = the paper)
}


def _ratio_list(value):
    values = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for v in values:
        try:
            p = float(v)
        except (TypeError, ValueError):
            raise EbedgeError("prune ratio must be a number, got %r" % (v,))
        if not 0.0 < p < 1.0:
            raise EbedgeError("prune ratio must be in (0, 1), got %g" % p)
        out.append(p)
    if not out:
        raise EbedgeError("at least one prune ratio is needed")
    return out


def resolve(overrides):
    """Defaults + `overrides`, validated. Unknown keys and impossible values raise EbedgeError."""
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise EbedgeError("unknown setting(s): %s" % ", ".join(unknown))
    s = dict(DEFAULTS)
    s.update({k: v for k, v in overrides.items() if v is not None or k in ("data_dir",)})
    if s["method"] not in METHODS:
        raise EbedgeError("unknown method %r; choose one of: %s" % (s["method"], ", ".join(METHODS)))
    if s["model"] not in MODEL_NAMES:
        raise EbedgeError("unknown model %r; choose one of: %s" % (s["model"], ", ".join(MODEL_NAMES)))
    if s["dataset"] not in DATASETS:
        raise EbedgeError("unknown dataset %r; choose one of: %s"
                          % (s["dataset"], ", ".join(DATASETS)))
    if s["retrain"] not in RETRAIN_MODES:
        raise EbedgeError("unknown retrain mode %r; choose finetune or reinit" % s["retrain"])
    s["prune_ratio"] = _ratio_list(s["prune_ratio"])
    for key in ("epochs", "batch_size", "window"):
        if int(s[key]) < 1:
            raise EbedgeError("%s must be at least 1, got %r" % (key, s[key]))
        s[key] = int(s[key])
    for key in ("limit_train", "limit_test", "retrain_epochs"):
        if s[key] is not None:
            if int(s[key]) < 1:
                raise EbedgeError("%s must be at least 1, got %r" % (key, s[key]))
            s[key] = int(s[key])
    for key in ("lr", "width", "epsilon"):
        if float(s[key]) <= 0:
            raise EbedgeError("%s must be positive, got %r" % (key, s[key]))
        s[key] = float(s[key])
    if float(s["sparsity"]) < 0:
        raise EbedgeError("sparsity must not be negative, got %r" % s["sparsity"])
    if float(s["idle_seconds"]) < 0:
        raise EbedgeError("idle seconds must not be negative, got %r" % s["idle_seconds"])
    if s["data_pipeline"] not in DATA_PIPELINES:
        raise EbedgeError("unknown data pipeline %r; choose one of: %s"
                          % (s["data_pipeline"], ", ".join(DATA_PIPELINES)))
    if s["workers"] != "auto":
        try:
            s["workers"] = int(s["workers"])
        except (TypeError, ValueError):
            raise EbedgeError("workers must be a number or auto, got %r" % (s["workers"],))
        if s["workers"] < 0:
            raise EbedgeError("workers must not be negative, got %d" % s["workers"])
    if int(s["channel_multiple"]) < 1:
        raise EbedgeError("channel multiple must be at least 1, got %r" % s["channel_multiple"])
    s["channel_multiple"] = int(s["channel_multiple"])
    if isinstance(s["meters"], str):
        s["meters"] = [m for m in s["meters"].split(",") if m]
    return s


def config_hash(settings):
    """Hash of what determines the result (not where it is written or which repeat it is)."""
    keys = sorted(k for k in settings if k not in ("repeat", "workers", "meters", "meter_options",
                                                   "meter_interval"))
    blob = json.dumps({k: settings[k] for k in keys}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]
