"""Cox proportional hazards with Efron ties (and strata), fitted by the registry's own Newton-Raphson.

Not lifelines' CoxPHFitter: the report fits 22 Cox models, and on lifelines' fitters it took 12.6 s,
62 s and 842 s at 10,000 / 50,000 / 200,000 patients (bench/README.md); this fit is vectorised over
event times, stops where R coxph does, and is checked against R survival's estimates to every
printed digit (tests/analysis/test_survival.py, and live on generated data: test_cox_r.py).
lifelines computes only Harrell's concordance. Separated models get Firth's penalty (firth.py)."""
import numpy as np
import pandas as pd
from lifelines.utils import concordance_index
from scipy import stats

from analysis.stats.common import _chi2_test, _efron_sums, _not_estimable, _num, _z
from analysis.stats.firth import firth_fit, firth_penalised
from analysis.stats.firth import profile as firth_profile

# On the standardised scale (coef per SD of the covariate) a |coef| or se this large only
# arises from a monotone likelihood (perfect separation), never from real data.
SEPARATION_LIMIT = 10.0


def _efron_terms(t, e, x, beta, derivative=False):
    """Efron partial log-likelihood, score vector and information matrix at ``beta`` (and with
    ``derivative``, dI/dbeta: dI[i, j, k] = d I[i, j] / d beta_k, for Firth's penalty).

    Vectorised over event times (the only loop is numpy's): rows are sorted by time (callers
    sort once, see _blocks), risk-set sums of w = exp(x'beta), w*x and w*x*x' are suffix sums,
    and each of the d tied deaths at a time gets its Efron fraction k/d (one row per death).
    """
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
    s0, s1, s2, d, idx, frac = _efron_sums(r0, r1, r2, slot, w[dead], wx[dead], wxx[dead])
    mean = s1 / s0[:, None]
    loglik = eta[dead].sum() - (np.log(s0) + (eta.max())).sum()
    score = x[dead].sum(0) - mean.sum(0)
    info = (s2 / s0[:, None, None]).sum(0) - mean.T @ mean
    if not derivative:
        return loglik, score, info
    # Third moments: d(s2/s0)/db_k = s3_k/s0 - (s2/s0) m_k and dm/db_k = (s2/s0)[:, k] - m m_k.
    wxxx = wxx[:, :, :, None] * x[:, None, None, :]
    d3 = np.add.reduceat(wxxx[dead], np.cumsum(d) - d)  # deaths are in time order: sum each time's run
    s3 = np.cumsum(wxxx[::-1], axis=0)[::-1][start][idx] - frac[:, None, None, None] * d3[idx]
    second = s2 / s0[:, None, None]
    dmean = second - mean[:, :, None] * mean[:, None, :]
    d_info = ((s3 / s0[:, None, None, None]).sum(0) - np.einsum("rij,rk->ijk", second, mean)
              - np.einsum("rik,rj->ijk", dmean, mean) - np.einsum("ri,rjk->ijk", mean, dmean))
    return loglik, score, info, d_info


def _blocks(t, e, x, strata=None):
    """The rows as (t, e, x) blocks, one per stratum, each sorted by time; x centred (for
    stability: no estimate changes). Without strata, one block."""
    x = x - x.mean(axis=0)
    if strata is None:
        order = np.argsort(t, kind="stable")
        return [(t[order], e[order], x[order])]
    codes = pd.factorize(pd.Series(list(map(tuple, strata))))[0]
    order = np.lexsort((t, codes))
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return [(t[rows], e[rows], x[rows]) for rows in np.split(order, bounds)]


def _likelihood(blocks):
    """beta -> (log partial likelihood, score, information[, dI/dbeta]), summed over strata (as
    R coxph: each stratum has its own baseline hazard, the coefficients are shared)."""
    def terms(beta, derivative=False):
        parts = [_efron_terms(t, e, x, beta, derivative) for t, e, x in blocks if e.any()]
        return tuple(sum(part[i] for part in parts) for i in range(len(parts[0])))
    return terms


