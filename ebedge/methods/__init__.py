"""Method recipes by command-line name; each is `run(ctx) -> summary fields`."""
from ebedge.errors import EbedgeError
from ebedge.methods import dense, eb

RECIPES = {
    "dense": dense.run,
    "eb": eb.run,
    "eb-reinit": eb.run_reinit,
}


def recipe(name):
    try:
        return RECIPES[name]
    except KeyError:
        raise EbedgeError("method %r is not available yet; available: %s"
                          % (name, ", ".join(sorted(RECIPES))))
