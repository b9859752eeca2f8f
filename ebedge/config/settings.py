"""Run settings: one validated, frozen, JSON-serialisable description of what a run does.

The CLI, suites and the remote orchestrator all build the same `Settings` through `resolve`, once
per run, so a run on a board is exactly the run its settings say, and `config_hash` identifies
equal settings. Code reads attributes (`settings.epochs`); read-only mapping access
(`settings["epochs"]`, `.get`, `json.dumps`) stays for serialisation. What each setting means and
accepts is in `ebedge.config.spec`. This module imports nothing heavy, so a laptop validates
settings without loading torch.
"""
import hashlib
import json

from ebedge.config import spec
from ebedge.config.spec import DATASETS, DEFAULTS, MODEL_NAMES  # noqa: F401 (API)
from ebedge.errors import EbedgeError

DATA_PIPELINES = spec.BY_NAME["data_pipeline"].choices
RETRAIN_MODES = spec.BY_NAME["retrain"].choices


def _frozen(self, *args, **kwargs):
    raise TypeError("Settings are frozen; use settings.replace(key=value)")


class Settings(dict):
    """Resolved settings: read by attribute; a dict only so that JSON and `dict(s)` see the values.

    Build it with `resolve` (or `replace`); every mutating dict method raises TypeError."""

    __slots__ = ()
    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _frozen
    __setattr__ = __delattr__ = __ior__ = _frozen

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError("no setting %r" % name)

    def __reduce__(self):  # pickling and copying rebuild it whole (dict's way sets items one by one)
        return (Settings, (dict(self),))

    def replace(self, **changes):
        """A copy with `changes` validated and applied (as `resolve` would)."""
        return resolve(dict(self, **changes))


def resolve(overrides):
    """Defaults + `overrides`, validated into Settings. Unknown keys and impossible values (not
    finite, out of range, wrong type) raise a one-line EbedgeError; nothing here touches the disk
    or torch, so every caller can check settings before it creates anything. Settings already
    resolved are returned as they are."""
    if isinstance(overrides, Settings):
        return overrides
    if not isinstance(overrides, dict):
        raise EbedgeError("settings must be a JSON object, got %s" % type(overrides).__name__)
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise EbedgeError("unknown setting(s): %s" % ", ".join(unknown))
    given = {k: v for k, v in overrides.items() if v is not None or spec.BY_NAME[k].optional}
    values = {}
    for setting in spec.SPEC:
        value = given.get(setting.name, setting.default)
        values[setting.name] = setting.check(value)
    draw = values["draw_at"]
    if draw is not None and not 1 <= draw < values["epochs"]:
        raise EbedgeError("draw_at must be a whole number of epochs from 1 to epochs - 1 (%s), "
                          "got %r" % (values["epochs"], overrides.get("draw_at")))
    return Settings(values)


def merge(base, given):
    """The one precedence rule of `train`, `remote run` and suites: `given` (typed on the command
    line) over `base` (a --settings file), with meter options merged per meter and option."""
    out = dict(base)
    for key, value in given.items():
        if key == "meter_options" and isinstance(out.get(key), dict) and isinstance(value, dict):
            merged = dict(out[key])
            for name, options in value.items():
                merged[name] = dict(merged.get(name) or {}, **options)
            value = merged
        out[key] = value
    return out


# Settings newer than some boards' ebedge that change nothing at their defaults. Left out where
# unset, a run's settings read as an older version's: a board running it takes them, and its hashes
# and report rows match runs written before these keys existed.
ONLY_WHEN_SET = ("power_mode", "gpu_max_freq_hz", "cpu_max_freq_khz", "pin_clocks")


def explicit(settings):
    """`settings` less the ONLY_WHEN_SET keys that hold their defaults."""
    return {k: v for k, v in settings.items() if k not in ONLY_WHEN_SET or v != DEFAULTS[k]}


def config_hash(settings):
    """Hash of what determines the result (not where it is written or which repeat it is)."""
    settings = explicit(settings)
    keys = sorted(k for k in settings if k not in spec.BY_NAME or spec.BY_NAME[k].hashed)
    blob = json.dumps({k: settings[k] for k in keys}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]
