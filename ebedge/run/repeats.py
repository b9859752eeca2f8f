"""Repeats of one experiment: the same settings with seeds seed, seed + 1, ..., and the mean,
spread and 95% interval of the headline figures."""
import os

from ebedge.config.settings import resolve
from ebedge.errors import EbedgeError
from ebedge.run.rundir import completed, read_json, write_json_atomic
from ebedge.run.runner import execute
from ebedge.util import stats


REPEAT_METRICS = (("test_acc", lambda s: s.get("test_acc")),
                  ("train_energy_kj", lambda s: ((s.get("energy") or {}).get("kj") or {})
                   .get("train_total")),
                  ("runtime_s", lambda s: s.get("runtime_s")),
                  ("train_flops_total", lambda s: s.get("train_flops_total")),
                  ("eb_epoch", lambda s: s.get("eb_epoch")))


def execute_repeats(settings, out, repeats, overwrite=False, quiet=False, log_to=None,
                    prometheus=None):
    """Run `settings` `repeats` times into out/r<i> (seed + i); returns (summaries, statistics).

    Statistics are mean, sample std and 95% interval half-width (t-distribution) per metric,
    also written to out/repeats.json. A repeat that already completed is read, not rerun.
    """
    if repeats < 1:
        raise EbedgeError("--repeats must be at least 1, got %d" % repeats)
    base = resolve(settings)
    summaries = []
    for i in range(repeats):
        run_out = os.path.join(out, "r%d" % i)
        if completed(run_out) and not overwrite:
            summaries.append(read_json(os.path.join(run_out, "summary.json")))
            continue
        summaries.append(execute(base.replace(seed=base.seed + i, repeat=i), out=run_out,
                                 overwrite=overwrite, quiet=quiet, log_to=log_to,
                                 prometheus=prometheus))
    statistics = {}
    for name, get in REPEAT_METRICS:
        values = [get(s) for s in summaries if get(s) is not None]
        if values:
            mean, std, half = stats.mean_std_ci95(values)
            statistics[name] = {"n": len(values), "mean": mean, "std": std, "ci95": half}
    write_json_atomic(os.path.join(out, "repeats.json"),
                      {"settings": base, "repeats": repeats, "statistics": statistics})
    return summaries, statistics
