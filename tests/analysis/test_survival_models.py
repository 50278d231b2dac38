"""The models of endpoints.md v2 against R survival, run live on generated data, and against
synthetic cohorts with a known truth: time-dependent Cox, cox.zph, Aalen-Johansen, centre-
stratified and cluster-robust Cox, and the immortal-time bias the time-dependent estimate removes.

R runs through Rscript (Debian r-base-core + r-cran-survival). Without Rscript these tests are
skipped, unless the environment variable CI is set: then a missing R is a failure.
"""
import io
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis import sections
from analysis.plan import AnalysisPlan
from analysis.stats import cox
from analysis.stats.centres import cox_by_centre, heterogeneity
from analysis.stats.competing import aalen_johansen
from analysis.stats.intervals import cox_intervals, cox_zph
from tests.analysis.rlive import rscript


def run_r(script, **frames):
    """R's numbers for a script that ends with ``r_vector(...)`` (tests/analysis/rlive.py runs it)."""
    return rscript(script, **frames)


def r_vector(expression):
    """R code leaving a numeric vector as the result, full precision."""
    return f"result <- I(as.numeric({expression}))"


@pytest.fixture(scope="module")
def cohort():
    """300 patients, whole-month times with ties, two covariates, 12 % censored early."""
    rng = np.random.default_rng(3)
    n = 300
    x1 = rng.integers(0, 2, n).astype(float)
    x2 = np.round(rng.normal(0, 1, n), 2)
    t = np.round(rng.exponential(20 * np.exp(-0.5 * x1 + 0.4 * x2 * (x1 == 0))), 0)
    e = (rng.random(n) < 0.75).astype(float)
    centre = rng.choice(["HD", "MUC", "BER", "KOE"], n)
    return pd.DataFrame({"t": t, "e": e, "x1": x1, "x2": x2, "centre": centre})


# --- time-dependent Cox -------------------------------------------------------------------------

def intervals_of(cohort, seed=4):
    rng = np.random.default_rng(seed)
    start = np.where(cohort["x1"] == 1, rng.uniform(-2, 10, len(cohort)), np.nan)
    t = cohort["t"].to_numpy() + 0.5  # no time 0: every patient has an interval
    starts, stops, events, exposed, ids = sections.counting_process(t, cohort["e"].to_numpy(), start)
    return pd.DataFrame({"start": starts, "stop": stops, "event": events, "x": exposed, "id": ids})


def test_time_dependent_cox_matches_r_coxph_on_start_stop_intervals(cohort):
    rows = intervals_of(cohort)
    fit = cox_intervals(rows["start"], rows["stop"], rows["event"], rows[["x"]].to_numpy(), ["x"])
    r = run_r("d <- read.csv(d_path); f <- coxph(Surv(start, stop, event) ~ x, d, ties='efron')\n"
              + r_vector("c(coef(f), sqrt(diag(vcov(f))), summary(f)$coefficients[, 5])"), d=rows)
    (term,) = fit["terms"]
    assert term["coef"] == pytest.approx(r[0], rel=1e-7)
    assert term["se"] == pytest.approx(r[1], rel=1e-7)
    assert term["p"] == pytest.approx(r[2], rel=1e-6)


