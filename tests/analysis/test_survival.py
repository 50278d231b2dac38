"""analysis.stats against R `survival` reference values (shared/spec/reference-values.md).

Tolerances follow the digits R prints: a value printed to k significant digits is checked to half
a unit of its last printed digit (or a little looser where noted). Pure: no database.
"""

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

from analysis.stats import cox, kaplan_meier, logrank, reverse_km_median

REFERENCE = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "reference"


@pytest.fixture(scope="module")
def lung():
    """R survival's lung, as R writes it (fixtures/reference/README.md)."""
    frame = pd.read_csv(REFERENCE / "lung.csv")
    assert set(frame["status"].unique()) == {1, 2}
    frame["status"] = frame["status"] - 1  # R: 2 = dead, 1 = censored
    return frame


@pytest.fixture(scope="module")
def rossi():
    return pd.read_csv(REFERENCE / "rossi.csv")


def assert_json_clean(result):
    json.dumps(result, allow_nan=False)


# --- Kaplan-Meier -----------------------------------------------------------------------------

def test_km_lung_reproduces_r_median_and_log_ci(lung):
    km = kaplan_meier(lung["time"], lung["status"], ci_transform="log")
    assert km["estimable"] and km["reason"] is None
    assert (km["n"], km["events"]) == (228, 165)
    assert km["median"] == 310  # exact: a time point
    assert km["median_ci95"] == [285, 363]  # R default conf.type="log"


def test_km_lung_reproduces_r_median_ci_under_log_log_transform(lung):
    km = kaplan_meier(lung["time"], lung["status"])  # default: log(-log)
    assert km["ci_transform"] == "log-log"
    assert km["median"] == 310
    assert km["median_ci95"] == [284, 361]  # R conf.type="log-log"


def test_km_lung_survival_at_one_year_matches_r_summary_with_log_ci(lung):
    km = kaplan_meier(lung["time"], lung["status"], times=[365], ci_transform="log")
    (at,) = km["at"]
    assert at["survival"] == pytest.approx(0.409, abs=5e-4)
    assert at["std_err"] == pytest.approx(0.0358, abs=5e-5)
    assert at["ci_lower"] == pytest.approx(0.345, abs=5e-4)
    assert at["ci_upper"] == pytest.approx(0.486, abs=5e-4)
    assert at["at_risk"] == 65


def test_km_lung_by_sex_reproduces_r_medians_and_log_cis(lung):
    expected = {1: (138, 112, 270, [212, 310]), 2: (90, 53, 426, [348, 550])}
    for sex, (n, events, median, ci) in expected.items():
        rows = lung[lung["sex"] == sex]
        km = kaplan_meier(rows["time"], rows["status"], ci_transform="log")
        assert (km["n"], km["events"], km["median"], km["median_ci95"]) == (n, events, median, ci)


def test_km_table_starts_at_time_zero_and_accounts_for_every_patient(lung):
    km = kaplan_meier(lung["time"], lung["status"])
    first = km["table"][0]
    assert (first["time"], first["at_risk"], first["survival"]) == (0, 228, 1.0)
    assert sum(r["events"] for r in km["table"]) == 165
    assert sum(r["events"] + r["censored"] for r in km["table"]) == 228
    assert_json_clean(km)


def test_km_survival_beyond_last_follow_up_is_not_estimable(lung):
    km = kaplan_meier(lung["time"], lung["status"], times=[0, 5000])
    assert km["at"][0]["survival"] == 1.0
    beyond = km["at"][1]
    assert beyond["survival"] is None and beyond["ci_lower"] is None and beyond["ci_upper"] is None


def test_km_of_no_patients_is_not_estimable():
    km = kaplan_meier([], [])
    assert km["estimable"] is False and "n = 0" in km["reason"]
    assert_json_clean(km)


def test_km_of_one_patient_is_estimable_and_json_clean():
    km = kaplan_meier([5.0], [1], times=[1, 5])
    assert km["estimable"] and km["median"] == 5
    assert [a["survival"] for a in km["at"]] == [1.0, 0.0]
    assert_json_clean(km)


