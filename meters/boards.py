"""Which Jetson rails form a board's total power.

A Jetson reports several rails and most are branches of one another, so adding them up double
counts. The total is the module-input rail where the board has one (VDD_IN, POM_5V_IN on the
Nano, VIN on Thor), or the documented sum where it has none (AGX Xavier: all six rails; AGX Orin:
VDD_GPU_SOC + VDD_CPU_CV + VIN_SYS_5V0, because VDDQ_VDD2_1V8AO is fed from VIN_SYS_5V0).
Anything else is an unknown board: we refuse to guess rather than sum blindly.
"""
import os

from meters.base import MeterError


class UnknownBoard(MeterError):
    """No documented total-power rule fits these rails."""


class TotalRule(object):
    """A named rule: total = sum of `rails` (one rail for a module-input total)."""

    __slots__ = ("board", "rails")

    def __init__(self, board, rails):
        self.board = board
        self.rails = tuple(rails)

    def total(self, rails_w):
        return sum(rails_w[r] for r in self.rails)

    def __repr__(self):
        return "TotalRule(%s: %s)" % (self.board, "+".join(self.rails))


# Single module-input rails, most specific first (Thor prints VIN beside VIN_SYS_5V0).
_INPUT_RAILS = (
    ("TX1/TX2/Xavier NX/Orin NX/Orin Nano", "VDD_IN"),
    ("Nano", "POM_5V_IN"),
    ("Thor", "VIN"),
)
# Boards without an input rail: the documented sum, used only when every rail of it is present.
_SUM_RULES = (
    ("AGX Xavier", ("GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V")),
    ("AGX Orin", ("VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0")),
)
# /proc/device-tree/model substrings -> the rule that board must use (most specific first).
_MODEL_RULES = (
    ("AGX Xavier", TotalRule("AGX Xavier", _SUM_RULES[0][1])),
    ("AGX Orin", TotalRule("AGX Orin", _SUM_RULES[1][1])),
    ("Thor", TotalRule("Thor", ("VIN",))),
    ("Xavier NX", TotalRule("Xavier NX", ("VDD_IN",))),
    ("Orin NX", TotalRule("Orin NX", ("VDD_IN",))),
    ("Orin Nano", TotalRule("Orin Nano", ("VDD_IN",))),
    ("TX1", TotalRule("TX1", ("VDD_IN",))),
    ("TX2", TotalRule("TX2", ("VDD_IN",))),
    ("Nano", TotalRule("Nano", ("POM_5V_IN",))),
)


def parse_override(spec):
    """`"VDD_IN+VDD_MUX"` -> a user rule (e.g. to add the TX2 devkit carrier)."""
    rails = [r.strip() for r in spec.split("+") if r.strip()]
    if not rails:
        raise MeterError("empty total-rails override %r; use e.g. VDD_IN or VDD_IN+VDD_MUX" % spec)
    return TotalRule("user override", rails)


def total_rule(rail_names, model=None, override=None):
    """The TotalRule for a set of rail names; UnknownBoard if no documented rule fits.

    `model` (from `board_model()`) pins the board's own rule when it is recognised;
    `override` ("A+B") replaces the table, for carriers the table does not know.
    """
    names = set(rail_names)
    if override:
        rule = parse_override(override) if isinstance(override, str) else override
    else:
        rule = rule_for_model(model) if model else None
        if rule is None:
            rule = _rule_from_names(names)
    missing = [r for r in rule.rails if r not in names] if rule else []
    if rule is None or missing:
        raise UnknownBoard("no documented total-power rule for rails %s%s%s; pass the total rails "
                           "explicitly (e.g. total_rails=VDD_IN)" % (
                               ", ".join(sorted(names)) or "(none)",
                               " on %r" % model if model else "",
                               " (missing %s)" % ", ".join(missing) if missing else ""))
    return rule


def _rule_from_names(names):
    for board, rail in _INPUT_RAILS:
        if rail in names:
            return TotalRule(board, (rail,))
    for board, rails in _SUM_RULES:
        if all(r in names for r in rails):
            return TotalRule(board, rails)
    return None


def total_power(rails_w, model=None, override=None):
    """(total watts, [rails used]) for a {rail: watts} reading; raises UnknownBoard."""
    rule = total_rule(rails_w, model=model, override=override)
    return rule.total(rails_w), list(rule.rails)


def rule_for_model(model):
    """The rule a recognised board model must use, else None."""
    for needle, rule in _MODEL_RULES:
        if needle in model:
            return rule
    return None


def board_model(root="/"):
    """`/proc/device-tree/model` under `root` (e.g. "NVIDIA Jetson TX2"), or None off a Jetson."""
    try:
        with open(os.path.join(root, "proc", "device-tree", "model"), "rb") as f:
            return f.read().replace(b"\x00", b"").decode("ascii", "replace").strip() or None
    except (IOError, OSError):
        return None