def _newton(terms, size, max_iterations=50):
    """Newton-Raphson with step halving on the Efron partial likelihood (as R coxph).

    Returns (beta, covariance, loglik at 0, loglik at beta, converged).
    """
    beta = np.zeros(size)
    loglik0, score, info = terms(beta)
    loglik = loglik0
    for _iteration in range(max_iterations):
        step = np.linalg.solve(info, score)
        new = beta + step
        new_loglik, new_score, new_info = terms(new)
        halvings = 0
        while not new_loglik >= loglik - 1e-12 * abs(loglik) and halvings < 30:
            step /= 2
            new = beta + step
            new_loglik, new_score, new_info = terms(new)
            halvings += 1
        # Newton converges quadratically: a step below 1e-10 leaves every printed digit fixed.
        done = np.abs(step).max() < 1e-10 or abs(new_loglik - loglik) <= 1e-14 * max(1.0, abs(loglik))
        beta, loglik, score, info = new, new_loglik, new_score, new_info
        if done:
            return beta, np.linalg.inv(info), loglik0, loglik, True
    return beta, np.linalg.inv(info), loglik0, loglik, False


def _aliased(x, names, strata=None):
    """Terms that cannot be estimated: no variation (within strata, when stratified) or a
    linear combination of the terms before them (R coxph reports NA for these). Returns
    {name: reason} in model order."""
    x = pd.DataFrame(x, columns=names)
    if strata is not None:  # only variation within a stratum informs a stratified model
        x = x - x.groupby(pd.Series(list(map(tuple, strata)), index=x.index)).transform("mean")
    else:
        x = x - x.mean()
    dropped, kept = {}, []
    for name in names:
        column = x[name].to_numpy()
        scale = np.abs(column).max()
        if not scale > 1e-12:
            dropped[name] = ("no variation within strata" if strata is not None else "no variation") + \
                " among the complete cases"
            continue
        if kept:
            basis = x[kept].to_numpy()
            residual = column - basis @ np.linalg.lstsq(basis, column, rcond=None)[0]
            if np.abs(residual).max() <= 1e-9 * scale:
                dropped[name] = f"a linear combination of {', '.join(kept)} (collinear)"
                continue
        kept.append(name)
    return dropped


def _diverged(b, se, sd):
    """Which terms of an ordinary fit ran off (monotone likelihood), as a boolean per term: on
    the standardised scale (coef per SD of the covariate) a |coef| or se above SEPARATION_LIMIT
    never arises from real data."""
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(b) | ~np.isfinite(se) | (np.abs(b * sd) > SEPARATION_LIMIT) | (se * sd > SEPARATION_LIMIT)


def _term_rows(names, b, se, z_crit):
    rows = []
    for name, coef, s in zip(names, b, se):
        z = coef / s
        rows.append({"term": str(name), "coef": _num(coef), "hr": _num(np.exp(coef)),
                     "ci95": [_num(np.exp(coef - z_crit * s)), _num(np.exp(coef + z_crit * s))],
                     "se": _num(s), "z": _num(z), "p": _num(2 * stats.norm.sf(abs(z)))})
    return rows


def _profile_rows(terms, b, penalised, separated, names, rows, alpha):
    """The ``separated`` terms of a Firth fit with profile penalised-likelihood CI and p (Heinze &
    Schemper) instead of Wald. Only those: a profile costs dozens of fits, and for a term whose
    ordinary estimate was finite Wald and profile intervals agree closely."""
    out = {name: {**rows[name], "interval": "Wald"} for name in names}
    for name in separated:
        (low, high), p = firth_profile(terms, b, penalised, names.index(name), level=1 - alpha)
        out[name] = {**rows[name], "p": _num(p), "interval": "profile penalised likelihood",
                     "ci95": [None if low is None else _num(np.exp(low)), None if high is None else _num(np.exp(high))]}
    return out


def _dropped_row(name, reason):
    return {"term": str(name), "coef": None, "hr": None, "ci95": [None, None], "se": None, "z": None,
            "p": None, "dropped": reason}


