"""Lottery ticket, one-shot (Frankle & Carbin, ICLR 2019): train, prune, rewind, retrain.

Paper: save the initial weights, train the dense network, remove the p smallest-magnitude
weights (unstructured; one global ranking, as they did for VGG and ResNet), reset the survivors
to their initial values, retrain the sparse network for the whole schedule, plain SGD (no
sparsity term). The network keeps its dense shape, so both trainings cost dense FLOPs: the EB
paper's Table 2 prices LT (one-shot) at 2 x dense at every ratio.

`lt` does exactly that: `search` trains the dense network for the whole schedule without the BN
L1 term (the Early-Bird detectors still run, information only), `prune` ranks |w| of every conv
and linear weight globally and rewinds the kept ones to their initial values (the removed ones
are zeroed and held at zero after every step), `retrain` trains the dense-shaped network for the
whole schedule (settings.retrain_epochs overrides), again without the L1 term.

`lt-structured` is a comparison the paper did not make: the same protocol with the structured
criterion the other methods share (slimming search with the L1 term, so the global BN-scale
threshold ranks channels meaningfully; physically smaller network; rewinding is exact: the
initial weights sliced by the same channel mask), fine-tuned without the L1 term.

The initial weights live in `checkpoints/initial.pt`, so a resumed run rewinds to the same ones.
"""
import copy
import os

from ebedge.config.catalog import method
from ebedge.methods.ns import full_search_result

INITIAL_FILE = os.path.join("checkpoints", "initial.pt")


@method("lt", "lottery ticket", lambda n, e: (2 * n, 0, "2N dense (train, rewind, retrain unstructured)"),
        mask_kind="weights", order=10)
def run(ctx):
    import torch
    from ebedge.prune import weight_masks
    from ebedge.training.stages import Search, mask_stage, retrain_stage
    initial = initial_model(ctx)
    search = Search(ctx, stop_on_ticket=False, sparsity=0.0)
    trained = search.run(model=copy.deepcopy(initial))
    if "lt_mask" not in ctx.carry:
        with ctx.phase("prune"):
            keep = weight_masks.global_keep_mask(
                weight_masks.score_weights(trained, torch.abs), ctx.settings.prune_ratio[0])
        ctx.carry["lt_mask"] = weight_masks.pack(keep)
    kept = weight_masks.unpack(ctx.carry["lt_mask"])
    rewound = mask_stage(ctx, initial, kept)
    retrain_stage(ctx, rewound, epochs=ctx.settings.epochs, sparsity=0.0,
                  after_step=weight_masks.holder(rewound, kept))
    return full_search_result(ctx, search, retrain="rewind", unstructured=True,
                              kept_weights=int(kept.sum()), total_weights=int(kept.size))


@method("lt-structured", "structured lottery ticket", lambda n, e: (n, n, "N dense + N pruned"),
        order=60)
def run_structured(ctx):
    from ebedge.prune.masks import channel_mask
    from ebedge.training.stages import Search, prune_stage, retrain_stage
    initial = initial_model(ctx)
    search = Search(ctx, stop_on_ticket=False)
    trained = search.run(model=copy.deepcopy(initial))
    pruned = prune_stage(ctx, trained, channel_mask(trained, ctx.settings.prune_ratio[0]),
                         weights_from=initial)
    retrain_stage(ctx, pruned, epochs=ctx.settings.epochs, sparsity=0.0)
    return full_search_result(ctx, search, retrain="rewind", unstructured=False)


def initial_model(ctx):
    """The dense network as initialised: saved by the first run, loaded by a resumed one."""
    import torch
    path = ctx.rundir.file(INITIAL_FILE)
    model = ctx.build_model()
    if os.path.exists(path):
        model.load_state_dict(torch.load(path, map_location=ctx.device))
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.save(model.state_dict(), path)
    return model
