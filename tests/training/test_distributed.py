"""Multi-process EB Train (DDP over gloo on the CPU): sharding, agreement, energy per node, and real
2-process runs compared with the single-process run of the same settings."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ebedge.run.nodes import ShadowRunDir, node_energy
from ebedge.training.distributed import BatchShard, SampledShard, World
from ebedge.run.rundir import RunDir
from ebedge.run.runner import execute
from support.resume_helpers import rows as _rows, summary as _summary
from meters.base import Sample

# EB drawn as soon as the FIFO is full (epsilon 1), so one process and two draw it at epoch 3.
SETTINGS = {"method": "eb", "model": "vgg11", "width": 0.0625, "limit_train": 256,
            "limit_test": 64, "batch_size": 64, "epochs": 5, "window": 3, "epsilon": 1.0,
            "device": "cpu", "meters": ["model"], "seed": 3}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_batch_shards_partition_every_global_batch():
    batches = [(torch.arange(n).float().view(n, 1), torch.arange(n)) for n in (64, 64, 7, 1)]
    parts = [list(BatchShard(batches, rank, 2)) for rank in range(2)]
    assert len(parts[0]) == len(parts[1]) == 3  # the 1-image tail cannot be split: skipped by all
    for a, b, (_, labels) in zip(parts[0], parts[1], batches):
        assert torch.equal(torch.cat([a[1], b[1]]), labels)


def test_sampled_shards_split_each_epoch_and_reshuffle():
    data = TensorDataset(torch.zeros(40, 1), torch.arange(40))
    loader = DataLoader(data, batch_size=8)
    shards = [SampledShard(loader, 4, rank, 2, seed=1) for rank in range(2)]
    epochs = []
    for _ in range(2):
        seen = [torch.cat([labels for _, labels in shard]).tolist() for shard in shards]
        assert sorted(seen[0] + seen[1]) == list(range(40)) and len(seen[0]) == 20
        epochs.append(seen[0])
    assert epochs[0] != epochs[1]
    assert len(shards[0]) == 5


def test_single_process_world_changes_nothing():
    world = World()
    loader = DataLoader(TensorDataset(torch.zeros(4, 1), torch.arange(4)), batch_size=2)
    model = torch.nn.Linear(1, 1)
    assert world.shard(loader, 0) is loader and world.wrap(model) is model
    assert world.summary_fields({"eb_epoch": 3}) == {"world_size": 1}
    assert world.gather("x") == ["x"]


def _constant(meter, watts, t0, t1, step=0.1):
    n = int(round((t1 - t0) / step))
    return [Sample(t0 + i * step, 1000.0 + i * step, meter, "total", watts) for i in range(n + 1)]


def test_further_node_is_integrated_on_its_own_clock_and_summed_into_the_cluster(tmp_path):
    rundir = RunDir(str(tmp_path / "run"), "run")
    main_rows = [{"run_id": "run", "phase": "search", "meter": "model", "rail": "total",
                  "method": "modelled", "duration_s": 2.0, "energy_j": 10.0, "energy_kj": 0.01,
                  "avg_power_w": 5.0, "idle_power_w": None, "net_energy_j": None,
                  "n_samples": 21, "rate_hz": 10.0, "max_gap_s": 0.1, "covered_frac": 1.0,
                  "uncertainty_pct": 50.0}]
    # node 1's monotonic clock is 500 s ahead of node 0's: its own window stamps say where
    windows = [("search", 0, 500.0, 1000.0, 502.0, 1002.0)]
    node1 = (1, "b", windows, _constant("model", 3.0, 499.0, 503.0), ["model"])
    rows = node_energy(rundir, [node1], main_rows, ["model"], include_eval=False)
    rundir.close()
    by_key = {(r["meter"], r["phase"]): r for r in rows}
    assert by_key[("model@node1", "search")]["energy_j"] == pytest.approx(6.0)
    cluster = by_key[("cluster", "search")]
    assert cluster["energy_j"] == pytest.approx(16.0) and cluster["n_nodes"] == 2
    assert cluster["method"] == "modelled"
    assert _rows(str(tmp_path / "run" / "phases-node1.csv"))[0]["t_start_mono"] == "500.0"
    assert len(_rows(str(tmp_path / "run" / "samples-node1.csv"))) == 41


def test_shadow_run_directory_writes_nothing(tmp_path):
    shadow = ShadowRunDir(str(tmp_path / "run"), "run")
    shadow.write_config({"a": 1})
    shadow.log_epoch({})
    shadow.save_checkpoint({})
    shadow.log_phase("search", 0, (1.0, 2.0), (3.0, 4.0))
    assert shadow.windows == [("search", 0, 1.0, 2.0, 3.0, 4.0)]
    assert shadow.load_checkpoint() is None and shadow.read_summary() is None
    own = shadow.file(os.path.join("checkpoints", "initial.pt"))  # e.g. LT's initial weights
    assert not own.startswith(str(tmp_path))
    shadow.close()
    assert not os.path.exists(os.path.dirname(own)) and not os.path.exists(str(tmp_path / "run"))


DIVERGE = """
import sys, torch
from ebedge.training.distributed import World
from ebedge.errors import EbedgeError
from ebedge.models import build_model
world = World.from_env("cpu")
torch.manual_seed(world.rank)  # replicas that have diverged
model = build_model("vgg11", width=0.0625)
for m in model.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
        m.weight.data.uniform_()