def cox(frame, duration_col, event_col, covariates, *, strata=None, alpha=0.05, concordance=True):
    """Cox proportional hazards model (Efron ties, Newton-Raphson with step halving = R coxph).

    Complete cases only (rows missing any used column are dropped; ``n`` is the number used).
    Covariates must be numeric (dummy-code categories first). ``strata``: columns whose
    combinations get their own baseline hazard (R ``+ strata(...)``).

    Returns per-term coef, HR, CI at level 1 - alpha, se, Wald z and p; the global
    likelihood-ratio, Wald (b' V^-1 b) and score (U' I^-1 U at beta = 0) tests; ``loglik``
    [at 0, at the estimate] and ``covariance`` (of the estimated terms, in order) for tests of
    several terms; Harrell's concordance (skip it with concordance=False: it is the slowest
    part on large cohorts, and the report does not use it; None when stratified).

    - A term without variation or collinear with earlier terms is dropped (R: NA): its row has
      null numbers and ``dropped`` says why, and ``dropped`` lists them; the rest is fitted.
    - When the ordinary fit diverges (separation: an HR running to 0 or infinity) the model is
      refitted with Firth's penalty (analysis.stats.firth): ``method`` is "firth" instead of
      "efron" and ``separation`` is True; the CI and p of each term whose ordinary estimate ran
      off are then from the profile penalised likelihood, the others' Wald (``interval`` says
      which; se and z are Wald); the LR test is of the penalised likelihood.
    Not estimable when n < 2, no events, or no term is left.
    """
    covariates, strata = list(covariates), list(strata or [])
    used = [duration_col, event_col, *covariates, *strata]
    missing = [c for c in used if c not in frame.columns]
    if missing:
        return _not_estimable(f"missing columns: {', '.join(missing)}")
    if not covariates:
        return _not_estimable("no covariates")
    non_numeric = [c for c in [duration_col, event_col, *covariates] if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        return _not_estimable(f"non-numeric columns (encode them first): {', '.join(non_numeric)}")
    data = frame[used].dropna()
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
    strata_values = data[strata].to_numpy() if strata else None
    dropped = _aliased(data[covariates].astype(float).to_numpy(), covariates, strata_values)
    kept = [c for c in covariates if c not in dropped]
    if not kept:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in dropped.items())
        return _not_estimable(f"no covariate can be estimated ({reasons})", **counts,
                              dropped=[{"term": k, "reason": v} for k, v in dropped.items()])

    t_arr, e_arr = data[duration_col].to_numpy(float), data[event_col].to_numpy(float)
    x_arr = data[kept].to_numpy(float)
    terms = _likelihood(_blocks(t_arr, e_arr, x_arr, strata_values))
    sd = x_arr.std(axis=0, ddof=1)
    method = "efron"
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        try:
            b, variance, loglik0, loglik, converged = _newton(terms, len(kept))
            separated = _diverged(b, np.sqrt(np.diag(variance)), sd)
            se = np.sqrt(np.diag(variance))
        except np.linalg.LinAlgError:  # the information became singular on the way out
            converged, separated = False, np.ones(len(kept), dtype=bool)
        if not converged or separated.any():
            method = "firth"
            if not separated.any():  # stopped without a term running off: cannot tell which
                separated[:] = True
            try:
                b, variance, converged = firth_fit(terms, len(kept))
                loglik0 = firth_penalised(terms, np.zeros(len(kept)))
                loglik = firth_penalised(terms, b)
                se = np.sqrt(np.diag(variance))
            except np.linalg.LinAlgError:
                converged = False
    if not converged or not np.isfinite(np.r_[b, se]).all():
        return _not_estimable("the Cox model did not converge, even with Firth's penalty", **counts)

    wald = float(b @ np.linalg.solve(variance, b))
    u, info = terms(np.zeros(len(kept)))[1:]
    score = float(u @ np.linalg.solve(info, u))
    rows = {row["term"]: row for row in _term_rows(kept, b, se, _z(alpha))}
    if method == "firth":
        rows.update(_profile_rows(terms, b, loglik, [n for n, s in zip(kept, separated) if s], kept, rows, alpha))
    rows.update({name: _dropped_row(name, reason) for name, reason in dropped.items()})
    c_index = concordance_index(t_arr, -(x_arr @ b), e_arr) if concordance and not strata else None
    return {"estimable": True, "reason": None, **counts, "alpha": alpha, "method": method,
            "separation": method == "firth", "strata": strata,
            "terms": [rows[name] for name in covariates],
            "dropped": [{"term": name, "reason": reason} for name, reason in dropped.items()],
            "loglik": [_num(loglik0), _num(loglik)],
            "covariance": [[_num(v) for v in row] for row in variance],
            "lr_test": _chi2_test(2 * (loglik - loglik0), len(b)),
            "wald_test": _chi2_test(wald, len(b)),
            "score_test": _chi2_test(score, len(b)),
            "concordance": _num(c_index)}


