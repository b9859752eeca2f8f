"""The run directory: every file of the contract, appended and flushed as the run goes.

A crash or power loss loses at most the row being written: CSV rows are flushed (and fsynced
at most once a second), JSON and checkpoints are written to a temporary name and renamed.
"""
import csv
import inspect
import json
import os
import threading
import time

import numpy as np

from ebedge.errors import EbedgeError

PHASE_COLUMNS = ("run_id", "phase", "epoch", "t_start_mono", "t_end_mono", "t_start_wall",
                 "t_end_wall")
EPOCH_COLUMNS = ("run_id", "phase", "epoch", "lr", "train_loss", "train_acc", "test_acc",
                 "seconds", "train_flops", "mask_distance")
SAMPLE_COLUMNS = ("run_id", "meter", "rail", "t_mono", "t_wall", "power_w", "voltage_v",
                  "current_a", "meter_energy_j", "flags")
HEARTBEAT_PERIOD_S = 2.0


def write_json_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=_json_default)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError("not JSON serialisable: %r" % (value,))


def read_json(path):
    with open(path) as f:
        return json.load(f)


class CsvLog(object):
    """An append-only CSV file with a header, flushed after every write."""

    def __init__(self, path, columns):
        self.path = path
        self.columns = columns
        fresh = not os.path.exists(path) or os.path.getsize(path) == 0
        self._file = open(path, "a", newline="")
        self._writer = csv.writer(self._file)
        self._lock = threading.Lock()
        self._last_sync = 0.0
        if fresh:
            self._writer.writerow(columns)
            self._file.flush()

    def write(self, rows):
        with self._lock:
            self._writer.writerows(rows)
            self._file.flush()
            if time.monotonic() - self._last_sync > 1.0:
                os.fsync(self._file.fileno())
                self._last_sync = time.monotonic()

    def close(self):
        with self._lock:
            if not self._file.closed:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()


def _blank(value):
    return "" if value is None else value


class RunDir(object):
    """Writer for one run directory (see README: run directory contract)."""

    def __init__(self, path, run_id):
        self.path = path
        self.run_id = run_id
        os.makedirs(os.path.join(path, "checkpoints"), exist_ok=True)
        self.phases = CsvLog(self.file("phases.csv"), PHASE_COLUMNS)
        self.epochs = CsvLog(self.file("epochs.csv"), EPOCH_COLUMNS)
        self.samples = CsvLog(self.file("samples.csv"), SAMPLE_COLUMNS)
        self._heartbeat_stop = threading.Event()
        self._heartbeat = None

    def file(self, name):
        return os.path.join(self.path, name)

    # -- contract files -----------------------------------------------------------------------
    def write_config(self, config):
        write_json_atomic(self.file("config.json"), config)

    def write_summary(self, summary):
        summary = dict(summary, run_id=self.run_id, heartbeat_wall=time.time())
        write_json_atomic(self.file("summary.json"), summary)

    def read_summary(self):
        path = self.file("summary.json")
        return read_json(path) if os.path.exists(path) else None

    def log_phase(self, phase, epoch, start, end):
        """`start`/`end` are (monotonic, wall) pairs."""
        self.phases.write([(self.run_id, phase, _blank(epoch), "%.6f" % start[0],
                            "%.6f" % end[0], "%.6f" % start[1], "%.6f" % end[1])])

    def log_epoch(self, row):
        self.epochs.write([[self.run_id] + [_blank(row.get(c)) for c in EPOCH_COLUMNS[1:]]])

    def log_samples(self, samples):
        if samples:
            self.samples.write([(self.run_id,) + tuple(_blank(v) for v in s.as_row())
                                for s in samples])

    def save_masks(self, histories):
        """`histories`: {ratio: [(epoch, bool mask), ...]} -> masks.npz (written atomically)."""
        arrays = {}
        for ratio, history in histories.items():
            key = "ratio_%g" % ratio
            arrays[key + "_epochs"] = np.array([e for e, _ in history], dtype=np.int64)
            arrays[key + "_masks"] = (np.stack([m for _, m in history]).astype(bool) if history
                                      else np.zeros((0, 0), dtype=bool))
        tmp = self.file("masks.tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, self.file("masks.npz"))

    # -- checkpoints ----------------------------------------------------------------------------
    @property
    def checkpoint_path(self):
        return os.path.join(self.path, "checkpoints", "last.pt")

    def save_checkpoint(self, state):
        import torch
        tmp = self.checkpoint_path + ".tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint_path)

    def load_checkpoint(self):
        import torch
        path = self.checkpoint_path
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

    # -- liveness ------------------------------------------------------------------------------
    def start_heartbeat(self):
        """Touch `heartbeat` every few seconds, so a killed run is told apart from a running one."""
        beat = self.file("heartbeat")

        def loop():
            while not self._heartbeat_stop.is_set():
                with open(beat, "w") as f:
                    f.write("%.3f\n" % time.time())
                self._heartbeat_stop.wait(HEARTBEAT_PERIOD_S)

        self._heartbeat = threading.Thread(target=loop, name="heartbeat")
        self._heartbeat.daemon = True
        self._heartbeat.start()

    def close(self):
        self._heartbeat_stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
        for log in (self.phases, self.epochs, self.samples):
            log.close()


def completed(path):
    """True when `path` holds a run whose summary says it completed."""
    summary = os.path.join(path, "summary.json")
    if not os.path.exists(summary):
        return False
    try:
        return read_json(summary).get("status") == "complete"
    except ValueError:
        return False
