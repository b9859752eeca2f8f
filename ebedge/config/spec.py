"""The settings specification: every run setting's facts, once.

Each `Setting` says its name, kind, default, bounds, help, which side reads it and its role in
the experiment. Validation (`check`), the `ebedge train` options, suite keys, `config_hash` and the
report's "same experiment" key are all derived from `SPEC`, so a bound or a default is written in
one place, and the code that uses a setting asks the spec for its bound (the Early-Bird detector's
window, for one). Torch-free: a laptop validates settings without loading torch.

Roles: `experiment` settings determine the result (hashed, and separate report rows);
`replicate` ones change which sample of the result a run is (the seed: hashed, but repeats of one
experiment share a report row); `observation` ones say where data lives or how the run is watched
(neither hashed nor a report key).
"""
import math
import re

from ebedge.config import catalog, schedules
from ebedge.errors import EbedgeError

MODEL_NAMES = ("vgg11", "vgg16", "preresnet101", "preresnet164", "resnet18", "resnet50")
DATASETS = ("synthetic", "cifar10", "cifar100", "imagefolder")

EXPERIMENT, REPLICATE, OBSERVATION = "experiment", "replicate", "observation"
DEVICE, HOST = "device", "host"


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


def interval_text(low, high, low_open, high_open):
    return "%s%s, %s%s" % ("(" if low_open else "[", "-inf" if low is None else "%g" % low,
                           "inf" if high is None else "%g" % high, ")" if high_open else "]")


class Setting(object):
    """One setting's facts. `kind` is int, float, bool, choice, text, or the name of a parser
    below (ratios, milestones, lr_schedule, workers, meters, meter_options); `low`/`high` bound
    numbers (None: unbounded; `low_open`/`high_open` exclude the end); `optional` allows None
    ("not set"); `option` is the `ebedge train` flag (None: settable by --settings and suites only);
    `default_text` shows a None default's meaning; `choices` may be a callable returning them."""

    def __init__(self, name, kind, default, help, low=None, high=None, low_open=False,
                 high_open=False, choices=(), optional=False, side=DEVICE, role=EXPERIMENT,
                 option="", default_text=None):
        self.name, self.kind, self.default, self.help = name, kind, default, help
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open
        self._choices = choices if callable(choices) else tuple(choices)
        self.optional, self.side, self.role = optional, side, role
        self.option = "--" + name.replace("_", "-") if option == "" else option
        self.default_text = default_text

    @property
    def choices(self):
        """The allowed values; a callable (the catalog's method names) is asked each time, so a
        method registered after import is a valid choice."""
        return tuple(self._choices()) if callable(self._choices) else self._choices

    @property
    def hashed(self):
        """Part of `config_hash`: it changes what the run computes."""
        return self.role in (EXPERIMENT, REPLICATE)

    def check(self, value):
        """`value` normalised (ints as int, schedules in their canonical form), or a one-line
        EbedgeError naming the setting."""
        if value is None:
            if self.optional:
                return None
            raise EbedgeError("%s must be set" % self.name)
        return _KINDS[self.kind](self, value)

    def bounds_text(self):
        if self.choices:
            return ", ".join(self.choices)
        if self.low is None and self.high is None:
            return ""
        if self.kind == "int" and self.high is None:
            return ">= %d" % self.low
        return interval_text(self.low, self.high, self.low_open, self.high_open)

    def shown_default(self):
        """The default as the CLI help and the docs show it."""
        if self.default_text is not None:
            return self.default_text
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        if isinstance(self.default, list):
            return ",".join(str(v) for v in self.default) or "none"
        return "%g" % self.default if isinstance(self.default, float) else str(self.default)


def _in_bounds(s, x, value, name=None):
    name = name or s.name
    below = s.low is not None and (x <= s.low if s.low_open else x < s.low)
    above = s.high is not None and (x >= s.high if s.high_open else x > s.high)
    if below or above:
        if s.kind == "int" and s.high is None:
            raise EbedgeError("%s must be at least %d, got %r" % (name, s.low, value))
        raise EbedgeError("%s must be in %s, got %r" % (name, s.bounds_text(), value))
    return x


def _int(s, value):
    x = _number(s.name, value)
    if x != int(x):
        raise EbedgeError("%s must be a whole number, got %r" % (s.name, value))
    return int(_in_bounds(s, int(x), value))


def _float(s, value):
    return _in_bounds(s, _number(s.name, value), value)


def _bool(s, value):
    if not isinstance(value, bool):
        raise EbedgeError("%s must be true or false, got %r" % (s.name, value))
    return value


def _choice(s, value):
    if value not in s.choices:
        raise EbedgeError("unknown %s %r; choose one of: %s" % (s.name, value, ", ".join(s.choices)))
    return value


def _text(s, value):
    if not isinstance(value, str):
        raise EbedgeError("%s must be a path, got %r" % (s.name, value))
    return value


