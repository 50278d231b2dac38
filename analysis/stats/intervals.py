"""Cox models on (start, stop] intervals (Efron ties) and R's proportional-hazards test.

- ``cox_intervals``: a covariate that switches on during follow-up (a therapy started after the
  index date) is a row per interval, as R ``coxph(Surv(start, stop, event) ~ x)``. lifelines'
  CoxTimeVaryingFitter fits the same model (the tests compare both), but it loops over event
  times in Python: 0.9 s per fit at 10,000 patients, and the report fits four. This fit is the
  same Efron partial likelihood vectorised over event times (the risk set at t is every row with
  start < t <= stop: suffix sums by stop minus suffix sums by start).
- ``cox_zph``: the scaled Schoenfeld residual test of R survival >= 3.0 ``cox.zph(fit,
  transform="km")``: a score test, at the fitted beta, for adding x * g(t) to the model, with the
  full 2p x 2p information matrix (R's C routine zph1), per term and global. lifelines'
  proportional_hazard_test implements the older Grambsch-Therneau approximation (R survival
  < 3.0) and does not reproduce R's current printed values (tests/analysis/test_survival_models.py).
"""
import numpy as np
from scipy import stats

from analysis.stats.common import _chi2_test, _efron_sums, _not_estimable, _num, _z
from analysis.stats.cox import _newton as cox_newton


def _efron_deaths(start, stop, event, x, beta):
    """Efron terms per death at ``beta``: (loglik, score, info, per-death mean, per-death
    variance, the time of each death). Risk set at t: rows with start < t <= stop."""
    eta = x @ beta
    w = np.exp(eta - eta.max())  # the scale cancels in every ratio
    wx = w[:, None] * x
    wxx = wx[:, :, None] * x[:, None, :]
    dead = event == 1
    times = np.unique(stop[dead])

    def at_risk(values):
        by_stop, by_start = np.argsort(stop, kind="stable"), np.argsort(start, kind="stable")

        def suffix(order, keys):
            sums = np.concatenate([np.cumsum(values[order][::-1], axis=0)[::-1], np.zeros((1, *values.shape[1:]))])
            return sums[np.searchsorted(keys[order], times, side="left")]
        # rows with stop >= t, less those with start >= t (they also have stop > t)
        return suffix(by_stop, stop) - suffix(by_start, start)

    r0, r1, r2 = at_risk(w), at_risk(wx), at_risk(wxx)
    order = np.argsort(stop[dead], kind="stable")
    dead_stop, dead_w, dead_wx, dead_wxx = stop[dead][order], w[dead][order], wx[dead][order], wxx[dead][order]
    slot = np.searchsorted(times, dead_stop)
    s0, s1, s2, *_ = _efron_sums(r0, r1, r2, slot, dead_w, dead_wx, dead_wxx)
    mean = s1 / s0[:, None]
    variance = s2 / s0[:, None, None] - mean[:, :, None] * mean[:, None, :]
    loglik = eta[dead].sum() - (np.log(s0) + eta.max()).sum()
    score = x[dead].sum(0) - mean.sum(0)
    return loglik, score, variance.sum(0), mean, variance, dead_stop


def _newton(start, stop, event, x):
    """cox._newton (Newton-Raphson with step halving, as R coxph) on the (start, stop] likelihood."""
    return cox_newton(lambda beta: _efron_deaths(start, stop, event, x, beta)[:3], x.shape[1])