def test_km_without_events_is_estimable_with_median_not_reached():
    km = kaplan_meier([1, 2, 3, 4], [0, 0, 0, 0], times=[2])
    assert km["estimable"] and km["events"] == 0
    assert km["median"] is None and km["median_ci95"] == [None, None]
    assert all(r["survival"] == 1.0 for r in km["table"])
    assert_json_clean(km)


def test_km_rejects_event_codes_other_than_zero_and_one():
    km = kaplan_meier([1, 2], [1, 2])  # R's lung coding
    assert km["estimable"] is False and "0" in km["reason"]


def test_reverse_km_median_follow_up_is_the_km_median_of_the_censoring_times():
    # By hand: censoring (the reverse event) at 2, 4, 5, 6; the deaths at 1 and 3 censor it.
    # Reverse S: at 2, 4 of 5 at risk remain (0.8); at 4, 0.8 * 2/3 = 0.533; at 5, 0.267:
    # the median follow-up is 5, where the KM of the deaths never reaches 0.5.
    durations, events = [1, 2, 3, 4, 5, 6], [1, 0, 1, 0, 0, 0]
    result = reverse_km_median(durations, events)
    assert result["estimable"] and result["censored"] == 4
    assert result["median"] == 5
    assert kaplan_meier(durations, events)["median"] is None
    assert_json_clean(result)


# --- log-rank ---------------------------------------------------------------------------------

def test_logrank_by_sex_reproduces_r_survdiff(lung):
    result = logrank(lung["time"], lung["status"], lung["sex"])
    assert result["estimable"] and result["df"] == 1
    male, female = result["groups"]
    assert (male["group"], male["n"], male["observed"]) == (1, 138, 112)
    assert (female["group"], female["n"], female["observed"]) == (2, 90, 53)
    assert male["expected"] == pytest.approx(91.5817, abs=5e-5)
    assert female["expected"] == pytest.approx(73.4183, abs=5e-5)
    assert result["chi2"] == pytest.approx(10.3267, abs=5e-5)
    assert result["p"] == pytest.approx(0.00131116, abs=5e-9)
    assert_json_clean(result)


def test_logrank_with_one_group_empty_is_not_estimable():
    groups = pd.Categorical(["a"] * 4, categories=["a", "b"])
    result = logrank([1, 2, 3, 4], [1, 0, 1, 1], groups)
    assert result["estimable"] is False and "2 non-empty groups" in result["reason"]


def test_logrank_without_events_is_not_estimable():
    result = logrank([1, 2, 3, 4], [0, 0, 0, 0], ["a", "a", "b", "b"])
    assert result["estimable"] is False and result["reason"] == "no events"


def test_logrank_of_no_patients_is_not_estimable():
    assert logrank([], [], [])["estimable"] is False


# --- Cox --------------------------------------------------------------------------------------

def test_cox_sex_reproduces_r_coefficient_and_tests(lung):
    fit = cox(lung, "time", "status", ["sex"])
    assert fit["estimable"] and (fit["n"], fit["events"]) == (228, 165)
    (sex,) = fit["terms"]
    assert sex["coef"] == pytest.approx(-0.5310235, abs=5e-8)
    assert sex["hr"] == pytest.approx(0.5880, abs=5e-5)
    assert sex["se"] == pytest.approx(0.1672, abs=5e-5)
    assert sex["z"] == pytest.approx(-3.176, abs=5e-4)
    assert sex["p"] == pytest.approx(0.00149, abs=5e-6)
    assert sex["ci95"][0] == pytest.approx(0.4237, abs=5e-5)
    assert sex["ci95"][1] == pytest.approx(0.816, abs=5e-4)
    assert fit["lr_test"]["statistic"] == pytest.approx(10.63, abs=5e-3)
    assert fit["wald_test"]["statistic"] == pytest.approx(10.09, abs=5e-3)
    assert fit["score_test"]["statistic"] == pytest.approx(10.33, abs=5e-3)
    assert fit["concordance"] == pytest.approx(0.579, abs=5e-4)
    assert_json_clean(fit)


