"""The run directory under DDP: rank 0 writes it; the other ranks keep their phase windows and
(one process per node) their meter samples in a `ShadowRunDir`. Phase edges are collective, so
every rank stamps its own clock at the same instant and each node's samples are integrated over
its own stamps of the same windows (`node_energy` adds one row set per further node and a
cluster total)."""
import os
import shutil
import socket
import tempfile
import time

from ebedge.config.formats import PHASE_COLUMNS, SAMPLE_COLUMNS
from ebedge.measure import accounting
from ebedge.run.rundir import RunDir, boot_id
from ebedge.util.safeio import CsvLog, read_json


class ShadowRunDir(object):
    """The run directory as seen by a rank other than 0: it reads rank 0's checkpoint and summary,
    keeps in memory what rank 0 writes (phase windows on this clock; samples where this process
    reads its node's meters), and gives a method's own files a private scratch folder."""

    def __init__(self, path, run_id):
        self.path = path
        self.run_id = run_id
        self.windows = []
        self.samples = []
        self.scratch = tempfile.mkdtemp(prefix="ebedge-rank-")
        self.boot_id = boot_id()
        self.started_mono = time.monotonic()
        self.write_error = None
        self.phase_rows = self.epoch_rows = 0

    def file(self, name):
        return os.path.join(self.scratch, name)

    @property
    def checkpoint_path(self):
        return os.path.join(self.path, "checkpoints", "last.pt")

    def load_checkpoint(self):
        return RunDir.load_checkpoint(self)

    def read_summary(self):
        path = os.path.join(self.path, "summary.json")
        return read_json(path) if os.path.exists(path) else None

    def log_phase(self, phase, epoch, start, end):
        self.windows.append((phase, epoch) + tuple(start[:2]) + tuple(end[:2]))

    def log_samples(self, samples):
        self.samples.extend(samples)

    def write_config(self, config):
        pass

    def write_summary(self, summary):
        pass

    def log_epoch(self, row):
        pass

    def save_masks(self, histories):
        pass

    def save_checkpoint(self, state):
        pass

    def start_heartbeat(self):
        pass

    def close(self):
        shutil.rmtree(self.scratch, ignore_errors=True)


def gather_nodes(world, rundir, sampler):
    """On rank 0: [(node, host, windows, samples, meter names)] of every further node; elsewhere []."""
    mine = None
    if world.samples_meters and not world.is_main and sampler is not None:
        mine = (world.node, socket.gethostname(), rundir.windows, rundir.samples,
                [m.name for m in sampler.meters])
    got = world.gather(mine)
    return [g for g in got if g is not None] if world.is_main else []


def node_energy(rundir, nodes, main_rows, main_meters, include_eval):
    """energy.csv rows of the further nodes (meter `NAME@node<k>`) and, with more than one node,
    the cluster total (meter `cluster`): per phase, the sum of every node's headline total.
    Each further node's phases and samples are also written as phases-node<k>.csv and
    samples-node<k>.csv, on that node's clock."""
    rows_by_node = [(0, main_rows, main_meters)]
    extra = []
    for node, host, windows, samples, names in nodes:
        phases_log = CsvLog(rundir.file("phases-node%d.csv" % node), PHASE_COLUMNS)
        phases_log.write([[rundir.run_id, w[0], "" if w[1] is None else w[1], w[2], w[4], w[3],
                           w[5], ""] for w in windows])
        phases_log.close()
        samples_log = CsvLog(rundir.file("samples-node%d.csv" % node), SAMPLE_COLUMNS)
        samples_log.write([[rundir.run_id] + ["" if v is None else v for v in s.as_row()] + [""]
                           for s in samples])
        samples_log.close()
        rows = accounting.energy_rows(rundir.run_id, [(w[0], w[1], w[2], w[4]) for w in windows],
                                      samples, include_eval=include_eval)
        for row in rows:
            row["meter"] = "%s@node%d" % (row["meter"], node)
        rows_by_node.append((node, rows, ["%s@node%d" % (n, node) for n in names]))
        extra.extend(rows)
    if len(rows_by_node) > 1:
        extra.extend(_cluster_rows(rundir.run_id, rows_by_node))
    return extra


def _cluster_rows(run_id, rows_by_node):
    """Per phase, the sum over nodes of each node's first meter with a total (as `headline`)."""
    totals = {}
    order = []
    methods = set()
    for _, rows, meter_order in rows_by_node:
        head = accounting.headline(rows, meter_order, None)
        if head is None:
            continue
        methods.add(head["method"])
        for row in rows:
            if row["meter"] == head["meter"] and row["rail"] == head["rail"]:
                if row["phase"] not in totals:
                    order.append(row["phase"])
                    totals[row["phase"]] = dict(row, meter="cluster", rail="total", n_nodes=0,
                                                energy_j=0.0, net_energy_j=0.0, idle_power_w=0.0,
                                                n_samples=0, rate_hz=None,
                                                sensor_update_hz=None)
                total = totals[row["phase"]]
                total["n_nodes"] += 1
                total["energy_j"] += row["energy_j"]
                total["n_samples"] += row["n_samples"] or 0
                for key in ("net_energy_j", "idle_power_w"):
                    total[key] = (None if total[key] is None or row[key] is None
                                  else total[key] + row[key])
                for key, pick in (("max_gap_s", max), ("covered_frac", min),
                                  ("uncertainty_pct", max)):
                    values = [v for v in (total.get(key), row.get(key)) if v is not None]
                    total[key] = pick(values) if values else None
    out = []
    for phase in order:
        total = totals[phase]
        total["run_id"] = run_id
        total["method"] = "measured" if methods == {"measured"} else "modelled"
        total["energy_kj"] = total["energy_j"] / 1000.0
        total["avg_power_w"] = (total["energy_j"] / total["duration_s"]
                                if total["duration_s"] else None)
        out.append(total)
    return out