def cox_intervals(start, stop, event, x, names, *, alpha=0.05):
    """Cox model on (start, stop] rows (Efron ties; = R coxph(Surv(start, stop, event) ~ x)).

    Arrays of equal length (one row per interval); ``x`` is (rows, p). Returns terms with coef,
    HR, CI at 1 - alpha, se and Wald p, and ``events``; not estimable without events, with a
    constant covariate or a monotone likelihood. The caller counts patients (rows are not).
    """
    start, stop, event = (np.asarray(a, dtype=float) for a in (start, stop, event))
    x = np.asarray(x, dtype=float).reshape(len(stop), len(names))
    events = int(event.sum())
    if events == 0:
        return _not_estimable("no events", events=0)
    if np.any(stop <= start):
        return _not_estimable("an interval ends before it starts", events=events)
    if np.any(np.ptp(x, axis=0) == 0):
        return _not_estimable("covariate without variation", events=events)
    x = x - x.mean(axis=0)
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            beta, variance, loglik0, loglik, converged = _newton(start, stop, event, x)
        se = np.sqrt(np.diag(variance))
    except np.linalg.LinAlgError:
        converged = False
    if not converged or not np.isfinite(np.r_[beta, se]).all() or np.any(np.abs(beta) > 20):
        return _not_estimable("monotone likelihood: the hazard ratio would be 0 or infinite", events=events)
    z_crit = _z(alpha)
    terms = [{"term": str(name), "coef": _num(b), "hr": _num(np.exp(b)),
              "ci95": [_num(np.exp(b - z_crit * s)), _num(np.exp(b + z_crit * s))],
              "se": _num(s), "p": _num(2 * stats.norm.sf(abs(b / s)))}
             for name, b, s in zip(names, beta, se)]
    return {"estimable": True, "reason": None, "events": events, "terms": terms,
            "lr_test": _chi2_test(2 * (loglik - loglik0), len(beta))}


def km_transform(times, events):
    """1 - S(t-) of the Kaplan-Meier of all rows, at each row's time (cox.zph transform="km")."""
    unique, inverse = np.unique(times, return_inverse=True)
    deaths = np.bincount(inverse, weights=events)
    leaving = np.bincount(inverse)
    at_risk = len(times) - np.concatenate([[0], np.cumsum(leaving)[:-1]])
    survival = np.cumprod(1 - deaths / at_risk)
    before = np.concatenate([[1.0], survival[:-1]])  # left-continuous: S just before each time
    return 1 - before[inverse]


def cox_zph(times, events, x, beta, names, terms=None):
    """R cox.zph(fit, transform="km") for a right-censored Efron fit at coefficients ``beta``.

    ``terms``: {term: [column names]} to test a factor's columns together, as R tests a factor
    term (histology's two dummies: one test with 2 df); by default each column is its own term.
    Returns {"terms": [{term, chisq, df, p}, ..., {"term": "GLOBAL", ...}], "residuals":
    {"g": g(t) per event, "scaled": scaled Schoenfeld residuals per event and term}}: the
    residual plot shows scaled residual against g(t) (a flat band when hazards are proportional).
    """
    t, e = np.asarray(times, dtype=float), np.asarray(events, dtype=float)
    x = np.asarray(x, dtype=float).reshape(len(t), -1)
    x = x - x.mean(axis=0)
    beta = np.asarray(beta, dtype=float)
    g_all = km_transform(t, e)
    g_all = g_all - g_all[e == 1].mean()
    start = np.full(len(t), -np.inf)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        _loglik, _score, _info, mean, variance, dead_time = _efron_deaths(start, t, e, x, beta)
    order = np.argsort(t[e == 1], kind="stable")
    g = g_all[e == 1][order]
    x_dead = x[e == 1][order]
    p = x.shape[1]
    u = (g[:, None] * (x_dead - mean)).sum(0)
    imat = np.zeros((2 * p, 2 * p))
    imat[:p, :p] = variance.sum(0)
    imat[:p, p:] = imat[p:, :p] = (g[:, None, None] * variance).sum(0)
    imat[p:, p:] = (g[:, None, None] ** 2 * variance).sum(0)
    full_u = np.concatenate([np.zeros(p), u])
    rows = []
    position = {name: j for j, name in enumerate(names)}
    for term, columns in (terms or {name: [name] for name in names}).items():
        keep = [*range(p), *(p + position[column] for column in columns)]
        sub_u = full_u[keep]
        chisq = float(sub_u @ np.linalg.solve(imat[np.ix_(keep, keep)], sub_u))
        rows.append({"term": str(term), **_test(chisq, len(columns))})
    rows.append({"term": "GLOBAL", **_test(float(full_u @ np.linalg.solve(imat, full_u)), p)})
    # Scaled Schoenfeld residuals as R's residuals(zph): beta + d * V^-1 r (Grambsch-Therneau).
    schoenfeld = x_dead - mean
    scaled = beta + len(g) * schoenfeld @ np.linalg.inv(imat[:p, :p])
    return {"terms": rows, "residuals": {"g": g.tolist(), "time": dead_time.tolist(),
                                         "scaled": scaled.T.tolist()}}


def _test(chisq, df):
    return {"chisq": _num(chisq), "df": int(df), "p": _num(stats.chi2.sf(chisq, df))}
