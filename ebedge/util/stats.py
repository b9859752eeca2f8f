"""Mean, standard deviation and 95% confidence interval over repeats (no scipy on a board)."""
import math

# Two-sided 95% t quantiles t(0.975, df); between listed df we interpolate linearly in 1/df,
# which is accurate to about 1e-3 here.
_T975 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 6: 2.4469, 7: 2.3646, 8: 2.3060,
         9: 2.2622, 10: 2.2281, 11: 2.2010, 12: 2.1788, 13: 2.1604, 14: 2.1448, 15: 2.1314,
         16: 2.1199, 17: 2.1098, 18: 2.1009, 19: 2.0930, 20: 2.0860, 21: 2.0796, 22: 2.0739,
         23: 2.0687, 24: 2.0639, 25: 2.0595, 26: 2.0555, 27: 2.0518, 28: 2.0484, 29: 2.0452,
         30: 2.0423, 40: 2.0211, 50: 2.0086, 60: 2.0003, 80: 1.9901, 100: 1.9840, 120: 1.9799}
_T975_INF = 1.95996


def t_quantile_975(df):
    """t(0.975, df), the multiplier of the standard error for a two-sided 95% interval."""
    if df < 1:
        raise ValueError("t quantile needs df >= 1, got {}".format(df))
    if df in _T975:
        return _T975[df]
    known = sorted(_T975)
    if df > known[-1]:
        lo_df, lo_t, hi_inv, hi_t = known[-1], _T975[known[-1]], 0.0, _T975_INF
    else:
        lo_df = max(k for k in known if k < df)
        hi_df = min(k for k in known if k > df)
        lo_t, hi_inv, hi_t = _T975[lo_df], 1.0 / hi_df, _T975[hi_df]
    lo_inv = 1.0 / lo_df
    return hi_t + (lo_t - hi_t) * (1.0 / df - hi_inv) / (lo_inv - hi_inv)


def mean_std_ci95(values):
    """(mean, sample std, 95% half-width); std and half-width are None for fewer than 2 values."""
    x = [float(v) for v in values]
    if not x:
        raise ValueError("no values")
    mean = sum(x) / len(x)
    if len(x) < 2:
        return mean, None, None
    std = math.sqrt(sum((v - mean) ** 2 for v in x) / (len(x) - 1))
    return mean, std, t_quantile_975(len(x) - 1) * std / math.sqrt(len(x))


def paired_ratios(numer, denom, scale=1.0):
    """(median, min, max) of scale x numer[i] / denom[i] over interleaved rounds: a ratio taken
    within each round, so load that comes and goes hits both sides of it alike (benchmarks)."""
    ratios = sorted(scale * float(a) / float(b) for a, b in zip(numer, denom))
    if not ratios:
        raise ValueError("no rounds")
    m = len(ratios) // 2
    median = ratios[m] if len(ratios) % 2 else 0.5 * (ratios[m - 1] + ratios[m])
    return median, ratios[0], ratios[-1]
