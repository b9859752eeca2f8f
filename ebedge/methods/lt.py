"""Lottery ticket, one-shot (Frankle & Carbin, ICLR 2019): train, prune, rewind, retrain.

Paper: save the initial weights, train the dense network, prune the smallest-magnitude weights
(unstructured), reset the survivors to their initial values, retrain. We keep the protocol and
change the criterion to the structured one every method here shares: the training is the same
sparsity (slimming) training as NS, so that the global BN-scale threshold ranks channels
meaningfully, and the pruned network is genuinely smaller (real FLOP savings, comparable with EB
Train). Rewinding is exact: the pruned network's weights are the initial weights sliced by the
same channel mask. The retrain is as long as the search unless settings["retrain_epochs"] is set.

The initial weights live in `checkpoints/initial.pt`, so a resumed run rewinds to the same ones.
"""
import copy
import os

import torch

from ebedge.methods.ns import full_search_result
from ebedge.methods.stages import Search, prune_stage, retrain_stage
from ebedge.prune.masks import channel_mask

INITIAL_FILE = os.path.join("checkpoints", "initial.pt")


def run(ctx):
    initial = initial_model(ctx)
    search = Search(ctx, stop_on_ticket=False)
    trained = search.run(model=copy.deepcopy(initial))
    pruned = prune_stage(ctx, trained, channel_mask(trained, ctx.settings["prune_ratio"][0]),
                         weights_from=initial)
    retrain_stage(ctx, pruned, epochs=ctx.settings["epochs"])
    return full_search_result(ctx, search, retrain="rewind")


def initial_model(ctx):
    """The dense network as initialised: saved by the first run, loaded by a resumed one."""
    path = ctx.rundir.file(INITIAL_FILE)
    model = ctx.build_model()
    if os.path.exists(path):
        model.load_state_dict(torch.load(path, map_location=ctx.device))
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.save(model.state_dict(), path)
    return model
