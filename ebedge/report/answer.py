"""The answer first: one sentence per comparison saying what the runs show.

"EB Train used 0.46 of dense training's energy and 0.47 of its time, at -1.0 points of accuracy"
is what a newcomer wants from two table cells; the report's top and the last lines of `ebedge run`
say it. Runs are compared only inside one group (same model, dataset, power mode and result
settings), every method against dense training, and each EB Train variant against each baseline
at its prune ratio. Energy is compared only between runs whose energy has the same label
(measured or modelled), and the sentence names it and the meter.

With repeats on both sides, the 95% intervals are Welch's for the accuracy difference and the
delta method's for the ratios (on the ratio of means); with one run a side there is no interval.
Plain Python (no pandas): `ebedge run` prints these on a board too.
"""
import collections
import math

from ebedge.config import catalog
from ebedge.util import stats

TRAIN_PHASES = ("search", "prune", "retrain")

Side = collections.namedtuple("Side", "method ratio energy time acc label")


def _draws_ticket(method):
    """An EB Train variant (compared with each baseline at its ratio)."""
    known = catalog.known(method)
    return known is not None and known.draws_ticket


def _name(method):
    known = catalog.known(method)
    return known.label if known is not None else method


def train_seconds(summary):
    """Seconds spent training (search, prune, retrain), else the whole runtime."""
    phases = summary.get("phase_seconds") or {}
    parts = [phases[p] for p in TRAIN_PHASES if phases.get(p) is not None]
    return sum(parts) if parts else summary.get("runtime_s")


def energy_of(summary):
    """(train energy kJ, 'measured by ina3221'-style label) or (None, None)."""
    energy = summary.get("energy") or {}
    kj = (energy.get("kj") or {}).get("train_total")
    if kj is None:
        return None, None
    return kj, "%s by %s" % (energy.get("method") or "unlabelled", energy.get("meter") or "?")


def _side(summaries):
    first = summaries[0]
    energies = [energy_of(s) for s in summaries]
    labels = set(label for _, label in energies)
    return Side(first.get("method"), None if first.get("method") == "dense" else first.get("prune_ratio"),
                [kj for kj, _ in energies] if None not in labels and len(labels) == 1 else None,
                [train_seconds(s) for s in summaries if train_seconds(s) is not None],
                [100.0 * s["test_acc"] for s in summaries if s.get("test_acc") is not None],
                labels.pop() if len(labels) == 1 else None)


def _moments(values):
    mean, std, _ = stats.mean_std_ci95(values)
    return mean, (std or 0.0) ** 2 / len(values), len(values)


def _welch_df(parts):
    """Welch-Satterthwaite degrees of freedom of a sum of squared standard errors (var, n) parts."""
    num = sum(v for v, _ in parts) ** 2
    den = sum(v * v / (n - 1) for v, n in parts if n > 1)
    return max(1, int(num / den)) if den > 0 else None


def ratio(a, b):
    """(mean a / mean b, 95% half-width or None): delta method, Welch degrees of freedom."""
    ma, va, na = _moments(a)
    mb, vb, nb = _moments(b)
    r = ma / mb
    if na < 2 or nb < 2:
        return r, None
    parts = [(va / ma ** 2, na), (vb / mb ** 2, nb)] if ma else [(vb / mb ** 2, nb)]
    df = _welch_df(parts)
    se = abs(r) * math.sqrt(sum(v for v, _ in parts))
    return r, (stats.t_quantile_975(df) * se if df else 0.0)


def difference(a, b):
    """(mean a - mean b, 95% half-width or None): Welch's interval."""
    ma, va, na = _moments(a)
    mb, vb, nb = _moments(b)
    if na < 2 or nb < 2:
        return ma - mb, None
    df = _welch_df([(va, na), (vb, nb)])
    return ma - mb, (stats.t_quantile_975(df) * math.sqrt(va + vb) if df else 0.0)


def _with_ci(value, half, fmt):
    if half is None:
        return fmt % value
    return (fmt + " (95%% CI " + fmt + " to " + fmt + ")") % (value, value - half, value + half)


def sentence(a, b):
    """What `a` (a Side) did against `b`: energy and time as fractions, accuracy as points."""
    who = _name(a.method) + ("" if a.ratio is None else " at p=%g" % a.ratio)
    other = _name(b.method) + ("" if b.ratio is None or b.method == "dense" else " at p=%g" % b.ratio)
    whose = (lambda what: "%s's %s" % (other, what) if b.ratio is None else "the %s of %s" % (what, other))
    compared = a.energy and b.energy and a.label == b.label and all(b.energy)
    timed = a.time and b.time and all(b.time)
    time_part = _with_ci(*ratio(a.time, b.time), fmt="%.2f") if timed else None
    if compared:
        text = "%s used %s of %s" % (who, _with_ci(*ratio(a.energy, b.energy), fmt="%.2f"), whose("energy"))
        if timed:
            text += " and %s of its time" % time_part
    elif timed:
        text = "%s used %s of %s" % (who, time_part, whose("time"))
    else:
        return None
    if a.acc and b.acc:
        text += ", at %s points of accuracy" % _with_ci(*difference(a.acc, b.acc), fmt="%+.1f")
    n = "%d vs %d runs" % (len(a.time or a.acc), len(b.time or b.acc))
    if compared:
        return "%s (energy %s; %s)." % (text, a.label, n)
    why = "not measured" if not (a.label and b.label) else "labelled %s vs %s" % (a.label, b.label)
    return "%s (energy not compared: %s; %s)." % (text, why, n)


def sentences(summaries, group_of=None):
    """One sentence per comparison among complete run summaries, grouped by `group_of(summary)`
    (default: model, dataset and power mode), each group's sentences prefixed by its name."""
    group_of = group_of or (lambda s: "%s/%s%s" % (s.get("model"), s.get("dataset"),
                                                   " at %s" % s["power_mode"] if s.get("power_mode") else ""))
    groups = collections.OrderedDict()
    for summary in summaries:
        if summary.get("status", "complete") != "complete":
            continue
        cell = (summary.get("method"), None if summary.get("method") == "dense" else summary.get("prune_ratio"))
        groups.setdefault(group_of(summary), collections.OrderedDict()).setdefault(cell, []).append(summary)
    out = []
    for group, cells in groups.items():
        sides = [_side(runs) for runs in cells.values()]
        dense = [s for s in sides if s.method == "dense"]
        for side in sides:
            if side.method == "dense":
                continue
            others = dense + ([b for b in sides if _draws_ticket(side.method) and b.ratio == side.ratio
                               and b.method != "dense" and not _draws_ticket(b.method)])
            for other in others:
                text = sentence(side, other)
                if text:
                    out.append("%s: %s" % (group, text))
    return out
