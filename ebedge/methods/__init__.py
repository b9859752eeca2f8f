"""Method recipes by command-line name; each is `run(ctx) -> summary fields`.

A recipe that cannot run every model declares `check(settings)` in CHECKS; the runner calls
`check` before anything runs, so a bad pairing fails at once with a message naming both.
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
    "snip": snip.run,
    "thinet": thinet.run,
    "sfp": sfp.run,
}


def recipe(name):
    try:
        return RECIPES[name]
    except KeyError:
        raise EbedgeError("method %r is not available yet; available: %s"
                          % (name, ", ".join(sorted(RECIPES))))


CHECKS = {
    "thinet": thinet.check,
}


def check(settings):
    """Raise EbedgeError if settings["method"] is unknown or cannot run settings["model"]."""
    recipe(settings["method"])
    if settings["method"] in CHECKS:
        CHECKS[settings["method"]](settings)
