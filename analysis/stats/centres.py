"""Centre effects: Cox models adjusted for centre (analysis.stats.cox, Efron ties) and the
heterogeneity of per-centre hazard ratios (Cochran's Q, I²).

- stratified: a baseline hazard per centre, one hazard ratio (= R ``coxph(... + strata(centre))``);
- robust: the pooled model with the cluster-robust sandwich variance by centre (= R ``coxph(...,
  cluster = centre)``; cox.robust_covariance, which splits tied deaths as R does, unlike lifelines).
Both are checked against R in tests/analysis/test_survival_models.py.
"""
import numpy as np
from scipy import stats

from analysis.stats.common import _not_estimable, _num, _z
from analysis.stats.cox import cox, robust_covariance


def cox_by_centre(frame, duration_col, event_col, covariates, centre_col, how, *, alpha=0.05):
    """A Cox model of ``covariates`` with centre handled as ``how`` ("stratified" | "robust")."""
    used = [duration_col, event_col, *covariates]
    data = frame[[*used, centre_col]].dropna(subset=used)
    counts = {"n": int(len(data)), "events": int(data[event_col].sum())}
    if counts["events"] == 0:
        return _not_estimable("no events", **counts)
    if any(data[c].nunique() < 2 for c in covariates):
        return _not_estimable("covariate without variation", **counts)
    strata = [centre_col] if how == "stratified" else None
    fit = cox(data, duration_col, event_col, covariates, strata=strata, alpha=alpha, concordance=False)
    if not fit["estimable"] or fit["dropped"] or fit["method"] != "efron":
        return _not_estimable(fit["reason"] or "a term could not be estimated without penalty", **counts)
    coefs = np.array([term["coef"] for term in fit["terms"]])
    if how == "stratified":
        ses = np.array([term["se"] for term in fit["terms"]])
    else:
        covariance = robust_covariance(data[duration_col], data[event_col], data[covariates].to_numpy(float),
                                       coefs, fit["covariance"], data[centre_col].to_numpy())
        ses = np.sqrt(np.diag(covariance))
    z = _z(alpha)
    terms = [{"term": name, "coef": _num(b), "hr": _num(np.exp(b)),
              "ci95": [_num(np.exp(b - z * se)), _num(np.exp(b + z * se))],
              "se": _num(se), "p": _num(2 * stats.norm.sf(abs(b / se)))}
             for name, b, se in zip(covariates, coefs, ses)]
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
