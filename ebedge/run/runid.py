"""Run ids: the one shape a run's name may take, checked wherever a name arrives.

A run id becomes a directory name on the board and on the laptop, and travels through ssh, rsync
and scp; anything but `[A-Za-z0-9._+-]{1,128}` (and not `.` or `..`) could name a path elsewhere or
mean something to a shell, so it is refused, whether a user typed it or a board sent it.

Device side: Python 3.6, standard library only.
"""
import re

from ebedge.errors import EbedgeError

_RUN_ID = re.compile(r"[A-Za-z0-9._+-]{1,128}\Z")


def is_run_id(value):
    """True for a string that is a valid run id."""
    return (isinstance(value, str) and bool(_RUN_ID.match(value))
            and value not in (".", ".."))


def check_run_id(value, what="run id"):
    """`value` when it is a valid run id; EbedgeError (one line) otherwise."""
    if not is_run_id(value):
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise EbedgeError("bad %s %s: use 1-128 of A-Z a-z 0-9 . _ + - (not '.' or '..')"
                          % (what, shown))
    return value
