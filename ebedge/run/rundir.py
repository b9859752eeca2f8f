"""The run directory: every file of the contract, appended and flushed as the run goes.

A crash or power loss loses at most the row being written: CSV rows are flushed (and fsynced
at most once a second), JSON and checkpoints are written to a temporary name, fsynced and
renamed, and a temporary file is removed when its write fails (a full disk keeps the last good
checkpoint). Every phase row and sample carries the boot id, because monotonic time is per boot.
"""
import csv
import glob
import inspect
import io
import json
import os
import threading
import time

import numpy as np

from ebedge.config.flags import store
from ebedge.config.formats import EPOCH_COLUMNS, PHASE_COLUMNS, SAMPLE_COLUMNS
from ebedge.util.safeio import (CsvLog, DiskFull, blank, disk_full, json_default, read_json,
                                write_atomic, write_json_atomic)
from ebedge.errors import EbedgeError

HEARTBEAT_PERIOD_S = 2.0
BOOT_ID_ENV = "EBEDGE_BOOT_ID_PATH"
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
# what a process killed while writing leaves behind (safeio's `<name>.<random>.tmp`)
TEMPORARY_FILES = ("checkpoints/*.tmp", "*.tmp")


def boot_id():
    """This boot's id (the kernel's random boot_id; EBEDGE_BOOT_ID_PATH names another file, for
    tests that simulate a reboot), or "" where the system has none."""
    path = os.environ.get(BOOT_ID_ENV) or BOOT_ID_PATH
    try:
        with open(path) as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return ""


class RunDir(object):
    """Writer for one run directory (the contract: docs/run-directory.md)."""

    def __init__(self, path, run_id):
        self.path = path
        self.run_id = run_id
        self.boot_id = boot_id()
        self.started_mono = time.monotonic()
        self.write_error = None  # a sample write that failed in a meter thread (disk full)
        os.makedirs(os.path.join(path, "checkpoints"), exist_ok=True)
        for pattern in TEMPORARY_FILES:  # left by a process killed while it wrote them
            for leftover in glob.glob(self.file(pattern)):
                os.remove(leftover)
        self.phases = CsvLog(self.file("phases.csv"), PHASE_COLUMNS)
        self.phase_rows = len(read_phase_rows(self.file("phases.csv")))
        self.epochs = CsvLog(self.file("epochs.csv"), EPOCH_COLUMNS)
        self.epoch_rows = len(read_phase_rows(self.file("epochs.csv")))
        self.samples = CsvLog(self.file("samples.csv"), SAMPLE_COLUMNS)
        self._heartbeat_stop = threading.Event()
        self._heartbeat = None

    def file(self, name):
        return os.path.join(self.path, name)

    # -- contract files -----------------------------------------------------------------------
    def write_config(self, config):
        write_json_atomic(self.file("config.json"), config)

    def write_summary(self, summary):
        """Atomically; on a full disk, where even the small temporary file finds no room, the
        old summary is overwritten in place (its blocks are freed first), so the final status
        is still recorded."""
        summary = store(dict(summary, run_id=self.run_id, heartbeat_wall=time.time()),
                        summary.get("flags") or [])  # the flags' sentences and records
        try:
            write_json_atomic(self.file("summary.json"), summary)
        except DiskFull:
            blob = json.dumps(summary, indent=2, sort_keys=True, default=json_default)
            with open(self.file("summary.json"), "r+") as f:
                f.truncate(0)
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())

    def read_summary(self):
        path = self.file("summary.json")
        return read_json(path) if os.path.exists(path) else None

    def log_phase(self, phase, epoch, start, end):
        """`start`/`end` are (monotonic, wall) pairs."""
        self.phases.write([(self.run_id, phase, blank(epoch), "%.6f" % start[0],
                            "%.6f" % end[0], "%.6f" % start[1], "%.6f" % end[1], self.boot_id)])
        self.phase_rows += 1

    def log_epoch(self, row):
        self.epochs.write([[self.run_id] + [blank(row.get(c)) for c in EPOCH_COLUMNS[1:]]])
        self.epoch_rows += 1

    def log_samples(self, samples):
        """Called from the meter thread: a failed write is kept for the runner (which ends the
        run `failed: disk full`) instead of killing the thread with a traceback."""
        if samples and self.write_error is None:
            try:
                self.samples.write([(self.run_id,) + tuple(blank(v) for v in s.as_row())
                                    + (self.boot_id,) for s in samples])
            except OSError as exc:
                self.write_error = disk_full(exc, self.samples.path) or exc

    def save_masks(self, histories):
        """`histories`: {ratio: [(epoch, bool mask), ...]} -> masks.npz (written atomically)."""
        arrays = {}
        for ratio, history in histories.items():
            key = "ratio_%g" % ratio
            arrays[key + "_epochs"] = np.array([e for e, _ in history], dtype=np.int64)
            arrays[key + "_masks"] = (np.stack([m for _, m in history]).astype(bool) if history
                                      else np.zeros((0, 0), dtype=bool))
        write_atomic(self.file("masks.npz"), lambda f: np.savez_compressed(f, **arrays))

    # -- checkpoints ----------------------------------------------------------------------------
    @property
    def checkpoint_path(self):
        return checkpoint_path(self.path)

    def save_checkpoint(self, state):
        """Serialised in memory first, so that a failing write raises the OS's own error (torch's
        file writer would turn ENOSPC into an opaque RuntimeError), then written atomically."""
        import torch
        buffer = io.BytesIO()
        torch.save(state, buffer)
        write_atomic(self.checkpoint_path, lambda f: f.write(buffer.getbuffer()))

    def load_checkpoint(self):
        return load_checkpoint(self.path)

    # -- liveness ------------------------------------------------------------------------------
    def start_heartbeat(self):
        """Touch `heartbeat` every few seconds, so a killed run is told apart from a running one."""
        beat = self.file("heartbeat")

        def loop():
            while not self._heartbeat_stop.is_set():
                try:
                    with open(beat, "w") as f:
                        f.write(format_heartbeat(self.boot_id, self.started_mono))
                except OSError:  # a full disk: the run's own writes report it
                    pass
                self._heartbeat_stop.wait(HEARTBEAT_PERIOD_S)

        self._heartbeat = threading.Thread(target=loop, name="heartbeat")
        self._heartbeat.daemon = True
        self._heartbeat.start()

    def close(self):
        self._heartbeat_stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
        for log in (self.phases, self.epochs, self.samples):
            try:
                log.close()
            except OSError as exc:  # the last flush hit a full disk: keep it for the runner
                self.write_error = self.write_error or disk_full(exc, log.path) or exc


