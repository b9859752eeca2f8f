"""Board-sent text made safe to print or write: the one sanitiser of the laptop side.

A board may be compromised or broken; text it sends (run ids, states, errors, log lines, versions,
meter names, flags) reaches the user's terminal, a pipe or a file. Control characters there are
instructions, not text: `ESC ] 0 ; title BEL` retitles a terminal, `ESC [ 2J` clears it, OSC 52
writes the clipboard, and bidi overrides make a line read differently from what it holds. Every
such character is shown escaped (`\\x1b`, `\\u202e`), on a terminal and in pipes alike.

Device side too (the CLI's error handler uses it): Python 3.6, standard library only.
"""
import re

# C0 controls but tab and newline, DEL, C1 controls, bidi embeddings/overrides and isolates
_UNSAFE = re.compile(u"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_ONE_LINE = re.compile(u"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escaped(match):
    code = ord(match.group(0))
    return "\\x%02x" % code if code < 0x100 else "\\u%04x" % code


def printable(text, one_line=False):
    """`text` (any object; bytes are decoded as UTF-8 with replacement) with every control,
    DEL, C1 and bidi-override character shown escaped; with `one_line`, tab and newline too."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    elif not isinstance(text, str):
        text = str(text)
    return (_UNSAFE_ONE_LINE if one_line else _UNSAFE).sub(_escaped, text)
