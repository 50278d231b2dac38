"""Survival statistics as pure functions over arrays and DataFrames.

Kaplan-Meier, reverse Kaplan-Meier follow-up, log-rank and Cox (Efron ties) via lifelines,
checked against R ``survival`` (see shared/spec/reference-values.md). Durations are in whatever
unit the caller passes (the registry uses months). Every function returns plain, JSON-serialisable
data with ``estimable`` and ``reason``; degenerate input gives ``estimable: False`` and a reason,
never an exception or a meaningless estimate. Nothing here imports Django.
"""

import math
import warnings

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.exceptions import ConvergenceWarning
from lifelines.utils import concordance_index, median_survival_times
from scipy import stats

# Tight Newton-Raphson stopping: lifelines' default stops 1e-6..1e-4 short of R's estimates.
COX_FIT_OPTIONS = {"precision": 1e-12, "r_precision": 1e-15}
# On the standardised scale (coef per SD of the covariate) a |coef| or se this large only
# arises from a monotone likelihood (perfect separation), never from real data.
SEPARATION_LIMIT = 10.0
CI_TRANSFORMS = ("log-log", "log")


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


def logrank(durations, events, groups):
    """Log-rank test of equal survival across two or more groups (= R survdiff).

    Observed and expected events per group: expected sums d_t * n_gt / n_t over event times.
    Rows with a missing group are dropped; empty groups are ignored.
    """
    frame = pd.DataFrame({"t": _numeric(durations), "e": _numeric(events),
                          "g": np.asarray(groups, dtype=object)}).dropna()
    t, e, problem = _durations_events(frame["t"], frame["e"])
    if problem:
        return _not_estimable(problem)
    frame = pd.DataFrame({"t": t, "e": e, "g": frame["g"].to_numpy()})
    labels = sorted(frame["g"].unique(), key=lambda x: (str(type(x)), x))
    if len(labels) < 2:
        return _not_estimable("fewer than 2 non-empty groups")
    if frame["e"].sum() == 0:
        return _not_estimable("no events")

    # Vectorised over event times: at-risk counts per group by binary search on sorted times.
    t_all, e_all = frame["t"].to_numpy(float), frame["e"].to_numpy(float)
    event_times, deaths = np.unique(t_all[e_all == 1], return_counts=True)
    members = [(frame["g"] == label).to_numpy() for label in labels]
    at_risk = np.array([np.sort(t_all[m]).size - np.searchsorted(np.sort(t_all[m]), event_times, side="left")
                        for m in members], dtype=float)                          # groups x event times
    total = at_risk.sum(axis=0)
    share = at_risk / total
    observed = np.array([e_all[m].sum() for m in members])
    expected = (deaths * share).sum(axis=1)
    # Hypergeometric covariance of the observed counts (R survdiff), summed over event times.
    spread = deaths * (total - deaths) / np.where(total > 1, total - 1, 1)
    covariance = (np.diag((spread * share).sum(axis=1)) - (spread * share) @ share.T)
    difference = (observed - expected)[:-1]  # one group is redundant: drop the last
    chi2 = float(difference @ np.linalg.solve(covariance[:-1, :-1], difference))
    df = len(labels) - 1
    rows = [{"group": _native(label), "n": int(m.sum()), "observed": int(o), "expected": _num(x)}
            for label, m, o, x in zip(labels, members, observed, expected)]
    return {"estimable": True, "reason": None, "chi2": _num(chi2), "df": df,
            "p": _num(stats.chi2.sf(chi2, df)), "groups": rows}


def _efron_terms(t, e, x, beta):
    """Efron partial log-likelihood, score vector and information matrix at ``beta``.

    Vectorised over event times (the only loop is numpy's): rows are sorted by time, risk-set
    sums of w = exp(x'beta), w*x and w*x*x' are suffix sums, and each of the d tied deaths at a
    time gets its Efron fraction k/d (one row per death).
    """
    if np.any(t[1:] < t[:-1]):  # callers in a loop sort once (see _efron_fit)
        order = np.argsort(t, kind="stable")
        t, e, x = t[order], e[order], x[order]
    eta = x @ beta
    w = np.exp(eta - eta.max())  # scaled for stability; the scale cancels in every ratio
    times = np.unique(t[e == 1])
    start = np.searchsorted(t, times, side="left")  # first row at risk at each event time
    wx = w[:, None] * x
    wxx = wx[:, :, None] * x[:, None, :]
    r0 = np.cumsum(w[::-1])[::-1][start]
    r1 = np.cumsum(wx[::-1], axis=0)[::-1][start]
    r2 = np.cumsum(wxx[::-1], axis=0)[::-1][start]
    dead = e == 1
    slot = np.searchsorted(times, t[dead])  # which event time each death belongs to
    d = np.bincount(slot, minlength=times.size)
    d0 = np.bincount(slot, weights=w[dead], minlength=times.size)
    d1 = np.zeros((times.size, x.shape[1]))
    np.add.at(d1, slot, wx[dead])
    d2 = np.zeros((times.size, x.shape[1], x.shape[1]))
    np.add.at(d2, slot, wxx[dead])
    k = np.arange(dead.sum()) - np.repeat(np.cumsum(d) - d, d)
    idx = np.repeat(np.arange(times.size), d)
    frac = k / d[idx]
    s0 = r0[idx] - frac * d0[idx]
    s1 = r1[idx] - frac[:, None] * d1[idx]
    s2 = r2[idx] - frac[:, None, None] * d2[idx]
    mean = s1 / s0[:, None]
    loglik = eta[dead].sum() - (np.log(s0) + (eta.max())).sum()
    score = x[dead].sum(0) - mean.sum(0)
    info = (s2 / s0[:, None, None]).sum(0) - mean.T @ mean
    return loglik, score, info


