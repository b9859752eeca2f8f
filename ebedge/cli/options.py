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
        if not seconds > 0:
            self.fail("must be positive, got %r" % (value,), param, ctx)
        return seconds


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
