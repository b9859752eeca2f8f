"""ThiNet (Luo et al., ICCV 2017): keep the channels the next layer needs to reconstruct its output.

Paper: on a pretrained VGG-16, layer by layer, sample (image, location, output channel) points
of the NEXT layer; each input channel contributes one term to that output; greedily remove the
channel whose removal (with those already removed) changes the sampled outputs least, at a
uniform per-layer ratio; rescale the remaining weights by least squares; fine-tune briefly after
each layer and longer at the end.

What we do, as the EB paper's comparison (train dense, prune, retrain) asks: `search` trains the
dense network for the whole schedule (plain training, no BN L1 term: the criterion does not use
BN scales); `prune` samples the next layer's inputs from a few training batches (their forward
FLOPs are counted), runs the greedy selection for every prunable layer at ratio p, prunes
physically; `retrain` fine-tunes for as many epochs as the search (settings.retrain_epochs
overrides), like NS, and without the BN L1 term (ThiNet's fine-tuning is plain SGD).
Which layers: every VGG conv (its consumer is the next conv, the last one's the classifier); in
residual blocks the layers whose outputs stay inside the block, as the ThiNet paper did for
ResNet-50 (the first two convs of each bottleneck, reconstructing the second and third conv's
outputs; the first conv of a basic block; PreResNet's conv1 and conv2). Trunk channels (block
inputs, the final BN) are kept whole: they have no single next layer to reconstruct.
Deliberate differences: all layers are selected in one pass over the unpruned network's
activations, no least-squares rescaling and no per-layer fine-tuning (the final fine-tuning
recovers what those would).
"""
from ebedge.config.catalog import method


@method("thinet", "ThiNet", lambda n, e: (n, n, "N dense + N pruned"),
        mask_kind="in-block layers", order=40)
def run(ctx):
    from ebedge.prune.thinet import select_channels
    from ebedge.training.stages import Search, prune_stage, pruned_fields, retrain_stage
    search = Search(ctx, stop_on_ticket=False, sparsity=0.0)
    trained = search.run()
    mask = None if ctx.is_finished("prune") else select_channels(ctx, trained)
    pruned = prune_stage(ctx, trained, mask)
    epochs = ctx.settings.epochs
    retrain_stage(ctx, pruned, epochs=epochs, sparsity=0.0)
    return ctx.result(eb_epoch=None, eb_epochs=search.eb_epochs(), ticket_epoch=epochs,
                      searched_epochs=epochs, **pruned_fields(ctx))