def _ratios(s, value):
    values = value if isinstance(value, (list, tuple)) else [value]
    out = [_in_bounds(s, _number("prune ratio", v), v, "prune ratio") for v in values]
    if not out:
        raise EbedgeError("at least one prune ratio is needed")
    return out


def _workers(s, value):
    return value if value == "auto" else _int(s, value)


def _meters(s, value):
    if isinstance(value, str):
        value = [m for m in value.split(",") if m]
    if not isinstance(value, (list, tuple)) or not all(isinstance(m, str) for m in value):
        raise EbedgeError("meters must be a list of meter names, got %r" % (value,))
    if "none" in value:  # measuring nothing is an explicit choice, never mixed with meters
        if len(value) > 1:
            raise EbedgeError("meter 'none' cannot be combined with other meters")
        return []
    return list(value)


def _meter_options(s, value):
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise EbedgeError("meter_options must map meter names to option objects, got %r" % (value,))
    return {name: dict(options) for name, options in value.items()}


def _lr_schedule(s, value):
    return schedules.format_lr_schedule(schedules.parse_lr_schedule(value))


POWER_MODE_NAME = re.compile(r"^[A-Za-z0-9_.+\-]{1,64}$")  # as names in nvpmodel.conf, and safe in cell ids


def _power_mode(s, value):
    """An nvpmodel mode id (int >= 0) or name; checked against the board's modes only on the board."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and POWER_MODE_NAME.match(value):
        return int(value) if value.isdigit() else value
    raise EbedgeError("%s must be an nvpmodel mode id or name (letters, digits, . _ + -), got %r"
                      % (s.name, value))


_KINDS = {"power_mode": _power_mode, "int": _int, "float": _float, "bool": _bool, "choice": _choice, "text": _text,
          "ratios": _ratios, "workers": _workers, "meters": _meters,
          "meter_options": _meter_options, "lr_schedule": _lr_schedule,
          "milestones": lambda s, v: schedules.parse_milestones(v)}

S = Setting
SPEC = (
    S("method", "choice", "eb", "EB Train variant or baseline to run", choices=catalog.method_names),
    S("model", "choice", "vgg16", "network to train", choices=MODEL_NAMES),
    S("dataset", "choice", "synthetic",
      "synthetic ships with ebedge; imagefolder is any class-per-folder tree", choices=DATASETS),
    S("data_dir", "text", None, "dataset root (CIFAR files or train/ + test/ tree)", optional=True,
      role=OBSERVATION, default_text="none"),
    S("download", "bool", False, "download CIFAR into --data-dir if missing", role=OBSERVATION),
    S("prune_ratio", "ratios", [0.5], "p; repeat for several detectors (the first is pruned at)",
      low=0.0, high=1.0, low_open=True, high_open=True),
    S("epochs", "int", 160, "search schedule length", low=1),
    S("retrain_epochs", "int", None, "retrain length", low=1, optional=True,
      default_text="remaining epochs"),
    S("batch_size", "int", 256, "mini-batch size", low=1),
    S("retrain_batch_size", "int", None, "the retrain's own mini-batch size", low=1, optional=True,
      default_text="--batch-size"),
    S("lr", "float", 0.1, "initial learning rate", low=0.0, low_open=True),
    S("momentum", "float", 0.9, "SGD momentum", low=0.0, high=1.0, high_open=True, option=None),
    S("weight_decay", "float", 1e-4, "SGD weight decay", low=0.0, option=None),
    S("sparsity", "float", 1e-4, "L1 strength on BN scales, the paper's s", low=0.0),
    S("retrain_sparsity", "float", None, "EB Train's L1 strength while retraining", low=0.0,
      optional=True, default_text="--sparsity"),
    S("epsilon", "float", 0.1, "Early-Bird mask-distance threshold", low=0.0, high=1.0,
      low_open=True),
    S("window", "int", 5, "Early-Bird FIFO length: masks compared before a ticket is drawn",
      low=2, option=None),
    S("keep_searching", "bool", False,
      "keep training after the ticket is drawn, for study (the ticket drawn at the EB epoch is "
      "still the one pruned; the extra epochs count as search FLOPs)"),
    S("retrain", "choice", "finetune",
      "after pruning: keep the inherited weights or re-initialise", choices=("finetune", "reinit")),
    S("milestones", "milestones", None, "epochs where lr *= --lr-gamma, e.g. 30,60",
      optional=True, default_text="the paper's: 50%,75% of --epochs; ImageNet models 1/3,2/3"),
    S("lr_gamma", "float", 0.1, "lr factor at each milestone", low=0.0, low_open=True),
    S("lr_schedule", "lr_schedule", None, "EPOCH:LR steps, e.g. 0:0.01,100:0.001 (the paper's "
      "[0LR0.01, 100LR0.001]); overrides --lr and --milestones", optional=True,
      default_text="none"),
    S("retrain_lr_schedule", "lr_schedule", None, "the retrain's own EPOCH:LR steps (Table 1)",
      optional=True, default_text="--lr-schedule's"),
    S("draw_at", "int", None, "EB variants: draw the ticket after exactly this many epochs, "
      "prune, retrain for the rest of the schedule (at most --epochs - 1)", low=1, optional=True,
      default_text="when the detector fires"),
    S("reinit_epochs", "choice", "full", "re-init retrain length (full: the paper's)",
      choices=("full", "remaining")),
    S("resnet_prune_scope", "choice", "all-bn", "ResNet-18/50: every BN with block-input "
      "selection (official) or only the BNs inside blocks", choices=("all-bn", "inner-only")),
    S("width", "float", 1.0, "channel multiplier for small runs", low=0.0, high=8.0,
      low_open=True),
    S("limit_train", "int", None, "use a seeded random subset of N training images", low=1,
      optional=True, default_text="all"),
    S("limit_test", "int", None, "use a seeded random subset of N test images", low=1,
      optional=True, default_text="all"),
    S("seed", "int", 1, "random seed of data order and initialisation", low=0, role=REPLICATE),
    S("device", "choice", "auto", "where to train; auto = cuda when available",
      choices=("auto", "cpu", "cuda")),
    S("workers", "workers", "auto", "torchvision pipeline's loader processes, N or auto "
      "(cores - 1)", low=0, role=OBSERVATION),
    S("meters", "meters", ["auto"], "meter to record, repeatable; auto = the most trusted present "
      "(the labelled 'model' estimate when no real meter exists), none = measure nothing",
      role=OBSERVATION, option="--meter"),
    S("meter_options", "meter_options", {}, "METER.KEY=VALUE driver option, e.g. "
      "wattsup.port=/dev/ttyUSB0", role=OBSERVATION, option="--meter-option",
      default_text="none"),
    S("meter_interval", "float", None, "sampling interval in seconds; auto = each meter's own choice "
      "(ina3221: no faster than its sensor updates)", low=0.0, low_open=True,
      optional=True, role=OBSERVATION, default_text="auto"),
    S("idle_seconds", "float", 0.0, "idle power window before and after", low=0.0),
    S("include_eval_in_total", "bool", False, "count evaluation in the training energy total",
      option=None),
    S("allow", "bool", False, "record power-mode/clock changes mid-run instead of refusing"),
    S("cooldown_temp_c", "float", None,
      "wait until every thermal zone is below this many degrees C first", low=0.0, high=150.0,
      low_open=True, high_open=True, optional=True, option="--cooldown", default_text="no wait"),
    S("power_mode", "power_mode", None, "switch the board to this nvpmodel mode (name or id) for "
      "the run and back after; needs root or the sudoers line in docs/power-modes.md",
      optional=True, default_text="leave as is"),
    S("gpu_max_freq_hz", "int", None, "cap the GPU clock at this many Hz", low=1, optional=True,
      option="--gpu-max-freq", default_text="no cap"),
    S("cpu_max_freq_khz", "int", None, "cap every CPU clock at this many kHz", low=1,
      optional=True, option="--cpu-max-freq", default_text="no cap"),
    S("pin_clocks", "bool", False, "run jetson_clocks for the run (the earlier clock state is "
      "restored after)"),
    S("repeat", "int", 0, "which repeat of the experiment this run is (set by --repeats)", low=0,
      role=OBSERVATION, option=None),
    S("min_coverage", "float", 0.95, "a phase whose meter covered less of it than this is flagged",
      low=0.0, high=1.0, role=OBSERVATION, option=None),
    S("data_pipeline", "choice", "auto", "tensor: images resident on the device, batch "
      "augmentation (small images); torchvision: per-image; auto picks by image size",
      choices=("auto", "tensor", "torchvision")),
    S("amp", "bool", False, "CUDA mixed precision (fp16 autocast, grad scaler)"),
    S("channels_last", "bool", False, "NHWC memory format"),
    S("cudnn_benchmark", "bool", True, "cuDNN kernel autotuning on CUDA"),
    S("channel_multiple", "int", 1,
      "round kept channels per layer up to a multiple of K (beyond the paper)", low=1),
)
del S
BY_NAME = {s.name: s for s in SPEC}
DEFAULTS = {s.name: s.default for s in SPEC}


def bound(name):
    """The lowest accepted value of a numeric setting (code that uses the setting checks this)."""
    return BY_NAME[name].low


def markdown_table():
    """The spec as a Markdown table (docs/settings.md is generated from it)."""
    rows = ["| setting | option | default | accepted | role | read on | meaning |",
            "|---|---|---|---|---|---|---|"]
    for s in SPEC:
        rows.append("| `%s` | %s | %s | %s | %s | %s | %s |" % (
            s.name, "`%s`" % s.option if s.option else "-", s.shown_default(),
            s.bounds_text() or s.kind, s.role, s.side,
            s.help.replace("|", "\\|")))
    return "\n".join(rows) + "\n"
