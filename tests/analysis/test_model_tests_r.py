"""The report's global and interaction tests (analysis.model_tests) against R coxph and anova, run
live on generated model data (the columns report.model_data makes), and the report's warnings of
its Cox models (analysis.cox_models). Pure: no database."""
import numpy as np
import pandas as pd
import pytest

from analysis.cox_models import fit_cox
from analysis.model_tests import global_tests, interaction_tests
from analysis.plan import AnalysisPlan
from tests.analysis.rlive import rscript


def model_data(seed, n=400):
    """Model columns as report.model_data makes them (floats, NaN = missing), with a size x
    therapy interaction on DFS and histology effects on both endpoints."""
    rng = np.random.default_rng(seed)
    histology = rng.choice(["LMS", "SyS", "UPS"], n)
    size, therapy = rng.integers(0, 2, n).astype(float), rng.integers(0, 2, n).astype(float)
    lesions, tfi = rng.integers(0, 2, n).astype(float), rng.integers(0, 2, n).astype(float)
    sys_, ups = (histology == "SyS").astype(float), (histology == "UPS").astype(float)
    frame = {"size_gt_2cm": size, "peri_pm_systemic": therapy, "multiple_lesions": lesions, "tfi_gt_12m": tfi,
             "histology_LMS": (histology == "LMS").astype(float), "histology_SyS": sys_, "histology_UPS": ups}
    for endpoint, log_hr in (("dfs", 0.6 * size - 0.8 * size * therapy + 0.3 * sys_ + 0.5 * ups + 0.3 * lesions),
                             ("os", 0.9 * size + 0.4 * ups - 0.4 * tfi)):
        event_time = rng.exponential(20 * np.exp(-log_hr))
        censor_time = rng.uniform(0, 60, n)
        frame[f"{endpoint}_months"] = np.round(np.minimum(event_time, censor_time), 1)
        frame[f"{endpoint}_event"] = (event_time <= censor_time).astype(float)
    frame = pd.DataFrame(frame)
    frame.loc[rng.uniform(size=n) < 0.05, "tfi_gt_12m"] = np.nan
    frame.loc[rng.uniform(size=n) < 0.05, "peri_pm_systemic"] = np.nan
    return frame


DATA = model_data(1)
PLAN = AnalysisPlan(multivariable_endpoints=("dfs", "os"))

R_CODE = """
out <- list()
for (endpoint in c("dfs", "os")) {
  d$t <- d[[paste0(endpoint, "_months")]]; d$e <- d[[paste0(endpoint, "_event")]]
  uni <- coxph(Surv(t, e) ~ histology_SyS + histology_UPS, data = d)
  cc <- na.omit(d[, c("t", "e", "size_gt_2cm", "multiple_lesions", "tfi_gt_12m", "histology_SyS", "histology_UPS")])
  full <- coxph(Surv(t, e) ~ size_gt_2cm + multiple_lesions + tfi_gt_12m + histology_SyS + histology_UPS, data = cc)
  reduced <- coxph(Surv(t, e) ~ size_gt_2cm + multiple_lesions + tfi_gt_12m, data = cc)
  h <- c("histology_SyS", "histology_UPS")
  b <- coef(full)[h]
  ic <- na.omit(d[, c("t", "e", "size_gt_2cm", "peri_pm_systemic")])
  inter <- coxph(Surv(t, e) ~ size_gt_2cm * peri_pm_systemic, data = ic)
  main <- coxph(Surv(t, e) ~ size_gt_2cm + peri_pm_systemic, data = ic)
  s <- summary(inter)$coefficients
  out[[endpoint]] <- list(
    uni_lr = 2 * diff(uni$loglik), uni_wald = unname(uni$wald.test), uni_n = uni$n,
    multi_lr = anova(reduced, full)[2, "Chisq"], multi_df = anova(reduced, full)[2, "Df"],
    multi_wald = as.numeric(t(b) %*% solve(vcov(full)[h, h]) %*% b), multi_n = full$n,
    inter_coef = s["size_gt_2cm:peri_pm_systemic", "coef"], inter_p = s["size_gt_2cm:peri_pm_systemic", "Pr(>|z|)"],
    inter_lr = anova(main, inter)[2, "Chisq"], inter_n = inter$n)
}
result <- out
"""


