"""Building blocks the recipes share: the slimming search with Early-Bird detectors, physical
pruning of a ticket, and retraining the pruned network.

Each block is a resumable stage: it checks whether a resumed run already finished it and
records its own completion, so a recipe reads as the sequence of its stages.
"""
import math

import numpy as np

from ebedge.training import flops
from ebedge.config import schedules
from ebedge.prune.earlybird import EarlyBirdDetector
from ebedge.prune import weight_masks
from ebedge.prune.masks import bn_layers, channel_mask, split_mask
from ebedge.prune.physical import prune_model
from ebedge.prune.rounding import round_kept_channels
from ebedge.training.train import evaluate


def mask_overhead_flops(total_channels):
    """Cost of one mask: sorting |gamma| and a distance (the official code's own estimate)."""
    return int(total_channels * math.log2(max(total_channels, 2)) * 3 + 2 * total_channels)


def detectors_for(settings):
    """{prune ratio: EarlyBirdDetector} of the ratios `settings` searches side by side."""
    return {p: EarlyBirdDetector(p, epsilon=settings.epsilon, window=settings.window)
            for p in settings.prune_ratio}


class Search(object):
    """Slimming training of the dense network with one Early-Bird detector per ratio.

    The search stops when the first ratio's ticket is drawn (the paper's premise; the official
    `main.py` keeps training), unless `keep_searching` or `stop_on_ticket=False` (baselines that
    train the full schedule still record where the ticket would have been drawn). With
    `draw_at` (settings.draw_at, EB variants only) it trains exactly that many epochs, whatever
    the detectors say: the fixed-epoch tickets of Figs. 1, 2, 5 and Tables 1, 4.
    `model_transform(model) -> model` adapts the freshly built dense model (e.g. low precision);
    `optimizer_factory(model) -> optimizer` replaces the default SGD (e.g. one bound to hooks).
    """

    def __init__(self, ctx, stop_on_ticket=True, sparsity=None, after_backward=None,
                 after_step=None, model_transform=None, optimizer_factory=None,
                 on_epoch_end=None, draw_at=None):
        self.ctx = ctx
        self.on_epoch_end = on_epoch_end  # e.g. SFP's filter zeroing, run before the mask check
        s = ctx.settings
        self.ratios = s.prune_ratio
        self.draw_at = draw_at
        self.stop_on_ticket = stop_on_ticket and not s.keep_searching and draw_at is None
        self.sparsity = sparsity
        self.after_backward = after_backward
        self.after_step = after_step
        self.model_transform = model_transform
        self.optimizer_factory = optimizer_factory
        self.detectors = detectors_for(s)
        history = ctx.carry.setdefault("mask_history", {str(p): [] for p in self.ratios})
        for p in self.ratios:  # a resumed run replays its masks into fresh detectors
            for epoch, packed, size in history[str(p)]:
                self.detectors[p].update(epoch, np.unpackbits(packed)[:size].astype(bool))

    @property
    def primary(self):
        return self.detectors[self.ratios[0]]

    def eb_epochs(self):
        return {"%g" % p: d.eb_epoch for p, d in self.detectors.items()}

    def _check(self, epoch, model):
        if self.on_epoch_end is not None:
            self.on_epoch_end(epoch, model)
        history = self.ctx.carry["mask_history"]
        for p, detector in self.detectors.items():
            mask = channel_mask(model, p)
            if detector.update(epoch + 1, mask):
                self.ctx.say("Early-Bird ticket for p=%g drawn after %d epochs" % (p, epoch + 1))
                if p == self.ratios[0] and self.ctx.settings.keep_searching \
                        and self.draw_at is None:
                    # searching on for study: the ticket is still the network drawn now
                    self.ctx.carry["ticket_state"] = {k: v.detach().cpu().clone()
                                                      for k, v in model.state_dict().items()}
            history[str(p)].append((epoch + 1, np.packbits(mask), mask.size))
            self.ctx.add_flops("search", mask_overhead_flops(mask.size))
        self.ctx.rundir.save_masks({p: [(e, np.unpackbits(b)[:n].astype(bool))
                                        for e, b, n in history[str(p)]]
                                    for p in self.ratios})
        return {"mask_distance": self.primary.last_distance,
                "stop": self.stop_on_ticket and self.primary.eb_epoch is not None}

    def run(self, model=None):
        """Returns the model at the end of the search (the ticket when one was drawn).

        `model`: the dense network to train (default a fresh one; LT passes the one whose
        initial weights it saved).
        """
        ctx = self.ctx
        if ctx.is_finished("search"):
            return ctx.restored_model()
        model = model if model is not None else ctx.build_model()
        if self.model_transform is not None:
            model = self.model_transform(model)
        ctx.carry.setdefault("params_dense", flops.count_params(model))
        ctx.carry.setdefault("forward_flops_dense", ctx.forward_flops(model))
        optimizer = self.optimizer_factory(model) if self.optimizer_factory is not None else None
        last = self.draw_at if self.draw_at is not None else ctx.settings.epochs
        ctx.run_epochs("search", model, 0, last, sparsity=self.sparsity,
                       on_epoch_end=self._check, optimizer=optimizer,
                       after_backward=self.after_backward, after_step=self.after_step)
        ctx.finish_stage("search", model)
        return model


