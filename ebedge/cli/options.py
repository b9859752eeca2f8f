"""Option parsing shared by the command groups (kept below them, so no group imports another)."""
import json

import click

from ebedge.errors import EbedgeError


def parse_meter_options(pairs):
    """`NAME.KEY=VALUE` strings -> {name: {key: value}} (numbers parsed where they are numbers)."""
    out = {}
    for pair in pairs:
        try:
            target, value = pair.split("=", 1)
            name, key = target.split(".", 1)
        except ValueError:
            raise EbedgeError("--meter-option wants METER.KEY=VALUE, got %r" % pair)
        try:
            value = json.loads(value)
        except ValueError:
            pass
        out.setdefault(name, {})[key] = value
    return out


def _option_value(text):
    """`--option` values: numbers become numbers, everything else stays text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_key_values(pairs):
    """`KEY=VALUE` strings (`--option`) -> {key: value}."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter("expected KEY=VALUE, got %r" % pair, param_hint="--option")
        out[key.strip()] = _option_value(value)
    return out


class MeterInterval(click.ParamType):
    """Seconds, or `auto` (None: each meter chooses; ina3221 follows its sensor's update rate)."""

    name = "SECONDS|auto"

    def convert(self, value, param, ctx):
        if value is None or value == "auto":
            return None
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail("%r is neither seconds nor auto" % (value,), param, ctx)
        return seconds  # its bounds are the setting's, checked with the others (ebedge.config.spec)


def load_settings_file(stream):
    try:
        settings = json.load(stream)
    except ValueError as exc:
        raise EbedgeError("--settings %s is not JSON: %s" % (stream.name, exc))
    if not isinstance(settings, dict):
        raise EbedgeError("--settings %s must hold a JSON object" % stream.name)
    return settings


# `agent stop` and `remote stop` end a run the same way
KILL = click.option("--kill", is_flag=True, help="SIGKILL the run's processes (a hung run)")
GRACE = click.option("--grace", type=float, default=0.0, show_default=True, metavar="SECONDS",
                     help="with --kill: SIGTERM first, SIGKILL only if it still runs after this long")


def _meter_choices():
    import meters  # the drivers' registry; loads no torch
    return ["auto", "none"] + meters.names()


_OWN_TYPES = {"meter_interval": MeterInterval}  # settings whose option takes more than the kind says


def _option_for(setting):
    """The click option of one setting, all facts from the spec. Its default is None (or empty),
    so a value is present exactly when the user typed it; the help shows the spec's default."""
    kwargs = {"help": "%s [default: %s]" % (setting.help, setting.shown_default())}
    decls = [setting.option]
    if setting.kind == "bool" and setting.default:
        decls = ["%s/--no-%s" % (setting.option, setting.option[2:])]
    if setting.kind == "bool":
        kwargs["default"] = None
        if not setting.default:
            kwargs["is_flag"] = True
    elif setting.kind in ("ratios", "meters", "meter_options"):
        kwargs["multiple"] = True
        kwargs["type"] = {"ratios": float, "meters": click.Choice(_meter_choices()),
                          "meter_options": str}[setting.kind]
    elif setting.kind == "choice":
        kwargs["type"] = click.Choice(setting.choices)
    elif setting.name in _OWN_TYPES:
        kwargs["type"] = _OWN_TYPES[setting.name]()
    elif setting.kind in ("int", "float"):
        kwargs["type"] = int if setting.kind == "int" else float
    return click.option(*(decls + [setting.name]), **kwargs)


def setting_options(command):
    """Decorate `command` with one option per setting the spec gives an option."""
    from ebedge.config.spec import SPEC
    for setting in reversed(SPEC):
        if setting.option:
            command = _option_for(setting)(command)
    return command


def typed_settings(params):
    """The settings among click's `params` that the user gave, as settings values."""
    from ebedge.config.spec import BY_NAME
    out = {}
    for key, value in params.items():
        if key not in BY_NAME or value is None or value == ():
            continue
        if key == "meter_options":
            value = parse_meter_options(value)
        out[key] = list(value) if isinstance(value, tuple) else value
    return out
