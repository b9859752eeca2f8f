"""Multi-process training (DistributedDataParallel) on PyTorch's own launcher, torchrun.

A process started by torchrun (`torchrun --nproc-per-node N -m ebedge train ...`, or
`ebedge train --nproc N`, which runs torchrun for one machine) finds RANK, WORLD_SIZE, LOCAL_RANK
and GROUP_RANK in its environment; `World.from_env` joins the process group (NCCL on CUDA, gloo on
the CPU) and everything else follows from it:

- `--batch-size` stays the global batch; each rank trains its 1/N share of every epoch
  (`shard`), so a run on N processes follows the schedule of the same run on one, and FLOPs
  count every image once (rank 0 counts them);
- the model is wrapped in DDP for training (`wrap`, rebuilt when pruning replaces the model);
  gradients are averaged, so BN scales, masks and the Early-Bird decision are the same on every
  rank, and `agree` checks it each epoch by an all-reduce of a hash of the masks and the stop
  decision, failing the run on disagreement;
- rank 0 writes the run directory; the other ranks keep theirs in memory (ebedge.run.nodes).
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from ebedge.errors import EbedgeError


def is_main_process():
    """True outside torchrun and on its rank 0 (what prints and writes)."""
    return int(os.environ.get("RANK", "0")) == 0


class World(object):
    """This process's place among the training processes; a single process is a world of one."""

    def __init__(self, rank=0, size=1, local_rank=0, node=0, device=None, backend=None):
        self.rank = rank
        self.size = size
        self.local_rank = local_rank
        self.node = node
        self.device = device
        self.backend = backend
        self._ddp = None  # (model, its DDP wrapper)

    @classmethod
    def from_env(cls, device_name="auto"):
        """Join torchrun's process group when WORLD_SIZE > 1, else the world of one."""
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if size <= 1:
            return cls()
        import torch
        import torch.distributed as dist
        from ebedge.training.train import pick_device
        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        local_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        node = int(os.environ.get("GROUP_RANK", str(rank // max(local_size, 1))))
        device = pick_device(device_name)
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
            device = torch.device("cuda", local_rank)
        backend = "nccl" if device.type == "cuda" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend, init_method="env://")
        return cls(rank, size, local_rank, node, device, backend)

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def samples_meters(self):
        """One process per node reads that node's meters."""
        return self.local_rank == 0

    def describe(self):
        return {"world_size": self.size, "backend": self.backend, "rank": self.rank,
                "node": self.node}

    def summary_fields(self, summary):
        """`world_size`, and under DDP the backend and every rank's EB epoch (they must agree)."""
        if self.size == 1:
            return {"world_size": 1}
        return {"world_size": self.size,
                "distributed": {"backend": self.backend,
                                "eb_epoch_by_rank": self.gather(summary.get("eb_epoch"))}}

    def close(self):
        if self.size > 1:
            import torch.distributed as dist
            if dist.is_initialized():
                dist.destroy_process_group()

    # -- data and model ---------------------------------------------------------------------------
    def shard(self, loader, seed):
        """The training batches this rank trains on: its share of each global batch."""
        if self.size == 1:
            return loader
        from torch.utils.data import DataLoader
        if isinstance(loader, DataLoader):
            batch_size = loader.batch_size
            if batch_size % self.size:
                raise EbedgeError("--batch-size %d is the global batch; it must divide evenly "
                                  "over %d processes" % (batch_size, self.size))
            return SampledShard(loader, batch_size // self.size, self.rank, self.size, seed)
        return BatchShard(loader, self.rank, self.size)

    def wrap(self, model):
        """`model` in DDP for training; a new model (after pruning) gets a new wrapper."""
        if self.size == 1:
            return model
        if self._ddp is None or self._ddp[0] is not model:
            from torch.nn.parallel import DistributedDataParallel
            ids = [self.device.index] if self.device.type == "cuda" else None
            self._ddp = (model, DistributedDataParallel(model, device_ids=ids))
        return self._ddp[1]

    # -- collectives ------------------------------------------------------------------------------
    def _same_everywhere(self, code):
        """True when every rank passed the same integer (one all-reduce: max of (c, -c))."""
        import torch
        import torch.distributed as dist
        t = torch.tensor([code, -code], dtype=torch.int64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t[0]) == code == -int(t[1])

    def mark(self, phase, epoch):
        """A phase edge every rank reaches together; a rank elsewhere in the run fails it."""
        if self.size > 1 and not self._same_everywhere(_code("%s:%s" % (phase, epoch))):
            raise EbedgeError("rank %d reached phase %s (epoch %s) while another rank is "
                              "elsewhere: the processes no longer run the same schedule"
                              % (self.rank, phase, epoch))

    def agree(self, epoch, model, ratios, stop):
        """Fail loudly unless every rank holds the same channel masks and stop decision."""
        if self.size == 1:
            return
        from ebedge.prune.masks import channel_mask
        digest = hashlib.sha1(b"stop" if stop else b"go")
        for p in ratios:
            digest.update(np.packbits(channel_mask(model, p)).tobytes())
        if not self._same_everywhere(_code(digest.hexdigest())):
            raise EbedgeError("ranks disagree on the Early-Bird masks after epoch %d (rank %d); "
                              "the replicas have diverged" % (epoch + 1, self.rank))

    def reduce(self, result):
        """An EpochResult summed over the ranks' shares (loss weighted by images)."""
        if self.size == 1:
            return result
        import torch
        import torch.distributed as dist
        t = torch.tensor([result.loss * result.total, result.correct, result.total],
                         dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        result.total = int(t[2])
        result.correct = int(t[1])
        result.loss = float(t[0]) / max(result.total, 1)
        return result

    def gather(self, value):
        """[value of rank 0, value of rank 1, ...] on every rank."""
        if self.size == 1:
            return [value]
        import torch.distributed as dist
        out = [None] * self.size
        dist.all_gather_object(out, value)
        return out


def _code(text):
    """A 63-bit integer for `text`, the same in every process."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:15], 16)


class SampledShard(object):
    """A DataLoader rebuilt over a DistributedSampler (the per-image torchvision pipeline)."""

    def __init__(self, loader, batch_size, rank, size, seed):
        from torch.utils.data import DataLoader, DistributedSampler
        self.sampler = DistributedSampler(loader.dataset, num_replicas=size, rank=rank,
                                          shuffle=True, seed=seed)
        options = dict(num_workers=loader.num_workers, pin_memory=loader.pin_memory)
        if loader.num_workers and getattr(loader, "persistent_workers", False):
            options["persistent_workers"] = True
        self.loader = DataLoader(loader.dataset, batch_size=batch_size, sampler=self.sampler,
                                 **options)
        self.epoch = 0

    def __len__(self):
        return len(self.loader)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __iter__(self):
        self.sampler.set_epoch(self.epoch)  # each epoch its own order, the same on every rank
        self.epoch += 1
        return iter(self.loader)


class BatchShard(object):
    """This rank's slice of every global batch of an iterable of (images, labels) batches.

    Every rank draws the same global batches (the same seed), so the slices partition them; a
    final batch smaller than the number of ranks is skipped by all (DDP needs a step everywhere).
    """

    def __init__(self, batches, rank, size):
        self.batches = batches
        self.rank = rank
        self.size = size

    def __len__(self):
        return len(self.batches)

    def set_epoch(self, epoch):
        if hasattr(self.batches, "set_epoch"):
            self.batches.set_epoch(epoch)

    def __iter__(self):
        for images, labels in self.batches:
            n = labels.shape[0]
            if n < self.size:
                continue
            a, b = n * self.rank // self.size, n * (self.rank + 1) // self.size
            yield images[a:b], labels[a:b]


def launch(nproc, train_args):
    """`ebedge train ARGS` as `nproc` processes on this machine under torchrun; its exit code."""
    if nproc < 2:
        raise EbedgeError("--nproc must be at least 2 to launch processes, got %d" % nproc)
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc_per_node", str(nproc), "-m", "ebedge", "train"] + list(train_args)
    return subprocess.call(argv)


def settings_file(settings):
    """A temporary JSON file of `settings` for the processes to read (`--settings`)."""
    fd, path = tempfile.mkstemp(prefix="ebedge-settings-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(settings, f)
    return path
