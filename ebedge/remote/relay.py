"""The ssh that rsync and scp use for a pull: ssh itself, with what comes back metered.

`python relay.py LIMIT STALL_S ssh ARGS...` runs ssh and relays its standard streams, ending it
(exit OVER or STALLED, one line on stderr) once more than LIMIT bytes came from the board or
nothing came for STALL_S seconds. So `--max-bytes` holds while copying, not after (at most one
chunk over; a sparse file counts by its apparent size, since every byte of it crosses the wire),
and a board whose rsync or sftp never answers cannot hang a collect, on either transport.

Standalone on purpose (standard library only, nothing of ebedge imported): it starts for every copy.
"""
import os
import select
import signal
import subprocess
import sys
import time

OVER, STALLED = 97, 98
MARK = "ebedge-relay:"
CHUNK = 64 * 1024


def relay(limit, stall_s, argv):
    """Run argv with its stdin/stdout relayed through this process; its exit status."""
    # every stream through this process: ssh hands a multiplexed session's descriptors to its
    # master, which holds them while the board's side lives; ours die with us, rsync's must not
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, bufsize=0)
    up, down, err = child.stdin.fileno(), child.stdout.fileno(), child.stderr.fileno()
    readers = [0, down, err]
    received = 0
    heard = time.monotonic()
    while down in readers:
        left = heard + stall_s - time.monotonic()
        ready = select.select(readers, [], [], max(0.0, left))[0] if left > 0 else []
        if not ready and time.monotonic() - heard >= stall_s:
            return _end(child, STALLED, "no byte from the board for %.0f s" % stall_s)
        for fd in ready:
            chunk = os.read(fd, CHUNK)
            if fd == 0:
                if not chunk:
                    readers.remove(0)
                    child.stdin.close()
                else:
                    _write_all(up, chunk)
                continue
            if fd == err:
                if chunk:
                    _write_all(2, chunk)
                else:
                    readers.remove(err)
                continue
            if not chunk:
                readers.remove(down)
                break
            heard = time.monotonic()
            received += len(chunk)
            if received > limit:
                return _end(child, OVER, "the board sent over %d bytes" % limit)
            _write_all(1, chunk)
    os.close(1)
    return child.wait()


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def _end(child, status, why):
    sys.stderr.write("%s %s; copy ended\n" % (MARK, why))
    sys.stderr.flush()
    child.kill()
    child.wait()
    return status


def main(argv):
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        return relay(int(argv[1]), float(argv[2]), argv[3:])
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
