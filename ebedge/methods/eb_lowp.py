"""EB Train LF and LL (paper section 4.3, Table 2): EB Train with an 8-bit search.

`eb-lf` searches for the ticket in 8-bit block floating point (ebedge.training.lowp) and retrains the
pruned network in FP32; `eb-ll` retrains it in 8 bits too. Both are `eb` with the low-precision
transform and optimizer hooks plugged into its search (and retrain, for LL); the retrain mode
(`finetune` by default, inheriting the ticket's weights as the official `main_c_lp.py` does)
comes from the settings like `eb`'s. The summary adds the bit width of every phase beside the
FP32-equivalent FLOPs; see ebedge.training.lowp for how savings are (and are not) counted.
"""
from ebedge.config.catalog import method

WORD_LENGTH = 8
ROUNDING = "stochastic"


def _run(ctx, retrain_in_low_precision):
    from ebedge.methods import eb
    from ebedge.training import lowp
    from ebedge.training.train import make_optimizer
    s = ctx.settings

    def to_low_precision(model):
        return lowp.make_low_precision(model, WORD_LENGTH, ROUNDING)

    def loop_options():
        """Optimizer factory and hooks that train a low-precision model (one hooks object each)."""
        hooks = lowp.LowPrecisionOptimizerHooks(WORD_LENGTH, ROUNDING)

        def optimizer_for(model):
            return hooks.bind(make_optimizer(model, s.lr, s.momentum, s.weight_decay))

        return optimizer_for, {"after_backward": hooks.after_backward,
                               "after_step": hooks.after_step}

    def retrain_setup(pruned):  # the pruned model is a fresh module: quantize it again
        optimizer_for, hooks = loop_options()
        return dict(hooks, optimizer=optimizer_for(to_low_precision(pruned)))

    optimizer_for, hooks = loop_options()
    summary = eb.run(ctx, search_options=dict(hooks, model_transform=to_low_precision,
                                              optimizer_factory=optimizer_for),
                     retrain_setup=retrain_setup if retrain_in_low_precision else None)
    bits = {"search": WORD_LENGTH, "prune": lowp.FULL_BITS,
            "retrain": WORD_LENGTH if retrain_in_low_precision else lowp.FULL_BITS}
    summary.update(
        lowp_bits=bits,
        lowp_format="block floating point, wl=%d, shared exponent per dim-0 slice, %s rounding"
                    % (WORD_LENGTH, ROUNDING),
        train_flops_total_bitscaled=lowp.bit_scaled_flops(ctx.carry["train_flops"], bits))
    return summary


@method("eb-lf", "EB Train (8-bit, LF)",
        lambda n, e: (e, n - e, "E dense + (N - E) pruned (FP32-equivalent)"),
        draws_ticket=True, order=100)
def run_lf(ctx):
    return _run(ctx, retrain_in_low_precision=False)


@method("eb-ll", "EB Train (8-bit, LL)",
        lambda n, e: (e, n - e, "E dense + (N - E) pruned (FP32-equivalent)"),
        draws_ticket=True, order=110)
def run_ll(ctx):
    return _run(ctx, retrain_in_low_precision=True)
