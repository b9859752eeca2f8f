"""Method recipes by command-line name; each is `run(ctx) -> summary fields`."""
from ebedge.errors import EbedgeError
from ebedge.methods import dense, eb
from ebedge.methods import eb_lowp

RECIPES = {
    "dense": dense.run,
    "eb": eb.run,
    "eb-reinit": eb.run_reinit,
    "eb-lf": eb_lowp.run_lf,
    "eb-ll": eb_lowp.run_ll,
}


def recipe(name):
    try:
        return RECIPES[name]
    except KeyError:
        raise EbedgeError("method %r is not available yet; available: %s"
                          % (name, ", ".join(sorted(RECIPES))))