def test_cox_age_sex_ecog_reproduces_r_on_complete_cases(lung):
    fit = cox(lung, "time", "status", ["age", "sex", "ph.ecog"])
    assert (fit["n"], fit["events"]) == (227, 164)  # one row missing ph.ecog dropped
    terms = {t["term"]: t for t in fit["terms"]}
    r = {  # coef, se, p (and half a unit of its last printed digit), HR CI lower, HR CI upper
        "age": (0.01106676, 0.009267, (0.232416, 5e-7), 0.9929, 1.0297),
        "sex": (-0.55261240, 0.167739, (0.000986, 5e-7), 0.4142, 0.7994),
        "ph.ecog": (0.46372848, 0.113577, (4.45e-05, 5e-8), 1.2727, 1.9864),
    }
    for name, (coef, se, (p, p_tolerance), lo, hi) in r.items():
        term = terms[name]
        assert term["coef"] == pytest.approx(coef, abs=5e-8), name
        assert term["se"] == pytest.approx(se, abs=5e-7), name
        assert term["p"] == pytest.approx(p, abs=p_tolerance), name
        assert term["ci95"][0] == pytest.approx(lo, abs=5e-5), name
        assert term["ci95"][1] == pytest.approx(hi, abs=5e-5), name
    assert fit["lr_test"]["statistic"] == pytest.approx(30.5, abs=5e-2)
    assert fit["lr_test"]["df"] == 3
    assert fit["wald_test"]["statistic"] == pytest.approx(29.93, abs=5e-3)
    assert fit["score_test"]["statistic"] == pytest.approx(30.5, abs=5e-2)
    assert fit["concordance"] == pytest.approx(0.637, abs=5e-4)


def test_cox_rossi_reproduces_r_terms_and_global_tests(rossi):
    covariates = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
    fit = cox(rossi, "week", "arrest", covariates)
    assert (fit["n"], fit["events"]) == (432, 114)
    r = {  # coef, se, p
        "fin": (-0.3794222, 0.19138, 0.04742),
        "age": (-0.0574377, 0.02200, 0.00903),
        "race": (0.3138998, 0.30799, 0.30812),
        "wexp": (-0.1497957, 0.21222, 0.48029),
        "mar": (-0.4337039, 0.38187, 0.25606),
        "paro": (-0.0848711, 0.19576, 0.66461),
        "prio": (0.0914971, 0.02865, 0.00140),
    }
    terms = {t["term"]: t for t in fit["terms"]}
    assert list(terms) == covariates
    for name, (coef, se, p) in r.items():
        assert terms[name]["coef"] == pytest.approx(coef, abs=5e-8), name
        assert terms[name]["se"] == pytest.approx(se, abs=5e-6), name
        assert terms[name]["p"] == pytest.approx(p, abs=5e-6), name
    assert fit["lr_test"]["statistic"] == pytest.approx(33.27, abs=5e-3)
    assert fit["lr_test"]["df"] == 7
    assert fit["lr_test"]["p"] == pytest.approx(2.362e-05, abs=5e-9)
    assert fit["wald_test"]["statistic"] == pytest.approx(32.11, abs=5e-3)
    assert fit["score_test"]["statistic"] == pytest.approx(33.53, abs=5e-3)
    assert fit["concordance"] == pytest.approx(0.64, abs=5e-3)
    assert_json_clean(fit)


def test_cox_of_no_patients_is_not_estimable():
    frame = pd.DataFrame({"t": [], "e": [], "x": []}, dtype=float)
    fit = cox(frame, "t", "e", ["x"])
    assert fit["estimable"] is False and fit["n"] == 0
    assert_json_clean(fit)


def test_cox_of_one_patient_is_not_estimable():
    fit = cox(pd.DataFrame({"t": [3.0], "e": [1], "x": [1]}), "t", "e", ["x"])
    assert fit["estimable"] is False and "n = 1" in fit["reason"]


def test_cox_without_events_is_not_estimable():
    frame = pd.DataFrame({"t": [1, 2, 3, 4], "e": [0, 0, 0, 0], "x": [0, 1, 0, 1]})
    fit = cox(frame, "t", "e", ["x"])
    assert fit["estimable"] is False and fit["reason"] == "no events"


