"""The loopback board lab (ebedge/remote/loopback.py) for the remote tests, and what only tests need of it.

`needs_sshd` skips a test, with a reason naming the package, on a machine without openssh-server
(as the browser test skips without chromium) instead of failing with FileNotFoundError.
"""
import os
import signal
import subprocess
import time

import pytest

from ebedge.remote.loopback import (LoopbackBoard, free_port, keygen, sshd_available,  # noqa: F401
                                    sshd_missing, write_ssh_config)

needs_sshd = pytest.mark.skipif(not sshd_available(), reason=sshd_missing())


def drop_connection_mid_run(argv, started_mark, timeout=240):
    """Run `argv` (an `ebedge remote` command that reports its ssh master's pid), SIGKILL that
    master once a line holds `started_mark`; return (exit status, output after the drop)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    master = None
    for line in proc.stdout:
        if "ssh master pid" in line:
            master = int(line.rsplit("pid", 1)[1].strip(" )\n"))
        if started_mark in line:
            break
    assert master, "no ssh master pid reported"
    time.sleep(3)  # the log stream and the clock channel run over the master by now
    os.kill(master, signal.SIGKILL)
    rest = proc.stdout.read()
    return proc.wait(timeout), rest
