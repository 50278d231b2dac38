"""Tests of several Cox terms at once, for the report (endpoints.md, "v2 additions").

``global_tests``: one test of a multi-level factor (histology: its dummies together, 2 df with
three histologies), in the univariable model and, where the plan's multivariable model has the
factor, adjusted for its other covariates. A Wald test (b' V^-1 b of the factor's terms) and a
likelihood-ratio test against the model without the factor, fitted on the same patients.

``interaction_tests``: does the effect of peri-PM systemic therapy differ by lesion size (the
subgroup claim)? The product term of a Cox model with both factors and their product: its HR
(ratio of the therapy HRs above and below the size cut-off), Wald p, and the LR test against the
main-effects model on the same patients.

Both are checked against R coxph / anova (tests/analysis/test_model_tests_r.py).
"""
import numpy as np

from analysis import factors
from analysis.cox_models import estimated_terms, fit_cox
from analysis.plan import ENDPOINTS
from analysis.stats.common import _chi2_test

INTERACTIONS = (("size_gt_2cm", "peri_pm_systemic"),)


def _lr(full, reduced):
    """LR test of nested ordinary fits; None when either is Firth-penalised (different likelihoods)."""
    if "firth" in (full["method"], reduced["method"]):
        return None
    df = len(estimated_terms(full)) - len(estimated_terms(reduced))
    return _chi2_test(2 * (full["loglik"][1] - reduced["loglik"][1]), df) if df > 0 else None


def _null_fit(fit):
    """The model without covariates, as an LR reference: the log-likelihood at beta = 0."""
    return {"method": fit["method"], "terms": [], "loglik": [fit["loglik"][0], fit["loglik"][0]]}


def _wald(fit, tested):
    names = estimated_terms(fit)
    index = [names.index(term) for term in tested if term in names]
    if not index:
        return None
    by_name = {t["term"]: t for t in fit["terms"]}
    coef = np.array([by_name[names[i]]["coef"] for i in index])
    variance = np.array(fit["covariance"])[np.ix_(index, index)]
    return _chi2_test(float(coef @ np.linalg.solve(variance, coef)), len(index))


def _complete(data, endpoint, columns):
    return data[[f"{endpoint}_months", f"{endpoint}_event", *columns]].dropna()


def global_test(data, endpoint, factor, plan, *, adjusted_for=(), report=None, model=None):
    """Wald and LR test of all of ``factor``'s terms, adjusted for the ``adjusted_for`` columns."""
    tested, others = factors.columns(factor, plan), list(adjusted_for)
    complete = _complete(data, endpoint, [*others, *tested])
    full = fit_cox(complete, endpoint, [*others, *tested], report=report, model=model)
    row = {"endpoint": endpoint, "model": "multivariable" if others else "univariable", "factor": factor,
           "terms": tested, "adjusted_for": others, "n": full.get("n", 0), "events": full.get("events", 0),
           "wald": None, "lr": None, "method": full.get("method"), "estimable": False, "reason": full["reason"]}
    if not full["estimable"]:
        return row
    reduced = fit_cox(complete, endpoint, others) if others else _null_fit(full)
    wald = _wald(full, tested)
    if wald is None:
        return {**row, "reason": f"every term of {factor} was left out of the model"}
    lr = _lr(full, reduced) if reduced.get("estimable", True) else None
    return {**row, "wald": wald, "lr": lr, "estimable": True, "reason": None}


def global_tests(data, plan, *, report=None):
    """The global test of histology per endpoint: univariable, and in the multivariable model."""
    if len(factors.columns("histology", plan)) < 2:
        return []  # one dummy: its own Wald p is the test
    rows = []
    for endpoint in ENDPOINTS:
        rows.append(global_test(data, endpoint, "histology", plan, report=report,
                                model=f"univariable {endpoint} histology"))
        if "histology" in plan.multivariable_covariates and endpoint in plan.multivariable_endpoints:
            others = [c for f in plan.multivariable_covariates if f != "histology" for c in factors.columns(f, plan)]
            rows.append(global_test(data, endpoint, "histology", plan, adjusted_for=others, report=report,
                                    model=f"multivariable {endpoint}"))
    return rows


def interaction_test(data, endpoint, first, second, *, report=None):
    """The ``first`` x ``second`` product term of a Cox model with both factors."""
    term = f"{first}:{second}"
    complete = _complete(data, endpoint, [first, second])
    complete = complete.assign(**{term: complete[first] * complete[second]})
    model = f"interaction {endpoint} {term}"
    full = fit_cox(complete, endpoint, [first, second, term], report=report, model=model)
    row = {"endpoint": endpoint, "factors": [first, second], "term": term, "n": full.get("n", 0),
           "events": full.get("events", 0), "hr": None, "ci95": [None, None], "p": None, "lr": None,
           "method": full.get("method"), "estimable": False, "reason": full["reason"]}
    if not full["estimable"]:
        return row
    product = next(t for t in full["terms"] if t["term"] == term)
    if product.get("dropped"):
        return {**row, "reason": f"{term} left out: {product['dropped']}"}
    main = fit_cox(complete, endpoint, [first, second])
    lr = _lr(full, main) if main["estimable"] else None
    return {**row, "hr": product["hr"], "ci95": product["ci95"], "p": product["p"], "lr": lr,
            "estimable": True, "reason": None}


def interaction_tests(data, plan, *, report=None):
    """Every interaction the report's subgroup claims rest on, per endpoint."""
    return [interaction_test(data, endpoint, first, second, report=report)
            for first, second in INTERACTIONS for endpoint in ENDPOINTS]
