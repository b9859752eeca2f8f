"""Simulator kinds for `ebedge meters simulate KIND`: kind -> starter function.

A starter is `starter(profile, **options) -> handle`, where `handle.info` is an ordered list of
(key, value) lines telling the user how to point a meter at the simulator (device path, sysfs
root, executable and environment) and `handle.stop()` ends it; a handle whose `runs` is False
needs no process kept alive (the CLI then returns at once). Simulator modules register their
kinds with `@starter("kind")`; `_MODULES` lists the modules loaded on first use.
"""
import importlib

_STARTERS = {}
_MODULES = ("meters.sim.sysfs", "meters.sim.tegrastats",
            "meters.sim.serial_kinds")


def starter(kind):
    """Decorator: register `fn` as the starter of simulator `kind`."""
    def deco(fn):
        _STARTERS[kind] = fn
        return fn
    return deco


def _load():
    for mod in _MODULES:
        importlib.import_module(mod)


def kinds():
    _load()
    return sorted(_STARTERS)


def start(kind, profile, **options):
    """Start simulator `kind`; ValueError naming the known kinds otherwise."""
    _load()
    try:
        fn = _STARTERS[kind]
    except KeyError:
        raise ValueError("unknown simulator %r; known: %s" % (kind, ", ".join(sorted(_STARTERS))))
    return fn(profile, **options)