try:
    world.agree(0, model, [0.5], stop=False)
    print("agreed")
except EbedgeError as exc:
    print("refused:", exc)
world.close()
"""


def _env(rank, size, port, node=None):
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
               WORLD_SIZE=str(size), LOCAL_RANK="0" if node is not None else str(rank),
               LOCAL_WORLD_SIZE="1" if node is not None else str(size), OMP_NUM_THREADS="1")
    if node is not None:
        env["GROUP_RANK"] = str(node)
    return env


def _all(argvs, envs, timeout=600):
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for argv, env in zip(argvs, envs)]
    outs = []
    for proc in procs:
        try:
            outs.append(proc.communicate(timeout=timeout)[0].decode())
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
    return [p.returncode for p in procs], outs


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ranks_whose_masks_differ_both_refuse():
    port = _free_port()
    codes, outs = _all([[sys.executable, "-c", DIVERGE]] * 2, [_env(r, 2, port) for r in range(2)])
    assert codes == [0, 0], outs
    for out in outs:
        assert "refused: ranks disagree on the Early-Bird masks after epoch 1" in out, out


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The single-process run the distributed runs are compared with."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the two processes runs
    out = str(tmp_path_factory.mktemp("single") / "run")
    yield execute(SETTINGS, out=out, quiet=True)
    torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_nproc_2_eb_train_agrees_on_the_ticket_and_counts_each_image_once(tmp_path, single):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(SETTINGS))
    out = str(tmp_path / "ddp")
    done = subprocess.run([sys.executable, "-m", "ebedge.cli", "train", "--nproc", "2",
                           "--settings", str(settings), "--out", out, "--quiet"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=800)
    log = done.stdout.decode()
    assert done.returncode == 0, log
    assert log.count("results: %s" % out) == 1  # rank 0 alone reports
    summary = _summary(out)
    assert summary["status"] == "complete" and summary["world_size"] == 2
    assert summary["distributed"]["backend"] == "gloo"
    assert summary["distributed"]["eb_epoch_by_rank"] == [3, 3] == [single["eb_epoch"]] * 2
    # physical pruning, then retraining of the smaller network under DDP
    phases = [r["phase"] for r in _rows(os.path.join(out, "epochs.csv"))]
    assert phases == ["search"] * 3 + ["retrain"] * 2
    assert summary["params_pruned"] < summary["params_dense"]
    # FLOPs count every image once: search as the single run, retrain for the net it kept
    assert summary["train_flops_search"] == single["train_flops_search"]
    assert summary["train_flops_prune"] == single["train_flops_prune"]
    assert summary["train_flops_retrain"] == 2 * 3 * summary["forward_flops_pruned"] * 256
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["distributed"]["world_size"] == 2
    assert not [n for n in os.listdir(out) if n.startswith("samples-node")]  # one node


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_nodes_sample_their_own_meters_and_sum_into_a_cluster_total(tmp_path):
    dense = dict(SETTINGS, method="dense", epochs=2)
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(dense))
    out = str(tmp_path / "nodes")
    port = _free_port()
    argv = [sys.executable, "-m", "ebedge.cli", "train", "--settings", str(settings), "--out",
            out, "--quiet"]
    codes, logs = _all([argv, argv], [_env(r, 2, port, node=r) for r in range(2)], timeout=800)
    assert codes == [0, 0], logs
    summary = _summary(out)
    assert summary["world_size"] == 2
    assert summary["train_flops_total"] == 2 * 3 * summary["forward_flops_dense"] * 256
    rows = _rows(os.path.join(out, "energy.csv"))
    get = {(r["meter"], r["phase"]): float(r["energy_j"]) for r in rows}
    assert get[("cluster", "train_total")] == pytest.approx(
        get[("model", "train_total")] + get[("model@node1", "train_total")])
    assert get[("model@node1", "train_total")] > 0
    node1_phases = _rows(os.path.join(out, "phases-node1.csv"))
    assert [r["phase"] for r in node1_phases] == [r["phase"] for r in
                                                  _rows(os.path.join(out, "phases.csv"))]
