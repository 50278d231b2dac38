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
