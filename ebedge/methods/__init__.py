"""Method recipes by command-line name; each is `run(ctx) -> summary fields`.

`check(settings)` runs before anything else (the runner's and `ebedge bench --check`'s pre-run
check), so a bad pairing fails at once with a message naming it.
"""
from ebedge.errors import EbedgeError
from ebedge.methods import dense, eb
from ebedge.methods import eb_lowp
from ebedge.methods import lt, ns, sfp, snip, thinet

RECIPES = {
    "dense": dense.run,
    "eb": eb.run,
    "eb-reinit": eb.run_reinit,
    "eb-lf": eb_lowp.run_lf,
    "eb-ll": eb_lowp.run_ll,
    "ns": ns.run,
    "lt": lt.run,
    "lt-structured": lt.run_structured,
    "snip": snip.run,
    "snip-channel": snip.run_channel,
    "thinet": thinet.run,
    "sfp": sfp.run,
}

DRAWING_METHODS = ("eb", "eb-reinit", "eb-lf", "eb-ll")  # those that take settings.draw_at


def recipe(name):
    try:
        return RECIPES[name]
    except KeyError:
        raise EbedgeError("method %r is not available yet; available: %s"
                          % (name, ", ".join(sorted(RECIPES))))


def check(settings):
    """Raise EbedgeError if the settings cannot run (unknown method, draw_at on a method that
    draws no ticket mid-schedule)."""
    recipe(settings.method)
    if settings.draw_at is not None and settings.method not in DRAWING_METHODS:
        raise EbedgeError("draw_at applies to %s, not method %r"
                          % (", ".join(DRAWING_METHODS), settings.method))
