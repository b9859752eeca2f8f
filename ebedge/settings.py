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
METHODS = ("dense", "eb", "eb-reinit", "eb-lf", "eb-ll", "ns", "lt", "snip", "thinet", "sfp",
           "lt-structured", "snip-channel")
RETRAIN_MODES = ("finetune", "reinit")
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
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "sparsity": 1e-4,
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
    "workers": 0,
    "meters": [],  # meter names; [] = none, ["auto"] = the best meters.detect() finds
    "meter_options": {},  # {meter name: {option: value}}
    "meter_interval": None,
    "idle_seconds": 0.0,
    "include_eval_in_total": False,
    "allow": False,  # record (rather than refuse) power-mode or clock changes mid-run
    "cooldown_temp_c": None,
    "repeat": 0,
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
    _resolve_paper_options(s)
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
    if isinstance(s["meters"], str):
        s["meters"] = [m for m in s["meters"].split(",") if m]
    return s


def _resolve_paper_options(s):
    """Validate the schedule and ticket-drawing keys in place (see schedules.py for their meaning)."""
    from ebedge import schedules
    if s["reinit_epochs"] not in REINIT_EPOCHS:
        raise EbedgeError("reinit_epochs must be full or remaining, got %r" % (s["reinit_epochs"],))
    if s["resnet_prune_scope"] not in RESNET_PRUNE_SCOPES:
        raise EbedgeError("resnet_prune_scope must be %s, got %r"
                          % (" or ".join(RESNET_PRUNE_SCOPES), s["resnet_prune_scope"]))
    if s["milestones"] is not None:
        s["milestones"] = schedules.parse_milestones(s["milestones"])
    if float(s["lr_gamma"]) <= 0:
        raise EbedgeError("lr_gamma must be positive, got %r" % (s["lr_gamma"],))
    s["lr_gamma"] = float(s["lr_gamma"])
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
                                                   "meter_interval"))
    blob = json.dumps({k: settings[k] for k in keys}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]