def test_time_dependent_cox_agrees_with_lifelines_coxtimevaryingfitter(cohort):
    from lifelines import CoxTimeVaryingFitter

    rows = intervals_of(cohort, seed=9)
    fit = cox_intervals(rows["start"], rows["stop"], rows["event"], rows[["x"]].to_numpy(), ["x"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = CoxTimeVaryingFitter().fit(rows, id_col="id", start_col="start", stop_col="stop",
                                               event_col="event")
    assert fit["terms"][0]["coef"] == pytest.approx(reference.params_["x"], rel=1e-5)
    assert fit["terms"][0]["se"] == pytest.approx(reference.standard_errors_["x"], rel=1e-5)


def test_counting_process_switches_exposure_on_at_the_therapy_start():
    t, e = np.array([10.0, 10.0, 10.0, 4.0, 0.0]), np.array([1.0, 0.0, 1.0, 1.0, 1.0])
    start = np.array([3.0, -1.0, np.nan, 6.0, np.nan])  # adjuvant, neoadjuvant, never, after the event, time 0
    starts, stops, events, exposed, ids = sections.counting_process(t, e, start)
    rows = sorted(zip(ids, starts, stops, events, exposed))
    assert rows == [(0, 0, 3, 0, 0), (0, 3, 10, 1, 1), (1, 0, 10, 0, 1), (2, 0, 10, 1, 0), (3, 0, 4, 1, 0)]


def test_time_dependent_estimate_removes_the_immortal_time_bias_of_the_naive_one():
    """Known truth: the therapy does nothing (HR 1), but it starts 0-6 months after the index and
    only patients still event-free then can receive it. The naive HR looks protective; the
    time-dependent and landmark estimates contain 1."""
    rng = np.random.default_rng(11)
    n = 4000
    t = rng.exponential(12, n)  # DFS, months, no effect of therapy
    planned = rng.uniform(0, 6, n)
    treated = (rng.random(n) < 0.5) & (planned < t)  # only who is still event-free can start it
    censor = rng.uniform(24, 60, n)
    data = pd.DataFrame({"dfs_months": np.minimum(t, censor), "dfs_event": (t <= censor).astype(float)})
    data["os_months"], data["os_event"] = data["dfs_months"], data["dfs_event"]
    data["peri_pm_systemic"] = treated.astype(float)
    data["therapy_start_months"] = np.where(treated, planned, np.nan)
    data["size_gt_2cm"] = 1.0
    report = {}
    rows = {(r["method"]): r for r in sections.therapy_effects(data, AnalysisPlan(), report)
            if r["endpoint"] == "dfs" and r["population"] == "all"}
    assert rows["naive"]["biased"] and rows["naive"]["hr"] < 0.75 and rows["naive"]["ci95"][1] < 1
    assert rows["time_dependent"]["ci95"][0] < 1 < rows["time_dependent"]["ci95"][1]
    assert rows["landmark"]["ci95"][0] < 1 < rows["landmark"]["ci95"][1]
    assert rows["landmark"]["n"] == int((data["dfs_months"] > 6).sum())
    assert rows["time_dependent"]["n"] == n and rows["time_dependent"]["events"] == int(data["dfs_event"].sum())
    assert [w["code"] for w in report["warnings"]] == ["immortal_time_bias"]


def test_landmark_estimate_matches_r_on_the_patients_event_free_at_the_landmark(cohort):
    data = cohort.rename(columns={"t": "dfs_months", "e": "dfs_event"})
    start = np.where(data["x1"] == 1, np.random.default_rng(2).uniform(0, 9, len(data)), np.nan)
    data = data.assign(os_months=data["dfs_months"], os_event=data["dfs_event"], peri_pm_systemic=data["x1"],
                       therapy_start_months=start, size_gt_2cm=0.0)
    (row,) = [r for r in sections.therapy_effects(data, AnalysisPlan(landmark_months=6), {})
              if (r["endpoint"], r["population"], r["method"]) == ("dfs", "all", "landmark")]
    r = run_r("d <- read.csv(d_path); d <- d[d$dfs_months > 6, ]\n"
              "d$x <- as.numeric(!is.na(d$therapy_start_months) & d$therapy_start_months <= 6)\n"
              "f <- coxph(Surv(dfs_months - 6, dfs_event) ~ x, d)\n"
              + r_vector("c(exp(coef(f)), nrow(d), f$nevent)"), d=data)
    assert row["hr"] == pytest.approx(r[0], rel=1e-6) and (row["n"], row["events"]) == (r[1], r[2])
    assert row["landmark_months"] == 6


# --- proportional hazards -------------------------------------------------------------------------

ZPH_R = ("d <- read.csv(d_path); f <- coxph(Surv(t, e) ~ x1 + x2, d)\n"
         + r_vector("c(coef(f), cox.zph(f, transform='km')$table)"))


def test_cox_zph_matches_r_survival_3_per_term_and_global(cohort):
    fit = cox(cohort, "t", "e", ["x1", "x2"], concordance=False)
    beta = [term["coef"] for term in fit["terms"]]
    result = cox_zph(cohort["t"], cohort["e"], cohort[["x1", "x2"]].to_numpy(), beta, ["x1", "x2"])
    r = run_r(ZPH_R, d=cohort)
    assert beta == pytest.approx(r[:2], rel=1e-7)
    chisq, df, p = r[2:5], r[5:8], r[8:11]
    assert [t["term"] for t in result["terms"]] == ["x1", "x2", "GLOBAL"]
    assert [t["chisq"] for t in result["terms"]] == pytest.approx(chisq, rel=1e-6)
    assert [t["df"] for t in result["terms"]] == df
    assert [t["p"] for t in result["terms"]] == pytest.approx(p, rel=1e-6)


def test_cox_zph_tests_a_factors_dummies_together_as_r_tests_a_factor_term(cohort):
    """Histology's two dummies are one term with 2 df in R's cox.zph(coxph(... + factor(g)))."""
    g = np.random.default_rng(11).integers(0, 3, len(cohort))
    data = cohort.assign(g=g, g1=(g == 1).astype(float), g2=(g == 2).astype(float))
    fit = cox(data, "t", "e", ["x1", "g1", "g2"], concordance=False)
    beta = [term["coef"] for term in fit["terms"]]
    result = cox_zph(data["t"], data["e"], data[["x1", "g1", "g2"]].to_numpy(), beta, ["x1", "g1", "g2"],
                     terms={"x1": ["x1"], "g": ["g1", "g2"]})
    r = run_r("d <- read.csv(d_path); f <- coxph(Surv(t, e) ~ x1 + factor(g), d)\n"
              + r_vector("cox.zph(f, transform='km')$table"), d=data)
    chisq, df, p = r[0:3], r[3:6], r[6:9]
    assert [t["term"] for t in result["terms"]] == ["x1", "g", "GLOBAL"]
    assert [t["chisq"] for t in result["terms"]] == pytest.approx(chisq, rel=1e-6)
    assert [t["df"] for t in result["terms"]] == df == [1, 2, 3]
    assert [t["p"] for t in result["terms"]] == pytest.approx(p, rel=1e-6)


def test_lifelines_proportional_hazard_test_does_not_reproduce_r_cox_zph(cohort):
    """Why the numpy version exists: no time transform of lifelines gives R >= 3.0's statistics."""
    from lifelines import CoxPHFitter
    from lifelines.statistics import proportional_hazard_test

    r = run_r(ZPH_R, d=cohort)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = CoxPHFitter().fit(cohort[["t", "e", "x1", "x2"]], "t", "e")
        for transform in ("km", "rank", "identity"):
            statistics = proportional_hazard_test(fitted, cohort[["t", "e", "x1", "x2"]],
                                                  time_transform=transform).summary["test_statistic"]
            assert statistics.to_numpy() != pytest.approx(r[2:4], rel=1e-3), transform


def test_cox_zph_flags_a_hazard_ratio_that_changes_over_time():
    """Known truth: x doubles the hazard in the first 6 months and halves it after."""
    rng = np.random.default_rng(5)
    n = 3000
    x = rng.integers(0, 2, n).astype(float)
    early = rng.exponential(np.where(x == 1, 5.0, 10.0))
    t = np.where(early < 6, early, 6 + rng.exponential(np.where(x == 1, 20.0, 10.0)))
    e = np.ones(n)
    beta = [cox(pd.DataFrame({"t": t, "e": e, "x": x}), "t", "e", ["x"], concordance=False)["terms"][0]["coef"]]
    assert cox_zph(t, e, x[:, None], beta, ["x"])["terms"][0]["p"] < 1e-6
    flat = rng.exponential(np.where(x == 1, 5.0, 10.0))
    beta = [cox(pd.DataFrame({"t": flat, "e": e, "x": x}), "t", "e", ["x"], concordance=False)["terms"][0]["coef"]]
    assert cox_zph(flat, e, x[:, None], beta, ["x"])["terms"][0]["p"] > 0.001


# --- competing risks ------------------------------------------------------------------------------

def test_aalen_johansen_matches_r_survfit_with_a_factor_status_including_ci(cohort):
    rng = np.random.default_rng(8)
    data = pd.DataFrame({"t": cohort["t"], "c": np.where(cohort["e"] == 1, rng.integers(1, 3, len(cohort)), 0)})
    result = aalen_johansen(data["t"], data["c"], [6, 12, 36])
    r = run_r("d <- read.csv(d_path); s <- summary(survfit(Surv(t, factor(c)) ~ 1, d), times=c(6, 12, 36))\n"
              + r_vector("c(s$pstate[, 2:3], s$lower[, 2:3], s$upper[, 2:3])"), d=data)
    r = np.reshape(r, (3, 2, 3))  # (est | lower | upper, cause, time)
    for cause in (1, 2):
        for j in range(3):
            assert result["cif"][cause][j] == pytest.approx(list(r[:, cause - 1, j]), rel=1e-7)


def test_aalen_johansen_recovers_known_cumulative_incidence_of_competing_exponentials():
    rng = np.random.default_rng(1)
    n, recurrence_rate, death_rate = 20000, 0.04, 0.01
    t1, t2, censor = rng.exponential(1 / recurrence_rate, n), rng.exponential(1 / death_rate, n), rng.uniform(0, 120, n)
    time = np.minimum.reduce([t1, t2, censor])
    cause = np.select([time == t1, time == t2], [1, 2], 0)
    result = aalen_johansen(time, cause, [12, 36])
    total = recurrence_rate + death_rate
    for j, at in enumerate((12, 36)):
        truth = recurrence_rate / total * (1 - np.exp(-total * at))
        est, low, high = result["cif"][1][j]
        assert low < truth < high and est == pytest.approx(truth, abs=0.01)
    assert result["cif"][1][0][0] + result["cif"][2][0][0] < 1


# --- centres --------------------------------------------------------------------------------------

def test_centre_stratified_and_cluster_robust_cox_match_r(cohort):
    """On whole-month times with ties, and untied: R's Efron score residuals split a tied death set
    (lifelines' do not, and are a few % off R's sandwich with ties)."""
    untied = cohort.assign(t=cohort["t"] + np.random.default_rng(6).uniform(0, 0.5, len(cohort)))
    assert cohort["t"].duplicated().any()
    stratified = cox_by_centre(cohort, "t", "e", ["x1", "x2"], "centre", "stratified")
    tied = cox_by_centre(cohort, "t", "e", ["x1", "x2"], "centre", "robust")
    robust = cox_by_centre(untied, "t", "e", ["x1", "x2"], "centre", "robust")
    r = run_r("d <- read.csv(d_path); u <- read.csv(u_path)\n"
              "s <- coxph(Surv(t, e) ~ x1 + x2 + strata(centre), d)\n"
              "r <- coxph(Surv(t, e) ~ x1 + x2, u, cluster = centre)\n"
              "q <- coxph(Surv(t, e) ~ x1 + x2, d, cluster = centre)\n"
              + r_vector("c(coef(s), sqrt(diag(vcov(s))), coef(r), sqrt(diag(vcov(r))), coef(q), "
                         "sqrt(diag(vcov(q))))"), d=cohort, u=untied)
    assert [t["coef"] for t in stratified["terms"]] == pytest.approx(r[0:2], rel=1e-5)
    assert [t["se"] for t in stratified["terms"]] == pytest.approx(r[2:4], rel=1e-5)
    assert [t["coef"] for t in robust["terms"]] == pytest.approx(r[4:6], rel=1e-5)
    assert [t["se"] for t in robust["terms"]] == pytest.approx(r[6:8], rel=1e-5)
    assert [t["coef"] for t in tied["terms"]] == pytest.approx(r[8:10], rel=1e-5)
    assert [t["se"] for t in tied["terms"]] == pytest.approx(r[10:12], rel=1e-5)
    assert stratified["adjustment"] == "stratified" and robust["n"] == len(cohort)


def test_heterogeneity_is_cochrans_q_with_i_squared():
    coefs, ses = [0.1, 0.5, 0.9], [0.2, 0.25, 0.3]
    w = 1 / np.square(ses)
    pooled = (w * coefs).sum() / w.sum()
    q = (w * (np.array(coefs) - pooled) ** 2).sum()
    result = heterogeneity(coefs, ses)
    assert result["q"] == pytest.approx(q) and result["df"] == 2
    assert result["i2"] == pytest.approx(max(0, (q - 2) / q))
    assert heterogeneity([0.2, 0.2], [0.1, 0.1])["i2"] == 0.0
    assert heterogeneity([0.2, float("nan")], [0.1, 0.1])["q"] is None  # one estimable centre: no test


def test_report_sections_are_strict_json(cohort):
    data = cohort.rename(columns={"t": "dfs_months", "e": "dfs_event"}).assign(
        os_months=cohort["t"], os_event=cohort["e"], peri_pm_systemic=cohort["x1"], size_gt_2cm=cohort["x1"],
        multiple_lesions=0.0, tfi_gt_12m=cohort["x1"], therapy_start_months=np.nan,
        recurrence_site=np.where(cohort["x2"] > 0, "lung", None))
    data["recurrence_site"] = data["recurrence_site"].where(data["dfs_event"] == 1, None)
    plan = AnalysisPlan(multivariable_covariates=["size_gt_2cm"])
    json.dump(sections.competing_risks(data, plan), io.StringIO(), allow_nan=False)
    json.dump(sections.centre_effects(data, plan.replace(centre_adjustment="robust")), io.StringIO(), allow_nan=False)
