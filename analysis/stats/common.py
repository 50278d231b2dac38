"""Helpers shared by the survival statistics: missing values, input checks, normal and chi-square tails."""
import math

import numpy as np
import pandas as pd
from scipy import stats


def _num(x):
    """A float, or None for missing / NaN / infinite."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _native(x):
    """A numpy scalar as its Python equivalent (for group labels)."""
    return x.item() if isinstance(x, np.generic) else x


def _not_estimable(reason, **extra):
    return {"estimable": False, "reason": reason, **extra}


def _numeric(values):
    """A float Series; anything non-numeric becomes NaN (treated as missing)."""
    return pd.to_numeric(pd.Series(np.asarray(values, dtype=object)), errors="coerce")


def _durations_events(durations, events):
    """Two aligned float arrays with missing pairs dropped, or a reason they are unusable."""
    t, e = _numeric(durations), _numeric(events)
    if len(t) != len(e):
        return None, None, "durations and events differ in length"
    keep = t.notna() & e.notna()
    t, e = t[keep].to_numpy(float), e[keep].to_numpy(float)
    if (t < 0).any():
        return None, None, "negative durations"
    if not np.isin(e, (0, 1)).all():
        return None, None, "events must be coded 0 (censored) / 1 (event)"
    return t, e, None


def _z(alpha):
    return stats.norm.ppf(1 - alpha / 2)


def _chi2_test(statistic, df):
    return {"statistic": _num(statistic), "df": int(df), "p": _num(stats.chi2.sf(statistic, df))}


def _efron_sums(r0, r1, r2, slot, w, wx, wxx):
    """Efron's risk-set sums, one row per death: the d tied deaths at an event time share its risk
    set, and the k-th of them (k = 0 .. d-1) has the fraction k/d of their own weights removed.

    ``r0, r1, r2``: sums of w, w*x, w*x*x' over the risk set at each event time; ``slot``: the
    event time of each death, in ascending order; ``w, wx, wxx``: the deaths' own values, in the
    same order. Returns (s0, s1, s2, d, idx, frac): the per-death sums, deaths per event time,
    each death's event time and its fraction (the Firth derivative needs the last three too).
    """
    times = r0.shape[0]
    d = np.bincount(slot, minlength=times)
    d0 = np.bincount(slot, weights=w, minlength=times)
    d1 = np.zeros((times, wx.shape[1]))
    np.add.at(d1, slot, wx)
    d2 = np.zeros((times, wx.shape[1], wx.shape[1]))
    np.add.at(d2, slot, wxx)
    k = np.arange(slot.size) - np.repeat(np.cumsum(d) - d, d)
    idx = np.repeat(np.arange(times), d)
    frac = k / d[idx]
    s0 = r0[idx] - frac * d0[idx]
    s1 = r1[idx] - frac[:, None] * d1[idx]
    s2 = r2[idx] - frac[:, None, None] * d2[idx]
    return s0, s1, s2, d, idx, frac