def robust_covariance(times, events, x, beta, covariance, clusters):
    """The cluster-robust (sandwich) covariance of an Efron Cox fit, as R ``coxph(..., cluster =
    g)``: D'D, where D sums each cluster's dfbeta residuals (score residuals times the model's
    covariance). Score residuals split each tied death set as Efron's approximation does: the
    k-th of d tied deaths sees the dying subjects' weights reduced by k/d (R's coxscore2).
    lifelines' robust variance does not split ties so, and is ~4 % off R with tied times.
    """
    t, e = np.asarray(times, dtype=float), np.asarray(events, dtype=float)
    x = np.asarray(x, dtype=float).reshape(len(t), -1)
    order = np.argsort(t, kind="stable")
    t, e, x, clusters = t[order], e[order], x[order], np.asarray(clusters)[order]
    eta = x @ np.asarray(beta, dtype=float)
    w = np.exp(eta - eta.max())
    dead = e == 1
    times_ = np.unique(t[dead])
    first = np.searchsorted(t, times_, side="left")
    wx = w[:, None] * x
    r0 = np.cumsum(w[::-1])[::-1][first]
    r1 = np.cumsum(wx[::-1], axis=0)[::-1][first]
    slot = np.searchsorted(times_, t[dead])
    wxx = np.zeros((dead.sum(), x.shape[1], x.shape[1]))  # not needed for residuals
    s0, s1, _s2, d, idx, frac = _efron_sums(r0, r1, np.zeros((times_.size, x.shape[1], x.shape[1])), slot,
                                             w[dead], wx[dead], wxx)
    mean = s1 / s0[:, None]
    # per event time: sums over its d pseudo risk sets of 1/S0 and m/S0, unweighted and weighted by
    # the share (1 - k/d) a subject dying then keeps in each
    keep = 1 - frac
    a = np.bincount(idx, weights=1 / s0, minlength=times_.size)
    b = np.zeros((times_.size, x.shape[1]))
    np.add.at(b, idx, mean / s0[:, None])
    a_own = np.bincount(idx, weights=keep / s0, minlength=times_.size)
    b_own = np.zeros_like(b)
    np.add.at(b_own, idx, keep[:, None] * mean / s0[:, None])
    mean_of_set = np.zeros_like(b)
    np.add.at(mean_of_set, idx, mean)
    mean_of_set /= d[:, None]
    # each subject: every event time up to its own time, its own death time with its reduced share
    upto = np.searchsorted(times_, t, side="right")
    ca = np.concatenate([[0.0], np.cumsum(a)])[upto]
    cb = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(b, axis=0)])[upto]
    own = np.searchsorted(times_, t[dead])
    ca[dead] += a_own[own] - a[own]
    cb[dead] += b_own[own] - b[own]
    residuals = -w[:, None] * (x * ca[:, None] - cb)
    residuals[dead] += x[dead] - mean_of_set[own]
    dfbeta = residuals @ np.asarray(covariance, dtype=float)
    labels, group = np.unique(clusters, return_inverse=True)
    summed = np.zeros((labels.size, x.shape[1]))
    np.add.at(summed, group, dfbeta)
    return summed.T @ summed
