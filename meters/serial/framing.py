"""Incremental line framing for text meters (SCPI replies, line-per-sample devices).

Bytes arrive in arbitrary pieces; a line is complete only at its LF. `readline()` with a
timeout would hand back half a line whenever a record straddles the timeout.
"""


class LineFramer(object):
    """Split a byte stream into text lines at LF, dropping a CR before it.

    `skip_first`: drop the first line, which may be the tail of a line that began before the
    port was opened. Lines longer than `max_len` are noise and are dropped.
    """

    def __init__(self, skip_first=False, max_len=1024):
        self._buf = b""
        self._skip = skip_first
        self._max_len = max_len
        self._overlong = False

    def feed(self, data):
        self._buf += data
        lines = []
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                if len(self._buf) > self._max_len:
                    self._buf = b""
                    self._overlong = True
                break
            raw, self._buf = self._buf[:end], self._buf[end + 1:]
            if self._skip or self._overlong or len(raw) > self._max_len:
                self._skip = self._overlong = False
                continue
            lines.append(raw.rstrip(b"\r").decode("ascii", "replace"))
        return lines
