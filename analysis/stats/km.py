"""Kaplan-Meier estimates with pointwise confidence bands, medians, and reverse Kaplan-Meier follow-up
(lifelines fits the curve; the bands, medians and their undefined values follow R survfit)."""
import numpy as np
from lifelines import KaplanMeierFitter

from analysis.stats.common import _durations_events, _not_estimable, _num, _z

CI_TRANSFORMS = ("log-log", "log")


def _greenwood_se_log(table):
    """Greenwood standard error of log S(t): sqrt(sum d / (n (n - d))) (R survfit's ``std.err``).

    Infinite once S(t) reaches 0 (n = d): every band is then undefined.
    """
    n, d = table["at_risk"].to_numpy(float), table["observed"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(d > 0, d / (n * (n - d)), 0.0)
    return np.sqrt(np.cumsum(terms))


def _log_band(s, se_log, z):
    """R's conf.type="log": S exp(+-z se(log S)), the upper bound capped at 1; undefined at S = 0."""
    with np.errstate(invalid="ignore", over="ignore"):
        lower = s * np.exp(-z * se_log)
        upper = np.minimum(s * np.exp(z * se_log), 1.0)
    undefined = (s <= 0) | ~np.isfinite(se_log)
    lower[undefined], upper[undefined] = np.nan, np.nan
    return lower, upper


def _log_log_band(s, se_log, z):
    """R's conf.type="log-log": a symmetric interval for log(-log S), mapped back.

    Undefined (NaN, reported as null) where S = 1 or S = 0: log(-log S) does not exist there,
    and a bound of 0 or 1 would claim a certainty the data do not give (R reports NA).
    """
    undefined = (s <= 0) | (s >= 1) | ~np.isfinite(se_log)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        log_s = np.log(np.where(undefined, 0.5, s))
        half_width = z * se_log / -log_s  # se of log(-log S) by the delta method
        lower = np.exp(-np.exp(np.log(-log_s) + half_width))
        upper = np.exp(-np.exp(np.log(-log_s) - half_width))
    lower[undefined], upper[undefined] = np.nan, np.nan
    return lower, upper


def _r_quantile(times, survival, p=0.5, tolerance=np.sqrt(np.finfo(float).eps)):
    """The time where the curve ``survival`` (a step function of ``times``) first reaches ``p``,
    by R survfit's rule (survival:::findq): where the curve equals p within ``tolerance`` over an
    interval, the midpoint of that interval; where it stays at p to the last time, the midpoint
    of the start of that stretch and the last time. None when never reached.

    ``times`` start at 0 with the curve at 1; NaN values (an undefined confidence bound) are
    skipped, as R's approx() skips NA. The same rule gives the median and both CI bounds.
    """
    cumulative = 1 - np.asarray(survival, float)  # R works on 1 - S, an increasing curve
    last_time = times[-1]
    _, first = np.unique(cumulative, return_index=True)  # R: y[!duplicated(y)], NaN counted once
    keep = np.sort(first)
    x, y = times[keep], cumulative[keep]
    if not np.any(y >= 1 - p - tolerance):  # R: max(y) < p (with tolerance: lifelines may differ from R in the last bit)
        return None
    last_defined = np.isfinite(y[-1])
    defined = np.isfinite(y)
    x, y = x[defined], y[defined]
    target = 1 - p

    def smallest_reaching(level):
        # approx(level, 1:n, target, "constant", f = 1): the knot with the smallest level >= target
        # (for a monotone curve, the first time it gets there).
        hit = np.flatnonzero(level >= target)
        return hit[np.argmin(level[hit])] if hit.size else None

    lower, upper = smallest_reaching(y + tolerance), smallest_reaching(y - tolerance)
    if lower is None:
        return None
    if last_defined and abs(target - y[-1]) < tolerance:
        return _num((x[lower] + last_time) / 2)
    if upper is None:
        return None
    return _num((x[lower] + x[upper]) / 2)


def kaplan_meier(durations, events, *, times=None, alpha=0.05, ci_transform="log-log"):
    """Kaplan-Meier estimate with pointwise CI, median and its CI (= R survfit).

    Median: R's rule (quantile.survfit): the first time with S(t) <= 0.5, except where S(t) is
    exactly 0.5 over an interval, then the midpoint of that interval; None when not reached.
    CI: ``ci_transform="log-log"`` (default; R conf.type="log-log") or ``"log"`` (R's default),
    both on Greenwood's variance. A bound is None where it is undefined: S(t) = 1 or 0 for
    log(-log), S(t) = 0 for log. The median's CI (Brookmeyer-Crowley) is where each band
    crosses 0.5, by the same midpoint rule; a bound that never crosses is None (R's NA).
    ``std_err`` is Greenwood's standard error of S(t) (R summary()'s ``std.err``). ``times`` gives S at
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
    grid, surv = table.index.to_numpy(float), table["survival"].to_numpy(float)
    se_log = _greenwood_se_log(table)
    band = _log_band if ci_transform == "log" else _log_log_band
    lower, upper = band(surv, se_log, _z(alpha))
    with np.errstate(invalid="ignore"):
        std_err = surv * se_log  # Greenwood se of S (R summary()'s std.err); NaN once S = 0
    # R's quantile rule on the curve from (0, 1): the median and where each band crosses 0.5.
    times0 = np.r_[0.0, grid]
    median = _r_quantile(times0, np.r_[1.0, surv])
    median_ci = [_r_quantile(times0, np.r_[1.0, lower]), _r_quantile(times0, np.r_[1.0, upper])]

    columns = zip(grid.tolist(), table["at_risk"].tolist(), table["observed"].tolist(),
                  table["censored"].tolist(), table["survival"].tolist(), list(std_err), list(lower), list(upper))
    rows = [  # plain lists, not iterrows: the table has a row per distinct time (thousands)
        {"time": _num(time), "at_risk": int(at_risk), "events": int(observed), "censored": int(censored),
         "survival": _num(s_t), "std_err": _num(se), "ci_lower": _num(lo), "ci_upper": _num(hi)}
        for time, at_risk, observed, censored, s_t, se, lo, hi in columns
    ]
    result = {
        "estimable": True,
        "reason": None,
        "n": int(t.size),
        "events": int(e.sum()),
        "ci_transform": ci_transform,
        "alpha": alpha,
        "median": median,
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
