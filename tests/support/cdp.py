"""A headless Chromium driven over the DevTools protocol on a pipe (no extra Python packages).

Chromium reads JSON commands from fd 3 and writes replies and events to fd 4, each message ended by a
NUL byte (--remote-debugging-pipe). Tests use it to open a page, wait for its load, evaluate an
expression, take a screenshot and see every request the page made.
"""
import json
import os
import select
import shutil
import subprocess
import time

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost")


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One Chromium process with a page attached in flat mode; `events` keeps every event seen."""

    def __init__(self, binary, profile_dir, net_log, timeout=90.0):
        self.timeout = timeout
        self.events = []
        self._next_id = 0
        self._buffer = b""
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()
        argv = [binary] + list(CHROMIUM_FLAGS) + [
            "--user-data-dir=" + profile_dir, "--log-net-log=" + net_log, "--net-log-capture-mode=Default",
            "--remote-debugging-pipe", "--window-size=1280,2000", "about:blank"]
        # fds 3 and 4 in the child: its command input and its reply output
        self.proc = subprocess.Popen(["bash", "-c", 'exec "$@" 3<&{} 4>&{}'.format(to_child, from_child), "bash"]
                                     + argv, pass_fds=(to_child, from_child),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child)
        os.close(from_child)
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def _message(self, deadline):
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from chromium")
            ready, _, _ = select.select([self._read], [], [], left)
            if ready:
                chunk = os.read(self._read, 1 << 20)
                if not chunk:
                    raise EOFError("chromium closed its pipe")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw.decode("utf-8"))

    def call(self, method, params=None, session=None):
        """Send one command and return its result (events met meanwhile go to self.events)."""
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._write, json.dumps(msg).encode("utf-8") + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError("{}: {}".format(method, reply["error"]))
                return reply.get("result", {})
            self.events.append(reply)

    def page(self, method, params=None):
        return self.call(method, params, self.session)

    def wait_event(self, name):
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == name for e in self.events):
            self.events.append(self._message(deadline))

    def close(self):
        try:
            self.call("Browser.close")
        except (EOFError, OSError, TimeoutError, RuntimeError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._write)
        os.close(self._read)
