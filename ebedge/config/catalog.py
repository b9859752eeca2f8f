"""The catalog of training methods: each method registers itself where it is defined, with what
the rest of ebedge asks about it (as torchvision registers its models), so a new method is one
module in `ebedge/methods/` and its test. Settings validation, suites, FLOPs budgets, the
pre-run shape check and the report all read the catalog.

`import ebedge` imports every module of `ebedge/methods/` (ebedge.methods does), so the catalog
is full before anything asks it, and it imports nothing above itself. Torch-free: method modules
import torch only inside what they run, so listing, validating and pricing methods (on a laptop,
in a suite's plan, in a report) never loads it.
"""
from ebedge.errors import EbedgeError

# What a method prunes, for the pre-run shape check (ebedge.run.precheck): the global BN-scale
# channel mask, nothing, unstructured weights, the same share of filters in every layer, one
# global ranking of filters, or ThiNet's in-block layers.
MASK_KINDS = ("bn scales", "dense", "weights", "per-layer filters", "global filters",
              "in-block layers")


class Method(object):
    """A registered method.

    `run(ctx) -> summary fields` is its recipe; `label` its name in sentences; `cost(n, e)`
    gives (dense epochs, pruned epochs, structure) over an n-epoch schedule whose ticket is drawn
    after e epochs, the cost structure the paper's Table 2 prices; `draws_ticket`: it searches for
    an Early-Bird ticket mid-schedule, so pricing it needs that epoch and it accepts `draw_at`;
    `mask_kind` is one of MASK_KINDS; `order` places it in report tables (the paper lists
    baselines first, EB Train last)."""

    __slots__ = ("name", "run", "label", "cost", "draws_ticket", "mask_kind", "order")

    def __init__(self, name, run, label, cost, draws_ticket, mask_kind, order):
        if mask_kind not in MASK_KINDS:
            raise ValueError("method %r: mask_kind %r is not one of %s"
                             % (name, mask_kind, ", ".join(MASK_KINDS)))
        self.name, self.run, self.label, self.cost = name, run, label, cost
        self.draws_ticket, self.mask_kind, self.order = draws_ticket, mask_kind, order

    def epochs(self, n, eb_epoch=None):
        """(dense epochs, pruned epochs, structure) over an n-epoch schedule; ValueError for a
        ticket-drawing method without an EB epoch in 1..n."""
        if self.draws_ticket and (eb_epoch is None or not 1 <= eb_epoch <= n):
            raise ValueError("method %s needs --eb-epoch between 1 and %d" % (self.name, n))
        return self.cost(n, eb_epoch)


_registered = {}  # filled as ebedge.methods is imported, which `import ebedge` does


def method(name, label, cost, draws_ticket=False, mask_kind="bn scales", order=50):
    """Decorator: register the decorated recipe as method `name` (see Method for the facts)."""
    def register(run):
        known = _registered.get(name)
        if known is not None and known.run.__module__ != run.__module__:
            raise ValueError("method %r is registered by %s and by %s"
                             % (name, known.run.__module__, run.__module__))
        _registered[name] = Method(name, run, label, cost, draws_ticket, mask_kind, order)
        return run
    return register


def methods():
    """Every registered method, in report order."""
    return sorted(_registered.values(), key=lambda m: (m.order, m.name))


def method_names():
    return tuple(m.name for m in methods())


def known(name):
    """The method called `name`, or None (a report may hold runs of methods not installed here)."""
    return _registered.get(name) if isinstance(name, str) else None


def get(name):
    """The method called `name`, or a one-line EbedgeError listing those there are."""
    try:
        return _registered[name]
    except (KeyError, TypeError):
        raise EbedgeError("unknown method %r; choose one of: %s"
                          % (name, ", ".join(method_names())))


def check(settings):
    """Raise EbedgeError if the settings cannot run (unknown method, draw_at on a method that
    draws no ticket mid-schedule): the runner's and `ebedge bench --check`'s first check."""
    chosen = get(settings.method)
    if settings.draw_at is not None and not chosen.draws_ticket:
        raise EbedgeError("draw_at applies to %s, not method %r"
                          % (", ".join(m.name for m in methods() if m.draws_ticket),
                             settings.method))
