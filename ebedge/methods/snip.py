"""SNIP (Lee et al., ICLR 2019): prune at initialisation by connection sensitivity, then train.

Paper: at initialisation, one mini-batch gives each weight's connection sensitivity |g * w|
(g = dLoss/dw); the weights outside the global top (1 - p) are removed for good and the sparse
network is trained for the whole schedule, plain SGD (no sparsity term). That is unstructured:
the network keeps its dense shape, so on a GPU it saves no FLOPs, time or energy, which is how
the EB paper's Table 2 prices it (1 x dense at every ratio).

`snip` does exactly that: the scoring pass (one forward and backward on the dense net, its FLOPs
counted) is the `search`; `prune` zeroes the removed weights; `retrain` trains the dense-shaped
network for the whole schedule (settings.retrain_epochs overrides) with the removed weights
held at zero after every step and no BN L1 term, as the original. FLOPs are dense FLOPs;
`kept_weights` / `total_weights` say how sparse it is.

`snip-channel` is a comparison the paper did not make: the same sensitivity summed per output
channel over the filter that produces it (methods/filters.py for the residual nets), one global
ranking, the top (1 - p) of channels kept, the network pruned physically and trained smaller.
"""
from ebedge.config.catalog import method


@method("snip", "SNIP", lambda n, e: (n, 0, "N dense (unstructured; one scoring mini-batch not counted)"),
        mask_kind="weights", order=20)
def run(ctx):
    from ebedge.prune import weight_masks
    from ebedge.training.stages import mask_stage, pruned_fields, retrain_stage
    model = score_stage(ctx, unstructured=True)
    kept = weight_masks.unpack(ctx.carry["snip_mask"])
    model = mask_stage(ctx, model, kept)
    retrain_stage(ctx, model, epochs=ctx.settings.epochs, sparsity=0.0,
                  after_step=weight_masks.holder(model, kept))
    return ctx.result(eb_epoch=None, eb_epochs={}, searched_epochs=0, unstructured=True,
                      kept_weights=int(kept.sum()), total_weights=int(kept.size),
                      **pruned_fields(ctx))


@method("snip-channel", "channel SNIP",
        lambda n, e: (0, n, "N pruned (one scoring mini-batch not counted)"),
        mask_kind="global filters", order=70)
def run_channel(ctx):
    from ebedge.prune import weight_masks
    from ebedge.training.stages import prune_stage, pruned_fields, retrain_stage
    model = score_stage(ctx, unstructured=False)
    model = prune_stage(ctx, model, weight_masks.unpack(ctx.carry["snip_mask"]))
    retrain_stage(ctx, model, epochs=ctx.settings.epochs, sparsity=0.0)
    return ctx.result(eb_epoch=None, eb_epochs={}, searched_epochs=0, unstructured=False,
                      **pruned_fields(ctx))


def score_stage(ctx, unstructured):
    """Connection sensitivity of a fresh network on one mini-batch -> keep mask in ctx.carry."""
    import torch.nn.functional as F
    from ebedge.prune import weight_masks
    from ebedge.prune.filters import channel_scores, global_mask
    from ebedge.training import flops
    if ctx.is_finished("search"):
        return ctx.restored_model()
    model = ctx.build_model()
    forward = ctx.forward_flops(model)
    ctx.carry["params_dense"] = flops.count_params(model)
    ctx.carry["forward_flops_dense"] = forward
    ratio = ctx.settings.prune_ratio[0]
    with ctx.phase("search", 0):
        images, labels = next(iter(ctx.train_loader))
        model.train()
        model.zero_grad()
        F.cross_entropy(model(images.to(ctx.device)), labels.to(ctx.device)).backward()
        if unstructured:
            keep = weight_masks.global_keep_mask(
                weight_masks.score_weights(model, lambda w: (w.grad * w).abs()), ratio)
        else:
            keep = global_mask(channel_scores(model, lambda w: (w.grad * w).abs()), ratio)
        model.zero_grad()
    ctx.add_flops("search", 3 * forward * images.size(0))
    ctx.carry["snip_mask"] = weight_masks.pack(keep)
    ctx.finish_stage("search", model)
    return model