def prune_stage(ctx, model, mask, reinit=False, weights_from=None):
    """Physically prune `model` to `mask`; with `reinit`, fresh weights of the pruned shape;
    with `weights_from` (a model of `model`'s shape: LT's initial weights), its kept slices."""
    if ctx.is_finished("prune"):
        return ctx.restored_model()
    with ctx.phase("prune"):
        mask = round_kept_channels(model, mask, ctx.settings.channel_multiple)  # beyond the paper
        guarded = []
        if weights_from is not None:  # both prunes must keep the same channels
            mask, guarded = _guard_empty_layers(model, mask)
            model = weights_from
        pruned, report = prune_model(model, mask)
        report.guarded_layers = list(report.guarded_layers) + guarded
        if reinit:
            pruned = ctx.build_model(cfg=report.cfg)
        pruned = pruned.to(ctx.device)
    ctx.add_flops("prune", mask_overhead_flops(mask.size))
    ctx.carry["prune"] = {"cfg": report.cfg, "kept_channels": int(report.kept_channels),
                          "total_channels": int(report.total_channels),
                          "guarded_layers": list(report.guarded_layers),
                          "params_pruned": flops.count_params(pruned),
                          "forward_flops_pruned": ctx.forward_flops(pruned),
                          "reinit": bool(reinit)}
    ctx.say("pruned to %d of %d channels (%d params)" % (
        report.kept_channels, report.total_channels, ctx.carry["prune"]["params_pruned"]))
    ctx.finish_stage("prune", pruned)
    return pruned


def _guard_empty_layers(model, mask):
    """`mask` with physical pruning's guard applied up front: an empty layer keeps its
    largest-|gamma| channel. Returns (mask, names of the guarded layers)."""
    parts, guarded = [], []
    for (name, bn), keep in zip(bn_layers(model), split_mask(model, mask)):
        keep = keep.copy()
        if not keep.any():
            keep[int(np.argmax(bn.weight.detach().abs().cpu().numpy()))] = True
            guarded.append(name)
        parts.append(keep)
    return np.concatenate(parts), guarded


def retrain_stage(ctx, model, searched_epochs=None, epochs=None, **loop_options):
    """Retrain the pruned model; returns the number of epochs it trained (0: none to train).

    Length: settings.retrain_epochs when given (a fresh schedule); else `epochs` (a fresh
    schedule: the baselines' fine-tuning of a whole schedule, EB re-init's full schedule); else the
    remaining epochs of the original schedule after `searched_epochs` (EB fine-tuning). The
    learning rates are settings.retrain_lr_schedule where given, else the run's schedule.
    `loop_options` go to the epoch loop (e.g. `sparsity=0.0` for baselines that fine-tune
    without the BN L1 term).
    """
    s = ctx.settings
    fresh = s.retrain_epochs if s.retrain_epochs is not None else epochs
    if fresh is not None:
        schedule = schedules.retrain_schedule_for(s, fresh)
        first, last = 0, fresh
    else:
        schedule = schedules.retrain_schedule_for(s)
        first, last = searched_epochs, s.epochs
    trained = ctx.carry.get("retrained_epochs", 0)
    if last > first and not ctx.is_finished("retrain"):
        trained = ctx.run_epochs("retrain", model, first, last, schedule=schedule, **loop_options)
        ctx.carry["retrained_epochs"] = trained
        ctx.finish_stage("retrain", model)
    return trained


def eval_stage(ctx, model):
    """Evaluate `model` once (phase `eval`) and make it the reported test accuracy; for methods
    whose last trained epoch was evaluated before the network was pruned (SFP, and EB when its
    ticket came in the last epoch or never, so that nothing is left to retrain)."""
    with ctx.phase("eval"):
        test = evaluate(model, ctx.test_loader, ctx.device)
    ctx.note_accuracy("pruned", test)
    return test.accuracy


def pruned_fields(ctx):
    """Summary fields describing the pruned network (after `prune_stage`)."""
    p = ctx.carry["prune"]
    return {"params_dense": ctx.carry["params_dense"], "params_pruned": p["params_pruned"],
            "forward_flops_dense": ctx.carry["forward_flops_dense"],
            "forward_flops_pruned": p["forward_flops_pruned"], "pruned_cfg": p["cfg"],
            "kept_channels": p["kept_channels"], "total_channels": p["total_channels"],
            "guarded_layers": p["guarded_layers"]}


def mask_stage(ctx, model, keep, **fields):
    """Stage `prune` of an unstructured method: zero the removed weights of `model` (dense shape
    kept); `fields` are recorded beside the usual pruning facts."""
    if ctx.is_finished("prune"):
        return ctx.restored_model()
    with ctx.phase("prune"):
        weight_masks.apply(model, weight_masks.split(model, keep))
    channels = sum(bn.num_features for _, bn in bn_layers(model))
    ctx.carry["prune"] = dict({"cfg": model.cfg, "kept_channels": channels,
                               "total_channels": channels, "guarded_layers": [],
                               "params_pruned": flops.count_params(model),
                               "forward_flops_pruned": ctx.forward_flops(model)}, **fields)
    ctx.finish_stage("prune", model)
    return model
