"""Cox proportional hazards with Efron ties, fitted by the registry's own Newton-Raphson.

Not lifelines' CoxPHFitter: the report fits 22 Cox models, and on lifelines' fitters it took 12.6 s,
62 s and 842 s at 10,000 / 50,000 / 200,000 patients (bench/README.md); this fit is vectorised over
event times, stops where R coxph does, and is checked against R survival's estimates to every
printed digit (tests/analysis/test_survival.py). lifelines computes only Harrell's concordance."""
import numpy as np
import pandas as pd
from lifelines.utils import concordance_index
from scipy import stats

from analysis.stats.common import _chi2_test, _not_estimable, _num, _z

# On the standardised scale (coef per SD of the covariate) a |coef| or se this large only
# arises from a monotone likelihood (perfect separation), never from real data.
SEPARATION_LIMIT = 10.0


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


def cox(frame, duration_col, event_col, covariates, *, alpha=0.05, concordance=True):
    """Cox proportional hazards model (Efron ties, Newton-Raphson with step halving = R coxph).

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