def test_cox_drops_a_covariate_constant_among_complete_cases_and_fits_the_rest():
    # x varies only in the row that is dropped for a missing y.
    frame = pd.DataFrame({"t": [1, 2, 3, 4, 5, 6], "e": [1, 0, 1, 1, 0, 1],
                          "x": [1, 1, 1, 1, 0, 1], "y": [0.1, 0.5, 0.2, 0.9, np.nan, 0.4]})
    fit = cox(frame, "t", "e", ["x", "y"])
    assert fit["estimable"] and fit["n"] == 5 and fit["method"] == "efron"
    x, y = fit["terms"]
    assert x["hr"] is None and "no variation" in x["dropped"]
    assert y["hr"] is not None and "dropped" not in y
    assert fit["dropped"] == [{"term": "x", "reason": x["dropped"]}]
    assert fit["lr_test"]["df"] == 1
    assert_json_clean(fit)


def test_cox_with_only_a_constant_covariate_is_not_estimable():
    frame = pd.DataFrame({"t": [1, 2, 3, 4], "e": [1, 0, 1, 1], "x": [1, 1, 1, 1]})
    fit = cox(frame, "t", "e", ["x"])
    assert fit["estimable"] is False and "no variation" in fit["reason"]


def test_cox_drops_a_collinear_term_without_calling_it_separation(rossi):
    frame = rossi.assign(fin_plus_race=rossi["fin"] + rossi["race"])
    fit = cox(frame, "week", "arrest", ["fin", "race", "fin_plus_race"])
    assert fit["estimable"] and fit["method"] == "efron" and fit["separation"] is False
    assert [d["term"] for d in fit["dropped"]] == ["fin_plus_race"]
    assert "collinear" in fit["dropped"][0]["reason"] and "fin, race" in fit["dropped"][0]["reason"]
    alone = cox(rossi, "week", "arrest", ["fin", "race"])
    assert [t["coef"] for t in fit["terms"][:2]] == pytest.approx([t["coef"] for t in alone["terms"]], abs=1e-12)


def test_cox_under_perfect_separation_reports_a_finite_firth_estimate():
    rng = np.random.default_rng(1)
    x = np.repeat([1, 0], 20)
    frame = pd.DataFrame({"t": rng.uniform(1, 50, 40), "e": x, "x": x})  # events only if x=1
    fit = cox(frame, "t", "e", ["x"])
    assert fit["estimable"] and fit["method"] == "firth" and fit["separation"] is True
    (term,) = fit["terms"]
    assert 1 < term["hr"] < 1e4 and term["ci95"][0] > 1
    assert_json_clean(fit)


def test_cox_with_one_group_without_events_gets_firths_estimate_not_infinity():
    # Monotone likelihood: every event has x = 1, so the ordinary HR for x runs off to infinity.
    frame = pd.DataFrame({"t": [1, 2, 3, 4, 5, 6, 7, 8],
                          "e": [1, 1, 1, 0, 0, 0, 0, 0],
                          "x": [1, 1, 1, 1, 0, 0, 0, 0]})
    fit = cox(frame, "t", "e", ["x"])
    assert fit["estimable"] and fit["method"] == "firth"
    assert np.isfinite(fit["terms"][0]["coef"]) and fit["terms"][0]["coef"] > 1


def test_cox_on_a_synthetic_cohort_recovers_the_true_hazard_ratio():
    # Exponential times, true HR 2 for x = 1, independent uniform censoring.
    rng = np.random.default_rng(7)
    n = 2000
    x = rng.integers(0, 2, n)
    event_time = rng.exponential(1 / np.where(x == 1, 2.0, 1.0))
    censor_time = rng.uniform(0, 3, n)
    frame = pd.DataFrame({"t": np.minimum(event_time, censor_time),
                          "e": (event_time <= censor_time).astype(int), "x": x})
    fit = cox(frame, "t", "e", ["x"])
    (term,) = fit["terms"]
    assert term["ci95"][0] < 2.0 < term["ci95"][1]
    assert term["hr"] == pytest.approx(2.0, rel=0.1)
