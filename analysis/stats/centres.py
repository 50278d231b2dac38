"""Centre effects: Cox models adjusted for centre (lifelines CoxPHFitter, Efron ties) and the
heterogeneity of per-centre hazard ratios (Cochran's Q, I²).

- stratified: a baseline hazard per centre, one hazard ratio (= R ``coxph(... + strata(centre))``);
- robust: the pooled model with the cluster-robust sandwich variance by centre (= R ``coxph(...,
  cluster = centre)``; lifelines' ``cluster_col``).
Both are checked against R in tests/analysis/test_survival_models.py.
"""
import warnings

import numpy as np
from scipy import stats

from analysis.stats.common import _not_estimable, _num, _z


def cox_by_centre(frame, duration_col, event_col, covariates, centre_col, how, *, alpha=0.05):
    """A Cox model of ``covariates`` with centre handled as ``how`` ("stratified" | "robust")."""
    from lifelines import CoxPHFitter  # lifelines loads in seconds: only when a plan asks for this
    from lifelines.exceptions import ConvergenceError

    used = [duration_col, event_col, *covariates]
    data = frame[[*used, centre_col]].dropna(subset=used)
    counts = {"n": int(len(data)), "events": int(data[event_col].sum())}
    if counts["events"] == 0:
        return _not_estimable("no events", **counts)
    if any(data[c].nunique() < 2 for c in covariates):
        return _not_estimable("covariate without variation", **counts)
    fitter = CoxPHFitter()
    options = {"strata": [centre_col]} if how == "stratified" else {"cluster_col": centre_col}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitter.fit(data, duration_col, event_col, **options)
    except (ConvergenceError, np.linalg.LinAlgError, ValueError) as error:
        return _not_estimable(f"the model did not converge ({error})", **counts)
    z = _z(alpha)
    summary = fitter.summary
    terms = [{"term": name, "coef": _num(row["coef"]), "hr": _num(np.exp(row["coef"])),
              "ci95": [_num(np.exp(row["coef"] - z * row["se(coef)"])), _num(np.exp(row["coef"] + z * row["se(coef)"]))],
              "se": _num(row["se(coef)"]), "p": _num(2 * stats.norm.sf(abs(row["coef"] / row["se(coef)"])))}
             for name, row in summary.loc[covariates].iterrows()]
    return {"estimable": True, "reason": None, **counts, "adjustment": how, "terms": terms}


def heterogeneity(coefs, ses):
    """Cochran's Q of log hazard ratios with standard errors (inverse-variance weights), its
    df (k - 1) and chi-square p, and I² = max(0, (Q - df) / Q) (Higgins & Thompson 2002)."""
    b, se = np.asarray(coefs, dtype=float), np.asarray(ses, dtype=float)
    keep = np.isfinite(b) & np.isfinite(se) & (se > 0)
    b, se = b[keep], se[keep]
    if len(b) < 2:
        return {"q": None, "df": 0, "p": None, "i2": None, "pooled_hr": None}
    w = 1 / se ** 2
    pooled = (w * b).sum() / w.sum()
    q = float((w * (b - pooled) ** 2).sum())
    df = len(b) - 1
    return {"q": _num(q), "df": df, "p": _num(stats.chi2.sf(q, df)),
            "i2": _num(max(0.0, (q - df) / q) if q > 0 else 0.0), "pooled_hr": _num(np.exp(pooled))}
