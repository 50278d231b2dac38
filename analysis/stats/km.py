"""Kaplan-Meier estimates with pointwise confidence bands, medians, and reverse Kaplan-Meier follow-up
(lifelines fits the curve; the bands and medians follow R survfit)."""
import numpy as np
from lifelines import KaplanMeierFitter
from lifelines.utils import median_survival_times

from analysis.stats.common import _durations_events, _not_estimable, _num, _z

CI_TRANSFORMS = ("log-log", "log")


def _log_band(table, alpha):
    """R's conf.type="log": S*exp(+-z*se(log S)), Greenwood se(log S)=sqrt(sum d/(n(n-d))), capped at 1."""
    n, d = table["at_risk"].to_numpy(float), table["observed"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(d > 0, d / (n * (n - d)), 0.0)
    se_log = np.sqrt(np.cumsum(terms))  # inf once S reaches 0: the band is then undefined
    s = table["survival"].to_numpy(float)
    z = _z(alpha)
    with np.errstate(invalid="ignore", over="ignore"):
        lower = s * np.exp(-z * se_log)
        upper = np.minimum(s * np.exp(z * se_log), 1.0)
    undefined = ~np.isfinite(se_log)
    lower[undefined], upper[undefined] = np.nan, np.nan
    return lower, upper, s * se_log


def _first_time_at_or_below_half(times, values):
    hit = np.flatnonzero(values <= 0.5)
    return _num(times[hit[0]]) if hit.size else None


def kaplan_meier(durations, events, *, times=None, alpha=0.05, ci_transform="log-log"):
    """Kaplan-Meier estimate with pointwise CI, median and its CI.

    Median: the first time with S(t) <= 0.5 (lifelines convention; R instead takes the midpoint
    when S(t) is exactly 0.5 over an interval); None when not reached.
    CI: ``ci_transform="log-log"`` (default; lifelines, R conf.type="log-log") or ``"log"``
    (R's default: log transform of the Greenwood variance). The median CI (Brookmeyer-Crowley)
    is where the band crosses 0.5: [first time lower <= 0.5, first time upper <= 0.5].
    ``std_err`` is Greenwood's standard error of S(t) (R's ``std.err``). ``times`` gives S at
    those times (step function); beyond the last observed time S is not estimable (None).
    Intervals are at level 1 - alpha (the ``ci95`` name assumes the default).
    """
    if ci_transform not in CI_TRANSFORMS:
        raise ValueError(f"ci_transform must be one of {CI_TRANSFORMS}")
    t, e, problem = _durations_events(durations, events)
    if problem:
        return _not_estimable(problem)
    if t.size == 0:
        return _not_estimable("no patients (n = 0)", n=0, events=0)

    kmf = KaplanMeierFitter(alpha=alpha).fit(t, e)
    table = kmf.event_table.copy()
    table["survival"] = kmf.survival_function_.iloc[:, 0].reindex(table.index).to_numpy()
    log_lower, log_upper, std_err = _log_band(table, alpha)
    if ci_transform == "log":
        lower, upper = log_lower, log_upper
    else:
        band = kmf.confidence_interval_.reindex(table.index)
        lower, upper = band.iloc[:, 0].to_numpy(), band.iloc[:, 1].to_numpy()
    grid = table.index.to_numpy(float)
    if ci_transform == "log":
        median_ci = [_first_time_at_or_below_half(grid, lower), _first_time_at_or_below_half(grid, upper)]
    else:
        m = median_survival_times(kmf.confidence_interval_).iloc[0]
        median_ci = [_num(m.iloc[0]), _num(m.iloc[1])]

    columns = zip(grid.tolist(), table["at_risk"].tolist(), table["observed"].tolist(),
                  table["censored"].tolist(), table["survival"].tolist(), list(std_err), list(lower), list(upper))
    rows = [  # plain lists, not iterrows: the table has a row per distinct time (thousands)
        {"time": _num(time), "at_risk": int(at_risk), "events": int(observed), "censored": int(censored),
         "survival": _num(surv), "std_err": _num(se), "ci_lower": _num(lo), "ci_upper": _num(hi)}
        for time, at_risk, observed, censored, surv, se, lo, hi in columns
    ]
    result = {
        "estimable": True,
        "reason": None,
        "n": int(t.size),
        "events": int(e.sum()),
        "ci_transform": ci_transform,
        "alpha": alpha,
        "median": _num(kmf.median_survival_time_),
        "median_ci95": median_ci,
        "table": rows,
    }
    if times is not None:
        result["at"] = [_survival_at(rows, grid, t, when) for when in times]
    return result


def _survival_at(rows, grid, durations, when):
    """Step-function survival at one time; None beyond the last observed time."""
    at_risk = int((durations >= when).sum())
    if when > durations.max() or when < 0:
        return {"time": _num(when), "survival": None, "std_err": None,
                "ci_lower": None, "ci_upper": None, "at_risk": at_risk}
    row = rows[int(np.searchsorted(grid, when, side="right")) - 1]
    return {"time": _num(when), "survival": row["survival"], "std_err": row["std_err"],
            "ci_lower": row["ci_lower"], "ci_upper": row["ci_upper"], "at_risk": at_risk}


def reverse_km_median(durations, events, *, alpha=0.05, ci_transform="log-log"):
    """Median follow-up by reverse Kaplan-Meier (censoring is the event, deaths are censored).

    Same median and CI conventions as ``kaplan_meier``; units of ``durations``.
    """
    t, e, problem = _durations_events(durations, events)
    if problem:
        return _not_estimable(problem)
    km = kaplan_meier(t, 1 - e, alpha=alpha, ci_transform=ci_transform)
    if not km["estimable"]:
        return km
    return {"estimable": True, "reason": None, "n": km["n"], "censored": km["events"],
            "ci_transform": ci_transform, "median": km["median"], "median_ci95": km["median_ci95"]}
