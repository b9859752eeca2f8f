"""EB Train (You et al., ICLR 2020): draw the Early-Bird ticket, prune it, retrain it.

Paper: slimming training (L1 on BN scales) of the dense network while a detector compares the
channel masks of consecutive epochs; once the masks stop moving (FIFO of 5, every distance
<= epsilon) the ticket is drawn, the search stops, the network is physically pruned and
retrained for the remaining epochs. We do exactly that.

`eb` fine-tunes the ticket with its inherited weights (the paper's text). `eb-reinit` is the
paper's "EB Train (re-init)": the ticket's structure with fresh weights. Deliberate difference
from the official code: its `main_c.py` ("retrain_continue") never loads the pruned weights, so
what it publishes as fine-tuning is really re-init; we offer both, named for what they do.
"""
from ebedge.methods.stages import Search, prune_stage, pruned_fields, retrain_stage
from ebedge.prune.masks import channel_mask


def run(ctx, reinit=None, search_options=None, retrain_setup=None):
    """EB Train; `search_options` go to Search, `retrain_setup(pruned) -> retrain loop options`
    lets a variant (low precision) adapt the pruned model and its training loop."""
    if reinit is None:
        reinit = ctx.settings["retrain"] == "reinit"
    search = Search(ctx, **(search_options or {}))
    ticket = search.run()
    searched = ctx.carry.get("searched_epochs")
    if searched is None:
        searched = search.primary.eb_epoch or ctx.settings["epochs"]
        ctx.carry["searched_epochs"] = searched
    if search.primary.eb_epoch is None:
        ctx.say("no Early-Bird ticket within %d epochs; pruning the last model" % searched)
    if "ticket_state" in ctx.carry:  # --keep-searching trained past the ticket
        ticket.load_state_dict(ctx.carry["ticket_state"])
    pruned = prune_stage(ctx, ticket, channel_mask(ticket, ctx.settings["prune_ratio"][0]),
                         reinit=reinit)
    ctx.carry.pop("ticket_state", None)
    retrain_stage(ctx, pruned, searched, **(retrain_setup(pruned) if retrain_setup else {}))
    return ctx.result(eb_epoch=search.primary.eb_epoch, eb_epochs=search.eb_epochs(),
                      searched_epochs=searched, retrain=("reinit" if reinit else "finetune"),
                      **pruned_fields(ctx))


def run_reinit(ctx):
    return run(ctx, reinit=True)
