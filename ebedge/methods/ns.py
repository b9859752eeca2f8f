"""Network slimming (Liu et al., ICCV 2017): sparsity training, prune, fine-tune.

Paper: train the dense network for the whole schedule with L1 on the BN scales (160 epochs on
CIFAR), prune the channels below one global |gamma| threshold, fine-tune the smaller network
(160 more epochs in the EB paper's setting) without the L1 term (the original's `--refine` run
does not pass `-sr`). We do exactly that with the shared stages: the same search as EB Train,
except it never stops early; the retrain is a fresh schedule as long as the search, without the
L1 term, unless settings.retrain_epochs says otherwise. Deliberate difference from the EB
official scripts, which keep `-sr` on while retraining every ticket: we follow network slimming.

The search still runs the Early-Bird detectors, so `eb_epochs` says where EB Train *would* have
drawn its ticket (information only); `eb_epoch` is None and `ticket_epoch` is the epoch the
pruned network really comes from, the end of the schedule.
"""
from ebedge.config.catalog import method


@method("ns", "network slimming", lambda n, e: (n, n, "N dense + N pruned"), order=30)
def run(ctx):
    from ebedge.prune.masks import channel_mask
    from ebedge.training.stages import Search, prune_stage, retrain_stage
    search = Search(ctx, stop_on_ticket=False)
    trained = search.run()
    pruned = prune_stage(ctx, trained, channel_mask(trained, ctx.settings.prune_ratio[0]))
    retrain_stage(ctx, pruned, epochs=ctx.settings.epochs, sparsity=0.0)
    return full_search_result(ctx, search)


def full_search_result(ctx, search, **fields):
    """Summary of a recipe whose search ran the whole schedule (NS, LT)."""
    from ebedge.training.stages import pruned_fields
    epochs = ctx.settings.epochs
    return ctx.result(eb_epoch=None, eb_epochs=search.eb_epochs(), ticket_epoch=epochs,
                      searched_epochs=epochs, **dict(pruned_fields(ctx), **fields))
