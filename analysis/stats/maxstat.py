"""The maximally selected log-rank statistic over the cut-offs of a continuous factor, with the
Lausen-Schumacher p-value adjusted for the search (Lausen & Schumacher 1992, Biometrics 48:73;
the approximation R's maxstat package calls pLausen92).

A cut-off c splits patients into value <= c and value > c (the plan's ">" convention). The
statistic at c is the standardised two-group log-rank statistic |O - E| / sqrt(V), whose square
is R survdiff's chi-square; the search takes every distinct value between the ``proportions``
quantiles of the factor (R quantile type 7). The R package maxstat is not a Debian base package:
tests/analysis/test_maxstat_r.py checks the statistics by looping survdiff in R.
"""
import numpy as np
import pandas as pd
from scipy import stats

from analysis.stats.common import _durations_events, _not_estimable, _num, _numeric

CHUNK = 256  # cut-offs per block: bounds the memory of the (cut-offs x event times) arrays


def lausen_schumacher_p(statistic, proportions=(0.1, 0.9)):
    """P(max |Z| >= statistic) over cut-offs between the two quantile proportions, by
    Lausen & Schumacher's approximation (accurate for p below ~0.5; capped at 1).

    Below a statistic of 1 the formula stops falling with the statistic (it is an upper-tail
    approximation) and would give p < 1 for a maximum a null search nearly always exceeds: 1.
    """
    low, high = proportions
    b = float(statistic)
    if not b >= 1:
        return 1.0
    density = stats.norm.pdf(b)
    p = 4 * density / b + density * (b - 1 / b) * np.log(high * (1 - low) / ((1 - high) * low))
    return float(min(1.0, max(0.0, p)))


def _standardised_logrank(t, e, x, cutoffs):
    """(O - E) / sqrt(V) of the group x > c, for each cut-off c (NaN where V = 0).

    Vectorised over cut-offs and event times: the number at risk in the group at each event
    time, for a block of cut-offs, is a two-way suffix count of (how many of the block's
    cut-offs a patient lies above, how many event times the patient is at risk for).
    """
    event_times, deaths = np.unique(t[e == 1], return_counts=True)
    ordered = np.sort(t)
    at_risk = t.size - np.searchsorted(ordered, event_times, side="left")
    # hypergeometric variance weight of each event time: d (N - d) / (N^2 (N - 1))
    weight = deaths * (at_risk - deaths) / (at_risk ** 2 * np.where(at_risk > 1, at_risk - 1, 1))
    risk_slots = np.searchsorted(event_times, t, side="right")  # at risk at the first `slots` times
    width = event_times.size + 1
    result = np.empty(cutoffs.size)
    for start in range(0, cutoffs.size, CHUNK):
        block = cutoffs[start:start + CHUNK]
        above = np.searchsorted(block, x, side="left")  # in group "> c" for the first `above` cut-offs
        counts = np.bincount(above * width + risk_slots, minlength=(block.size + 1) * width)
        counts = counts.reshape(block.size + 1, width)
        # n1[k, j] = patients with above > k and risk_slots > j: suffix sums on both axes
        n1 = _suffix_sum(_suffix_sum(counts, axis=0)[1:], axis=1)[:, 1:]
        observed = _suffix_sum(np.bincount(above[e == 1], minlength=block.size + 1), axis=0)[1:]
        expected = (n1 * (deaths / at_risk)).sum(axis=1)
        variance = (n1 * (at_risk - n1) * weight).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            result[start:start + block.size] = np.where(variance > 0, (observed - expected) / np.sqrt(variance), np.nan)
    return result


def _suffix_sum(array, axis):
    """out[i] = sum of array[i:] along ``axis``."""
    return np.flip(np.cumsum(np.flip(array, axis), axis=axis), axis)


def max_logrank(durations, events, values, *, proportions=(0.1, 0.9), chosen=None):
    """The maximally selected log-rank statistic of ``values`` and its adjusted p.

    Returns n, events, the search range (cut-off values), ``best_cutoff``, ``max_stat`` (|Z|),
    ``p_adjusted`` (Lausen-Schumacher), and, for a ``chosen`` cut-off, its own ``chosen_stat``
    and unadjusted ``chosen_p`` (what the same data say without the search). Rows missing any
    of the three are dropped.
    """
    frame = pd.DataFrame({"t": _numeric(durations), "e": _numeric(events), "x": _numeric(values)}).dropna()
    t, e, problem = _durations_events(frame["t"], frame["e"])
    if problem:
        return _not_estimable(problem)
    x = frame["x"].to_numpy(float)
    counts = {"n": int(t.size), "events": int(e.sum())}
    if t.size < 2 or counts["events"] == 0:
        return _not_estimable("too few patients or no events", **counts)
    low, high = np.quantile(x, proportions)
    candidates = np.unique(x[(x >= low) & (x <= high) & (x < x.max())])
    if candidates.size == 0:
        return _not_estimable("no cut-off in the search range splits the patients", **counts)
    statistics = np.abs(_standardised_logrank(t, e, x, candidates))
    if not np.isfinite(statistics).any():
        return _not_estimable("no cut-off in the search range gives a log-rank statistic", **counts)
    best = int(np.nanargmax(statistics))
    result = {"estimable": True, "reason": None, **counts, "proportions": list(proportions),
              "search_range": [_num(low), _num(high)], "cutoffs_searched": int(candidates.size),
              "best_cutoff": _num(candidates[best]), "max_stat": _num(statistics[best]),
              "p_adjusted": _num(lausen_schumacher_p(statistics[best], proportions))}
    if chosen is not None:
        at_chosen = abs(float(_standardised_logrank(t, e, x, np.array([float(chosen)]))[0]))
        result["chosen_stat"] = _num(at_chosen)
        result["chosen_p"] = _num(2 * stats.norm.sf(at_chosen))
    return result
