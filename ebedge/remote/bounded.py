"""Every read from a board is bounded: answer size, line length, JSON depth, and time.

A board may send one line of a gigabyte, JSON nested a hundred thousand deep, or nothing at all.
The laptop reads its answers through these helpers so its memory stays bounded (a few chunks
over the limits below) and a silent board ends in one clear line, never a hang or a traceback.
"""
import json
import os
import select
import subprocess
import time

from ebedge.errors import EbedgeError

ANSWER_BYTES = 16 * 2 ** 20  # the largest agent answer the laptop reads
ERROR_BYTES = 64 * 1024  # what is kept of a command's stderr (its tail)
LINE_BYTES = 16 * 1024  # a streamed log line longer than this is cut
JSON_DEPTH = 64  # far deeper than any answer or run file ebedge writes
CHUNK = 64 * 1024
CUT_MARK = " [... cut by ebedge: line over %d bytes]"


class TooLarge(EbedgeError):
    """The board sent more than the laptop reads."""


class Stalled(EbedgeError):
    """The board sent nothing for longer than the limit."""


def communicate(argv, input_bytes=None, limit=ANSWER_BYTES, timeout=None, what="answer"):
    """Run argv locally (ssh to the board); (returncode, stdout bytes, stderr tail bytes).

    stdout over `limit` bytes kills the command and raises TooLarge; only the last ERROR_BYTES
    of stderr are kept; past `timeout` seconds the command is killed (subprocess.TimeoutExpired)."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if input_bytes is not None else
                            subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = None if timeout is None else time.monotonic() + timeout
    out, err = [], b""
    size = 0
    pending = input_bytes or b""
    if input_bytes is not None and not pending:
        proc.stdin.close()
    readers = [proc.stdout, proc.stderr]
    try:
        while readers or (pending and not proc.stdin.closed):
            writers = [proc.stdin] if pending and not proc.stdin.closed else []
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(argv, timeout)
            ready_r, ready_w, _ = select.select(readers, writers, [], left)
            if ready_w:
                try:
                    n = os.write(proc.stdin.fileno(), pending[:CHUNK])
                    pending = pending[n:]
                except OSError:
                    pending = b""
                if not pending:
                    proc.stdin.close()
            for stream in ready_r:
                chunk = os.read(stream.fileno(), CHUNK)
                if not chunk:
                    readers.remove(stream)
                elif stream is proc.stdout:
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge("the board's %s is over %d bytes; refused"
                                       % (what, limit))
                    out.append(chunk)
                else:
                    err = (err + chunk)[-ERROR_BYTES:]
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()
    return proc.returncode, b"".join(out), err


def too_deep(value, max_depth=JSON_DEPTH):
    """True when `value` nests lists/objects deeper than `max_depth` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > max_depth:
                return True
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict)
                                                   else item))
    return False


def loads(text, what, max_depth=JSON_DEPTH):
    """JSON from the board; EbedgeError (one line) when it is not JSON or nests too deep."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise EbedgeError("%s nests deeper than %d levels; refused" % (what, max_depth))
    except ValueError as exc:
        raise EbedgeError("%s is not JSON (%s)" % (what, str(exc)[:80]))
    if too_deep(value, max_depth):
        raise EbedgeError("%s nests deeper than %d levels; refused" % (what, max_depth))
    return value


def read_json_file(path, what, limit=ANSWER_BYTES):
    """A JSON file the board sent, read only up to `limit` bytes."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise TooLarge("%s is over %d bytes; refused" % (what, limit))
    return loads(data.decode("utf-8", "replace"), what)


class LineReader(object):
    """Lines from a binary stream, each cut at `max_line` bytes (the rest dropped, CUT_MARK
    said), never more than one line and one chunk in memory. `consumed` counts the stream's
    bytes used so far (returned or dropped)."""

    def __init__(self, stream, max_line=LINE_BYTES):
        self.stream = stream  # kept open while read
        self.fd = stream.fileno()
        self.max_line = max_line
        self.consumed = 0
        self._buf = b""
        self._eof = False
        self._skipping = False  # dropping the rest of an over-long line

    def readline(self, stall_s=None):
        """The next line (str, with its newline), or None at the end; Stalled when nothing
        arrives for `stall_s` seconds."""
        while True:
            if self._skipping:
                cut = self._buf.find(b"\n")
                dropped = len(self._buf) if cut < 0 else cut + 1
                self.consumed += dropped
                self._buf = self._buf[dropped:]
                self._skipping = cut < 0
            cut = self._buf.find(b"\n", 0, self.max_line + 1)
            if not self._skipping and (cut >= 0 or (self._eof and self._buf)):
                end = cut + 1 if cut >= 0 else len(self._buf)
                line, self._buf = self._buf[:end], self._buf[end:]
                self.consumed += end
                return line.decode("utf-8", "replace")
            if not self._skipping and len(self._buf) > self.max_line:
                head, self._buf = self._buf[:self.max_line], self._buf[self.max_line:]
                self.consumed += self.max_line
                self._skipping = True
                return head.decode("utf-8", "replace") + CUT_MARK % self.max_line + "\n"
            if self._eof:
                return None
            if stall_s is not None and not select.select([self.fd], [], [], stall_s)[0]:
                raise Stalled("nothing for %.0f s" % stall_s)
            chunk = os.read(self.fd, CHUNK)
            if chunk:
                self._buf += chunk
            else:
                self._eof = True