def _efron_score_information(t, e, x):
    """Efron partial-likelihood score vector and information matrix at beta = 0."""
    x = x - x.mean(axis=0)  # invariant for the score test; keeps sums well-conditioned
    _loglik, score, info = _efron_terms(t, e, x, np.zeros(x.shape[1]))
    return score, info


def _efron_fit(t, e, x, max_iterations=50):
    """Newton-Raphson with step halving on the Efron partial likelihood (as R coxph).

    Returns (beta, covariance, loglik at 0, loglik at beta, converged). Covariates are centred
    for stability (the estimates do not change).
    """
    order = np.argsort(t, kind="stable")
    t, e, x = t[order], e[order], x[order] - x.mean(axis=0)
    beta = np.zeros(x.shape[1])
    loglik0, score, info = _efron_terms(t, e, x, beta)
    loglik = loglik0
    for _iteration in range(max_iterations):
        step = np.linalg.solve(info, score)
        new = beta + step
        new_loglik, new_score, new_info = _efron_terms(t, e, x, new)
        halvings = 0
        while not new_loglik >= loglik - 1e-12 * abs(loglik) and halvings < 30:
            step /= 2
            new = beta + step
            new_loglik, new_score, new_info = _efron_terms(t, e, x, new)
            halvings += 1
        # Newton converges quadratically: a step below 1e-10 leaves every printed digit fixed.
        done = np.abs(step).max() < 1e-10 or abs(new_loglik - loglik) <= 1e-14 * max(1.0, abs(loglik))
        beta, loglik, score, info = new, new_loglik, new_score, new_info
        if done:
            return beta, np.linalg.inv(info), loglik0, loglik, True
    return beta, np.linalg.inv(info), loglik0, loglik, False


def _chi2_test(statistic, df):
    return {"statistic": _num(statistic), "df": int(df), "p": _num(stats.chi2.sf(statistic, df))}


def cox(frame, duration_col, event_col, covariates, *, alpha=0.05, concordance=True):
    """Cox proportional hazards model (Efron ties, lifelines, tight convergence = R coxph).

    Complete cases only (rows missing any used column are dropped; ``n`` is the number used).
    Covariates must be numeric (dummy-code categories first). Returns per-term coef, HR, CI at
    level 1 - alpha, se, Wald z and p; the global likelihood-ratio, Wald (b' V^-1 b) and score
    (U' I^-1 U at beta = 0) tests; Harrell's concordance (skip it with concordance=False: it is
    the slowest part on large cohorts, and the report does not use it). Not estimable when n < 2, no events,
    a covariate is constant, or the likelihood is monotone (perfect separation).
    """
    covariates = list(covariates)
    used = [duration_col, event_col, *covariates]
    missing = [c for c in used if c not in frame.columns]
    if missing:
        return _not_estimable(f"missing columns: {', '.join(missing)}")
    if not covariates:
        return _not_estimable("no covariates")
    non_numeric = [c for c in used if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        return _not_estimable(f"non-numeric columns (encode them first): {', '.join(non_numeric)}")
    data = frame[used].dropna().astype(float)
    n, n_events = len(data), int(data[event_col].sum())
    counts = {"n": n, "events": n_events}
    if n < 2:
        return _not_estimable(f"too few complete cases (n = {n})", **counts)
    if not data[event_col].isin((0, 1)).all():
        return _not_estimable("events must be coded 0 (censored) / 1 (event)", **counts)
    if (data[duration_col] < 0).any():
        return _not_estimable("negative durations", **counts)
    if n_events == 0:
        return _not_estimable("no events", **counts)
    constant = [c for c in covariates if data[c].nunique() < 2]
    if constant:
        return _not_estimable(f"covariate without variation: {', '.join(constant)}", **counts)

    t_arr, e_arr, x_arr = (data[duration_col].to_numpy(), data[event_col].to_numpy(),
                           data[covariates].to_numpy())
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            b, variance, loglik0, loglik, converged = _efron_fit(t_arr, e_arr, x_arr)
    except np.linalg.LinAlgError:
        converged = False
    se = np.sqrt(np.diag(variance)) if converged else np.full(len(covariates), np.nan)
    sd = data[covariates].std().to_numpy()
    extreme = (np.abs(b * sd) > SEPARATION_LIMIT) | (se * sd > SEPARATION_LIMIT) if converged else True
    if not converged or np.any(extreme) or not np.isfinite(np.r_[b, se]).all():
        return _not_estimable(
            "monotone likelihood: possible perfect separation (an outcome group is fully "
            "determined by a covariate) or collinearity; the hazard ratio would be infinite",
            **counts)

    wald = float(b @ np.linalg.solve(variance, b))
    u, info = _efron_score_information(t_arr, e_arr, x_arr)
    score = float(u @ np.linalg.solve(info, u))
    z_crit = _z(alpha)
    z = b / se
    terms = [{"term": str(name), "coef": _num(coef), "hr": _num(np.exp(coef)),
              "ci95": [_num(np.exp(coef - z_crit * s)), _num(np.exp(coef + z_crit * s))],
              "se": _num(s), "z": _num(zz), "p": _num(2 * stats.norm.sf(abs(zz)))}
             for name, coef, s, zz in zip(covariates, b, se, z)]
    lr_statistic = 2 * (loglik - loglik0)
    c_index = concordance_index(t_arr, -(x_arr @ b), e_arr) if concordance else None
    return {"estimable": True, "reason": None, **counts, "alpha": alpha, "terms": terms,
            "lr_test": _chi2_test(lr_statistic, len(b)),
            "wald_test": _chi2_test(wald, len(b)),
            "score_test": _chi2_test(score, len(b)),
            "concordance": _num(c_index)}
