"""The shipped quick suite (what `ebedge run` runs) with smaller values, for tests of `ebedge run`."""
from ebedge.run import quick


def quick_variant(path, methods=None, **changes):
    """The quick suite with `changes` to its [defaults] (TOML value text) and, given, other
    `methods`, written to `path`; its path."""
    lines = open(quick.QUICK_SUITE).read().splitlines()
    for key, value in changes.items():
        lines = [l for l in lines if not l.startswith(key + " =")]
        lines.insert(lines.index("[defaults]") + 1, "%s = %s" % (key, value))
    if methods is not None:
        lines = [("methods = %s" % list(methods)).replace("'", '"') if l.startswith("methods =")
                 else l for l in lines]
    with open(str(path), "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)