@pytest.fixture(scope="module")
def r():
    return rscript(R_CODE, d=DATA)


def test_histology_global_tests_match_r_wald_and_likelihood_ratio(r):
    rows = {(row["endpoint"], row["model"]): row for row in global_tests(DATA, PLAN)}
    assert set(rows) == {(e, m) for e in ("dfs", "os") for m in ("univariable", "multivariable")}
    for endpoint in ("dfs", "os"):
        uni, multi, ref = rows[endpoint, "univariable"], rows[endpoint, "multivariable"], r[endpoint]
        assert uni["terms"] == ["histology_SyS", "histology_UPS"] and uni["wald"]["df"] == uni["lr"]["df"] == 2
        assert uni["n"] == ref["uni_n"] and multi["n"] == ref["multi_n"]
        assert uni["wald"]["statistic"] == pytest.approx(ref["uni_wald"], abs=1e-7)
        assert uni["lr"]["statistic"] == pytest.approx(ref["uni_lr"], abs=1e-7)
        assert multi["lr"]["df"] == ref["multi_df"] == 2
        assert multi["lr"]["statistic"] == pytest.approx(ref["multi_lr"], abs=1e-7)
        assert multi["wald"]["statistic"] == pytest.approx(ref["multi_wald"], abs=1e-7)
        assert multi["adjusted_for"] == ["size_gt_2cm", "multiple_lesions", "tfi_gt_12m"]


def test_size_by_therapy_interaction_matches_r(r):
    rows = {row["endpoint"]: row for row in interaction_tests(DATA, PLAN)}
    for endpoint in ("dfs", "os"):
        row, ref = rows[endpoint], r[endpoint]
        assert row["term"] == "size_gt_2cm:peri_pm_systemic" and row["estimable"]
        assert row["n"] == ref["inter_n"]
        assert np.log(row["hr"]) == pytest.approx(ref["inter_coef"], abs=1e-8)
        assert row["p"] == pytest.approx(ref["inter_p"], abs=1e-9)
        assert row["lr"]["statistic"] == pytest.approx(ref["inter_lr"], abs=1e-7) and row["lr"]["df"] == 1
    assert rows["dfs"]["p"] < 0.05  # the generated DFS interaction is found


def test_a_model_with_fewer_than_ten_events_per_variable_warns_and_is_still_fitted():
    report = {}
    few = DATA.iloc[:40]
    fit = fit_cox(few, "dfs", ["size_gt_2cm", "multiple_lesions", "tfi_gt_12m"], report=report, model="m")
    assert fit["estimable"] and fit["events"] < 30
    (warning,) = report["warnings"]
    assert warning["code"] == "low_epv" and warning["model"] == "m" and "events per variable" in warning["message"]
    report = {}
    fit_cox(DATA, "dfs", ["size_gt_2cm"], report=report, model="m")
    assert report == {}


def test_separation_is_warned_as_firth_and_a_collinear_term_as_left_out_never_conflated():
    data = DATA.assign(dfs_event=DATA["size_gt_2cm"] * DATA["dfs_event"])  # no events when size = 0
    report = {}
    fit = fit_cox(data, "dfs", ["size_gt_2cm", "multiple_lesions"], report=report, model="separated")
    assert fit["method"] == "firth"
    assert [w["code"] for w in report["warnings"]] == ["separation_firth"]
    report = {}
    data = DATA.assign(both=DATA["size_gt_2cm"] + DATA["multiple_lesions"])
    fit = fit_cox(data, "dfs", ["size_gt_2cm", "multiple_lesions", "both"], report=report, model="aliased")
    assert fit["method"] == "efron"
    assert [w["code"] for w in report["warnings"]] == ["aliased_term"] and "both" in report["warnings"][0]["message"]
