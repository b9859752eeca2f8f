"""What every method recipe runs on: data, device, phase marks, the epoch loop, checkpoints.

A method is a short function over a `MethodContext`. The context owns the parts that must be
identical across methods for energy and FLOPs to compare like for like: phase marks (with a
device synchronisation at each edge), evaluation attributed to `eval`, training FLOPs of every
epoch, one checkpoint per epoch, and resuming a stage where it stopped. A checkpoint holds every
random state (torch, numpy, python, the training loader's shuffling) and the number of phase
rows it accounts for, so a resumed run trains exactly the epochs an uninterrupted one would and
ebedge.run.resume can tell committed work from lost work.
"""
import contextlib
import random
import sys
import time

import click
import numpy as np
import torch

from ebedge.training import flops
from ebedge.config import schedules
from ebedge.util.eta import Eta
from ebedge.training.data import load_dataset, make_pipeline
from ebedge.training.distributed import World
from ebedge.models import build_model
from ebedge.training.train import (Compute, evaluate, make_optimizer, pick_device, seed_everything,
                          set_lr, synchronize, train_epoch)
from meters.base import now as _now


class MethodContext(object):
    """The parts a method recipe runs on. `open` loads the data and builds the pipelines; the
    constructor only assembles what it is given (no I/O), so the runner opens the context before
    it writes config.json, once, with the pipeline as it was resolved."""

    @classmethod
    def open(cls, settings, rundir, resume=None, quiet=False, on_mark=None, world=None):
        """Seed, load the dataset, build the loaders; `resume`: the last checkpoint dict."""
        world = world or World()  # the other training processes (DDP), if any
        device = world.device or pick_device(settings.device)
        seed_everything(settings.seed)
        data = load_dataset(settings.dataset, settings.data_dir, settings.download,
                            seed=settings.seed, limit_train=settings.limit_train,
                            limit_test=settings.limit_test)
        compute = Compute(device, settings.amp, settings.channels_last, settings.cudnn_benchmark)
        pipeline = make_pipeline(data, settings.batch_size, device, settings.data_pipeline,
                                 settings.workers, settings.seed,
                                 channels_last=settings.channels_last)
        return cls(settings, rundir, world, device, data, compute, pipeline, resume=resume,
                   quiet=quiet, on_mark=on_mark)

    def __init__(self, settings, rundir, world, device, data, compute, pipeline, resume=None,
                 quiet=False, on_mark=None):
        """`pipeline`: make_pipeline's (train loader, test loader, description)."""
        self.settings = settings
        self.rundir = rundir
        self.resume = resume  # the last checkpoint dict when resuming, else None
        self.quiet = quiet
        self.on_mark = on_mark  # called at every phase edge (e.g. the runner's guards)
        self.world, self.device, self.data, self.compute = world, device, data, compute
        self.train_loader, self.test_loader, self.pipeline = pipeline
        # what this rank trains on; methods that score on a batch (SNIP, ThiNet) read the whole
        # global batches of train_loader, the same on every rank
        self.rank_batches = self.world.shard(self.train_loader, settings.seed)
        self._loaders = {settings.batch_size: (self.train_loader, self.rank_batches)}
        self.n_train = len(self.data.train)
        self.schedule = schedules.schedule_for(settings)
        self.carry = dict(resume["carry"]) if resume else {}
        self.carry.setdefault("train_flops", {"search": 0, "prune": 0, "retrain": 0})
        self.carry.pop("phase_seconds", None)  # from older checkpoints; the runner counts rows
        self.finished = list(resume["finished"]) if resume else []

    # -- models ------------------------------------------------------------------------------------
    def build_model(self, cfg=None, arch=None):
        model = build_model(arch or self.settings.model, num_classes=self.data.num_classes,
                            cfg=cfg, width=self.settings.width,
                            prune_scope=self.settings.resnet_prune_scope)
        return model.to(self.device)

    def restored_model(self):
        """The model saved in the checkpoint being resumed from."""
        model = self.build_model(cfg=self.resume["cfg"], arch=self.resume["arch"])
        model.load_state_dict(self.resume["model_state"])
        self._restore_random_state()  # building the model drew from torch's generator
        return model

    def _restore_random_state(self):
        rng = self.resume["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if rng.get("loader") is not None and self._loader_generator() is not None:
            self._loader_generator().set_state(rng["loader"])

    def _use_loader_of(self, stage):
        """Make the training loader the one `stage` trains with: the retrain's own batch size where
        settings.retrain_batch_size sets one (the official ResNet-18 ImageNet retrain), else the run's."""
        size = ((self.settings.retrain_batch_size if stage == "retrain" else None)
                or self.settings.batch_size)
        if size not in self._loaders:
            loader = make_pipeline(self.data, size, self.device, self.settings.data_pipeline,
                                   self.settings.workers, self.settings.seed,
                                   channels_last=self.settings.channels_last)[0]
            self._loaders[size] = (loader, self.world.shard(loader, self.settings.seed))
        self.train_loader, self.rank_batches = self._loaders[size]

    def _loader_generator(self):
        """The generator that shuffles a DataLoader's training set (None: the device-resident
        batches, which draw each epoch from its own seed, or unseeded shuffling)."""
        generator = getattr(self.train_loader, "generator", None)
        return generator if isinstance(generator, torch.Generator) else None

    def describe(self):
        """How data and compute really run (config.json["compute"]): pipeline, workers, cache, AMP..."""
        return dict(self.pipeline, **self.compute.describe())

    def forward_flops(self, model):
        return flops.forward_macs(model, self.data.input_size) * 2

    # -- phase marks -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def phase(self, name, epoch=None):
        """Mark a phase window; queued device work is finished at both edges.

        `on_mark` (the runner's power-mode check, which runs nvpmodel and friends) goes before
        the start stamp, so its cost is charged to no phase.
        """
        if self.on_mark is not None:
            self.on_mark(name, epoch)
        synchronize(self.device)
        self.world.mark(name, epoch)  # every rank stamps the same instant
        start = _now()
        try:
            yield start
            self.world.mark(name, epoch)
        finally:
            synchronize(self.device)
            self.rundir.log_phase(name, epoch, start, _now())

    def say(self, message):
        if not self.quiet:
            click.echo(message, err=True)

    # -- stages and checkpoints --------------------------------------------------------------------
    def is_finished(self, stage):
        return stage in self.finished

    def checkpoint(self, stage, next_epoch, model, optimizer=None, phase_start=None):
        """Save the state after the work logged so far; `phase_start`: the start stamp of the
        phase this save runs in (its row, written after the save, is committed with it)."""
        self.rundir.save_checkpoint({
            "stage": stage, "next_epoch": next_epoch, "finished": list(self.finished),
            "carry": self.carry, "arch": model.arch, "cfg": model.cfg,
            "model_state": model.state_dict(),
            "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                    "python": random.getstate(),
                    "loader": (self._loader_generator().get_state()
                               if self._loader_generator() is not None else None)},
            "boot_id": self.rundir.boot_id, "phase_rows": self.rundir.phase_rows,
            "epoch_rows": self.rundir.epoch_rows,
            "own_phase_start": phase_start[0] if phase_start is not None else None,
        })

    def finish_stage(self, stage, model):
        """Record that `stage` is done; a resumed run skips it and starts from `model`."""
        self.finished.append(stage)
        self.checkpoint(stage, None, model)

    def note_accuracy(self, stage, test):
        """Make `test` (an evaluate() result) the reported accuracy. `best_test_acc` is the best
        over the stage that produced the reported one (the official code's best): the retrain
        for pruned networks, dense training for dense, a single evaluation where that is all."""
        if self.carry.get("accuracy_stage") != stage:
            self.carry.update(accuracy_stage=stage, best_test_acc=0.0, best_test_acc_top5=0.0)
        self.carry["test_acc"] = test.accuracy
        self.carry["test_acc_top5"] = test.accuracy_top5
        if test.accuracy >= self.carry["best_test_acc"]:
            self.carry["best_test_acc"] = test.accuracy
            self.carry["best_test_acc_top5"] = test.accuracy_top5

    def add_flops(self, phase, amount):
        self.carry["train_flops"][phase] = self.carry["train_flops"].get(phase, 0) + int(amount)

    # -- the epoch loop ----------------------------------------------------------------------------
    def run_epochs(self, stage, model, first, last, schedule=None, sparsity=None,
                   on_epoch_end=None, optimizer=None, after_backward=None, after_step=None):
        """Train epochs [first, last) of `schedule`, evaluating after each; returns epochs trained.

        `on_epoch_end(epoch, model)` may return a dict with `mask_distance` and `stop`.
        Resumes inside `stage` when the checkpoint says the run stopped there.
        """
        schedule = schedule or self.schedule
        sparsity = self.settings.sparsity if sparsity is None else sparsity
        self._use_loader_of(stage)  # before a resume restores the loader's shuffling state
        optimizer = optimizer or make_optimizer(model, schedule.lr, self.settings.momentum,
                                                self.settings.weight_decay)
        start = first
        if self.resume is not None and self.resume["stage"] == stage \
                and self.resume["next_epoch"] is not None:
            model.load_state_dict(self.resume["model_state"])
            optimizer.load_state_dict(self.resume["optimizer_state"])
            self._restore_random_state()
            start = self.resume["next_epoch"]
            self.resume = None  # consumed: later stages start fresh
            self.say("resuming %s at epoch %d" % (stage, start))
        step_flops = 3 * self.forward_flops(model) * self.n_train
        trained = start - first
        eta = Eta(last - start)  # stages stopped early (the EB search) go on in the next one
        for epoch in range(start, last):
            lr = schedule.lr_at(epoch)
            set_lr(optimizer, lr)
            began = time.monotonic()
            if hasattr(self.train_loader, "set_epoch"):  # the epoch's own order and augmentation
                self.train_loader.set_epoch(epoch)
            with self.phase(stage, epoch):
                result = self.world.reduce(self._train_one(stage, epoch, last, model, optimizer,
                                                           sparsity, after_backward, after_step))
                self.add_flops(stage, step_flops)
                extra = (on_epoch_end(epoch, model) if on_epoch_end is not None else None) or {}
                self.world.agree(epoch, model, self.settings.prune_ratio, extra.get("stop"))
            with self.phase("eval", epoch):
                test = evaluate(model, self.test_loader, self.device, self.compute)
            self.note_accuracy(stage, test)
            seconds = time.monotonic() - began
            eta.done(seconds)
            self.rundir.log_epoch({
                "phase": stage, "epoch": epoch, "lr": lr, "train_loss": round(result.loss, 6),
                "train_acc": round(result.accuracy, 6), "test_acc": round(test.accuracy, 6),
                "seconds": round(seconds, 3), "train_flops": step_flops,
                "mask_distance": extra.get("mask_distance")})
            self.say("%s epoch %d/%d  lr %.4g  loss %.3f  train %.1f%%  test %.1f%%%s  %.1fs  %s" % (
                stage, epoch + 1, last, lr, result.loss, 100 * result.accuracy,
                100 * test.accuracy,
                "" if extra.get("mask_distance") is None
                else "  mask-dist %.3f" % extra["mask_distance"], seconds, eta.text()))
            trained += 1
            with self.phase(stage, epoch) as mark:  # the checkpoint is training's bookkeeping
                self.checkpoint(stage, epoch + 1, model, optimizer, phase_start=mark)
            if extra.get("stop"):
                break
        return trained

    def _train_one(self, stage, epoch, last, model, optimizer, sparsity, after_backward,
                   after_step):
        kwargs = dict(sparsity=sparsity, after_backward=after_backward, after_step=after_step,
                      compute=self.compute)
        model = self.world.wrap(self.compute.prepare(model))  # DDP averages the gradients
        if self.quiet or not sys.stderr.isatty():
            return train_epoch(model, self.rank_batches, optimizer, self.device, **kwargs)
        with click.progressbar(length=len(self.rank_batches), file=sys.stderr,
                               label="%s %d/%d" % (stage, epoch + 1, last)) as bar:
            return train_epoch(model, self.rank_batches, optimizer, self.device,
                               progress=bar.update, **kwargs)

    # -- result ------------------------------------------------------------------------------------
    def result(self, **fields):
        """The method's summary fields, with those every method shares filled in."""
        tf = self.carry["train_flops"]
        out = {
            "test_acc": self.carry.get("test_acc"),
            "test_acc_top5": self.carry.get("test_acc_top5"),
            "best_test_acc": self.carry.get("best_test_acc"),
            "best_test_acc_top5": self.carry.get("best_test_acc_top5"),
            "accuracy_stage": self.carry.get("accuracy_stage"),
            "train_flops_search": tf.get("search", 0),
            "train_flops_prune": tf.get("prune", 0),
            "train_flops_retrain": tf.get("retrain", 0),
            "train_flops_total": tf.get("search", 0) + tf.get("prune", 0) + tf.get("retrain", 0),
            "n_train": self.n_train,
        }
        out.update(fields)
        return out
