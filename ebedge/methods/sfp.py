"""Soft filter pruning (He et al., IJCAI 2018): prune while training, filters may recover.

Paper: train from scratch; after every epoch, in each pruned conv layer set the fraction p of
filters with the smallest L2 norm to zero, but keep updating them, so a wrongly zeroed filter can
grow back; after the last epoch remove the zeroed filters for good. No fine-tuning.

What we do: that over the layers our physical pruning can narrow (every VGG conv; the inner
convs of ResNet and PreResNet blocks, whose outputs stay inside the block), with the same ratio p
per layer: after every epoch the weakest filters' weights (only the weights, as the paper) are
zeroed and keep receiving gradients, so they may grow back. Plain training (no BN L1 term). The
equivalence with the pruned network matters only at the end: `prune` removes the filters that are
weakest after the last epoch, dropping their BN shift as all our pruning does, then an `eval` of
the pruned network gives the reported `test_acc`. The search trains the dense network, so its
FLOPs are dense FLOPs. `best_test_acc` is the pruned network's single evaluation (the search's
epochs evaluate a soft-pruned network, not the final one). settings.retrain_epochs
adds an optional fine-tuning of that many epochs. The Early-Bird detectors still run on the BN
scales; `eb_epochs` is information only.
"""
from ebedge.config.catalog import method


@method("sfp", "SFP", lambda n, e: (n, 0, "N dense (soft pruning keeps the dense shape)"),
        mask_kind="per-layer filters", order=50)
def run(ctx):
    from ebedge.prune.filters import channel_scores, per_layer_mask, zero_weakest_filters
    from ebedge.training.stages import (Search, eval_stage, prune_stage, pruned_fields,
                                        retrain_stage)
    ratio = ctx.settings.prune_ratio[0]
    search = Search(ctx, stop_on_ticket=False, sparsity=0.0,
                    on_epoch_end=lambda epoch, model: zero_weakest_filters(model, ratio))
    trained = search.run()
    mask = per_layer_mask(channel_scores(trained, lambda w: w * w), ratio)
    pruned = prune_stage(ctx, trained, mask)
    epochs = ctx.settings.epochs
    retrain_stage(ctx, pruned, searched_epochs=epochs)  # nothing unless retrain_epochs is set
    if ctx.settings.retrain_epochs is None:
        eval_stage(ctx, pruned)
    return ctx.result(eb_epoch=None, eb_epochs=search.eb_epochs(), ticket_epoch=epochs,
                      searched_epochs=epochs, **pruned_fields(ctx))
