"""EB Train (You et al., ICLR 2020): draw the Early-Bird ticket, prune it, retrain it.

Paper: slimming training (L1 on BN scales) of the dense network while a detector compares the
channel masks of consecutive epochs; once the masks stop moving (FIFO of 5, every distance
<= epsilon) the ticket is drawn, the search stops, the network is physically pruned and
retrained. We do exactly that; the L1 term stays on while retraining, as in the official CIFAR
scripts (settings.retrain_sparsity sets another strength: 0 for the official ResNet-50 retrain).

`eb` is the paper's "EB Train (FF)": the ticket fine-tuned with its inherited weights for the
remaining epochs of the schedule. `eb-reinit` is the paper's "EB Train (re-init)": the ticket's
structure with fresh weights, retrained for the full schedule (the official `main_scratch.py`;
Table 2 costs re-init above FF at every ratio, which only the full schedule explains).
The setting reinit_epochs = "remaining" retrains a re-initialised ticket for the remaining epochs
only (a cheaper variant the paper did not run). Deliberate difference from the official code: its
`main_c.py` ("retrain_continue") never loads the pruned weights, so what it publishes as
fine-tuning is really re-init for the remaining epochs; we offer both, named for what they do.

The setting draw_at = E draws the ticket after exactly E epochs whatever the detector says
(the fixed-epoch tickets of Figs. 1, 2, 5 and Tables 1, 4); the detector still runs and its epoch
is reported. A search that ends without a ticket (or with one in its last epoch) prunes the last
network; it is evaluated as pruned, and the summary says `eb_epoch: null`, `no_ticket: true`.
"""
from ebedge.config.catalog import method


@method("eb", "EB Train", lambda n, e: (e, n - e, "E dense + (N - E) pruned"),
        draws_ticket=True, order=90)
def run(ctx, reinit=None, search_options=None, retrain_setup=None):
    """EB Train; `search_options` go to Search, `retrain_setup(pruned) -> retrain loop options`
    lets a variant (low precision) adapt the pruned model and its training loop."""
    from ebedge.prune.masks import channel_mask
    from ebedge.training.stages import (Search, eval_stage, prune_stage, pruned_fields,
                                        retrain_stage)
    s = ctx.settings
    if reinit is None:
        reinit = s.retrain == "reinit"
    search = Search(ctx, draw_at=s.draw_at, **(search_options or {}))
    ticket = search.run()
    searched = ctx.carry.get("searched_epochs")
    if searched is None:
        searched = s.draw_at or search.primary.eb_epoch or s.epochs
        ctx.carry["searched_epochs"] = searched
    no_ticket = s.draw_at is None and search.primary.eb_epoch is None
    if no_ticket:
        ctx.say("no Early-Bird ticket within %d epochs; pruning the last model" % searched)
    if "ticket_state" in ctx.carry:  # --keep-searching trained past the ticket
        ticket.load_state_dict(ctx.carry["ticket_state"])
    pruned = prune_stage(ctx, ticket, channel_mask(ticket, s.prune_ratio[0]), reinit=reinit)
    ctx.carry.pop("ticket_state", None)
    full = reinit and s.reinit_epochs == "full"
    options = dict(retrain_setup(pruned) if retrain_setup else {}, sparsity=s.retrain_sparsity)
    trained = retrain_stage(ctx, pruned, searched, epochs=s.epochs if full else None, **options)
    if trained == 0:  # nothing retrained: the reported accuracy must still be the pruned network's
        eval_stage(ctx, pruned)
    return ctx.result(eb_epoch=search.primary.eb_epoch, eb_epochs=search.eb_epochs(),
                      searched_epochs=searched, ticket_epoch=searched, draw_at=s.draw_at,
                      no_ticket=no_ticket,
                      retrain=("reinit" if reinit else "finetune"),
                      retrain_epochs_run=trained, **pruned_fields(ctx))


@method("eb-reinit", "EB Train (re-init)",
        lambda n, e: (e, n, "E dense + N pruned (re-init retrains the full schedule)"),
        draws_ticket=True, order=80)
def run_reinit(ctx):
    return run(ctx, reinit=True)
