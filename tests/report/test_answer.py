"""The answer first: one sentence per comparison, with intervals where repeats exist (plain Python,
so it runs on a board's interpreter too)."""
import math
import re
import statistics

import pytest

from ebedge.report.answer import sentences

T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776}  # printed t tables


def summary(method, kj, seconds, acc, ratio=None, mode="MAXN (0)", label="measured", meter="ina3221"):
    return {"method": method, "model": "vgg16", "dataset": "cifar10", "prune_ratio": ratio, "power_mode": mode,
            "test_acc": acc, "status": "complete", "runtime_s": seconds + 20,
            "phase_seconds": {"search": seconds * 0.4, "prune": 0.0, "retrain": seconds * 0.6, "eval": 5.0},
            "energy": {"kj": {"train_total": kj}, "method": label, "meter": meter}}


def test_single_runs_give_the_plain_sentence_of_the_issue():
    lines = sentences([summary("dense", 100.0, 200.0, 0.93), summary("eb", 46.0, 94.0, 0.92, 0.5)])
    assert lines == ["vgg16/cifar10 at MAXN (0): EB Train at p=0.5 used 0.46 of dense training's energy and "
                     "0.47 of its time, at -1.0 points of accuracy (energy measured by ina3221; 1 vs 1 runs)."]


def test_repeats_give_95_percent_intervals():
    dense = [(100.0, 200.0, 0.930), (104.0, 210.0, 0.934), (98.0, 190.0, 0.932)]
    eb = [(46.0, 94.0, 0.921), (50.0, 96.0, 0.925), (47.0, 92.0, 0.920)]
    runs = [summary("dense", *d) for d in dense] + [summary("eb", *e, ratio=0.5) for e in eb]
    line, = sentences(runs)
    found = re.search(r"used ([\d.]+) \(95% CI ([\d.]+) to ([\d.]+)\) of dense training's energy and "
                      r"([\d.]+) \(95% CI [\d.]+ to [\d.]+\) of its time, at ([-+][\d.]+) \(95% CI ([-+][\d.]+) "
                      r"to ([-+][\d.]+)\) points of accuracy \(energy measured by ina3221; 3 vs 3 runs\)", line)
    assert found, line
    ea, ed = [e[0] for e in eb], [d[0] for d in dense]
    r = statistics.mean(ea) / statistics.mean(ed)
    assert float(found.group(1)) == pytest.approx(r, abs=0.005)
    # delta method on the ratio of means; Welch-Satterthwaite df from the two relative variances
    va, vd = statistics.variance(ea) / 3 / statistics.mean(ea) ** 2, statistics.variance(ed) / 3 / statistics.mean(ed) ** 2
    df = int((va + vd) ** 2 / (va ** 2 / 2 + vd ** 2 / 2))
    half = T975[df] * r * math.sqrt(va + vd)
    assert float(found.group(2)) == pytest.approx(r - half, abs=0.006)
    assert float(found.group(3)) == pytest.approx(r + half, abs=0.006)
    diff = 100 * (statistics.mean(e[2] for e in eb) - statistics.mean(d[2] for d in dense))
    assert float(found.group(5)) == pytest.approx(diff, abs=0.05)
    assert float(found.group(6)) < diff < float(found.group(7))


def test_measured_and_modelled_energy_are_never_compared():
    line, = sentences([summary("dense", 100.0, 200.0, 0.93),
                       summary("eb-lf", 30.0, 90.0, 0.92, 0.5, label="modelled", meter="model")])
    assert line == ("vgg16/cifar10 at MAXN (0): EB Train (8-bit, LF) at p=0.5 used 0.45 of dense training's time, "
                    "at -1.0 points of accuracy (energy not compared: labelled modelled by model vs measured by "
                    "ina3221; 1 vs 1 runs).")


def test_comparisons_stay_inside_one_power_mode_and_eb_meets_its_baselines():
    lines = sentences([summary("dense", 100.0, 200.0, 0.93), summary("eb", 46.0, 94.0, 0.92, 0.5),
                       summary("ns", 80.0, 180.0, 0.925, 0.5), summary("dense", 60.0, 400.0, 0.93, mode="MAXQ (1)")])
    assert len(lines) == 3 and not any("MAXQ" in line for line in lines)  # no dense-only comparison at MAXQ
    assert any(line.startswith("vgg16/cifar10 at MAXN (0): EB Train at p=0.5 used 0.57 of the energy of network "
                               "slimming at p=0.5 and 0.52 of its time, at -0.5 points") for line in lines)
