"""The JSON files of a collected run checked before the laptop uses them.

config.json and summary.json come from the board. They must be objects about the run that was
asked for (a board that sends another run's files has them refused); numbers in them that are not
finite, or not numbers where the laptop computes or shows one, are set to null and flagged, so
they never reach a figure; records only the laptop writes (the clock record, the laptop-meter
comparison) are dropped when the board sends them, with a warning.
"""
import math
import os

from ebedge.config.flags import Flag, restore, store
from ebedge.errors import EbedgeError
from ebedge.remote import bounded
from ebedge.util import safeio

FLAG = "board_value_refused"
# summary values the laptop shows or computes with; each must be a finite number (or null)
NUMBER_KEYS = ("test_acc", "best_test_acc", "final_test_acc", "runtime_s", "train_flops_total",
               "eb_epoch", "prune_ratio")
LAPTOP_OWNED = {"config.json": ("clock",), "summary.json": ("energy_compare",)}


def check(stage, run_id, what):
    """Check (and repair by flagging) config.json and summary.json in `stage`; [note]."""
    notes = []
    docs = {}
    for name in ("config.json", "summary.json"):
        path = os.path.join(stage, name)
        if not os.path.exists(path):
            continue
        doc = bounded.read_json_file(path, "%s: %s" % (what, name))
        if not isinstance(doc, dict):
            raise EbedgeError("refusing what %s: %s holds a %s, not an object; nothing was "
                              "replaced" % (what, name, type(doc).__name__))
        if "run_id" in doc and doc["run_id"] != run_id:
            raise EbedgeError("refusing what %s: %s is about run %s; nothing was replaced"
                              % (what, name, repr(doc["run_id"])[:80]))
        forged = [k for k in LAPTOP_OWNED[name] if k in doc]
        for key in forged:
            del doc[key]
            notes.append("refused the board's %s `%s`: only the laptop writes it" % (name, key))
        docs[name] = (path, doc, bool(forged))
    if "summary.json" in docs:
        path, summary, changed = docs["summary.json"]
        refused = _refuse_numbers(summary)
        if refused:
            flags = restore(summary)
            flags.extend(Flag("board_value_refused", "%s: summary.json %s" % (FLAG, r)) for r in refused)
            store(summary, flags)
            notes.extend("refused summary.json %s" % r for r in refused)
        docs["summary.json"] = (path, summary, changed or bool(refused))
    config = docs.get("config.json")
    if config is not None:
        refused = _refuse_numbers(config[1], keys=())
        notes.extend("refused config.json %s" % r for r in refused)
        docs["config.json"] = (config[0], config[1], config[2] or bool(refused))
    for path, doc, changed in docs.values():
        if changed:
            safeio.write_json(path, doc)
    return notes


def _refuse_numbers(doc, keys=NUMBER_KEYS):
    """Null every non-finite float in `doc` and every value of `keys` (top level) that is no
    finite number; [what was refused]."""
    refused = []
    for key in keys:
        value = doc.get(key)
        if value is not None and not _finite(value):
            refused.append("%s (%s, not a finite number)" % (key, repr(value)[:40]))
            doc[key] = None
    stack = [("", doc)]
    while stack:
        where, item = stack.pop()
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        for key, value in list(pairs):
            name = "%s%s%s" % (where, "." if where else "", key)
            if isinstance(value, float) and not math.isfinite(value):
                refused.append("%s (%r, not a finite number)" % (name, value))
                item[key] = None
            elif isinstance(value, (dict, list)):
                stack.append((name, value))
    return refused


def _finite(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))