def format_heartbeat(boot, started_mono):
    """`wall mono boot_id started_mono`: when this process last showed life, on which boot, and
    since when, so a resume can count the runtime of a killed process (readers may use mtime)."""
    return "%.3f %.6f %s %.6f\n" % (time.time(), time.monotonic(), boot or "-", started_mono)


def read_heartbeat(path):
    """(wall, mono, boot_id, started_mono) from a heartbeat file, or None (absent, old or
    garbled)."""
    try:
        with open(path) as f:
            parts = f.read().split()
        return (float(parts[0]), float(parts[1]), ("" if parts[2] == "-" else parts[2]),
                float(parts[3]))
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None


def read_phase_rows(path):
    """phases.csv (or epochs.csv) as dicts (rows cut short by a crash are kept as read; absent
    file: [])."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def checkpoint_path(run_path):
    return os.path.join(run_path, "checkpoints", "last.pt")


def load_checkpoint(run_path):
    """The last checkpoint of the run in `run_path`, or None when it has none."""
    import torch
    path = checkpoint_path(run_path)
    if not os.path.exists(path):
        return None
    # Our own file, holding numpy arrays and RNG states: torch >= 2.6 loads only tensors by
    # default, and torch < 1.13 does not know the argument.
    trusted = ({"weights_only": False}
               if "weights_only" in inspect.signature(torch.load).parameters else {})
    try:
        return torch.load(path, map_location="cpu", **trusted)
    except Exception as exc:  # truncated or foreign file
        raise EbedgeError("unreadable checkpoint %s: %s" % (path, exc))


def completed(path):
    """True when `path` holds a run whose summary says it completed."""
    summary = os.path.join(path, "summary.json")
    if not os.path.exists(summary):
        return False
    try:
        return read_json(summary).get("status") == "complete"
    except ValueError:
        return False
