"""Dense training: the unpruned network for the whole schedule, without the BN sparsity term.

This is the reference accuracy and the reference cost. Its training is marked as the `search`
phase so that every method's phases line up (search + prune + retrain = training).
"""
from ebedge.config.catalog import method


@method("dense", "dense training", lambda n, e: (n, 0, "N dense"), mask_kind="dense", order=0)
def run(ctx):
    from ebedge.training import flops
    if ctx.is_finished("search"):
        model = ctx.restored_model()
    else:
        model = ctx.build_model()
        ctx.run_epochs("search", model, 0, ctx.settings.epochs, sparsity=0.0)
        ctx.finish_stage("search", model)
    params = flops.count_params(model)
    forward = ctx.forward_flops(model)
    return ctx.result(eb_epoch=None, eb_epochs={}, searched_epochs=ctx.settings.epochs,
                      params_dense=params, params_pruned=params, forward_flops_dense=forward,
                      forward_flops_pruned=forward)
