"""analysis.stats against R `survival`, run live on generated data (tests/analysis/rlive.py).

The saved reference values (test_survival.py) pin the published lung and rossi results; these
tests generate the awkward cases real registries produce -- tied times, zero durations, a group
with nobody at risk at the event times, 2 to 5 groups -- and ask R what it
makes of the same data. Estimates are compared to 1e-8 (R's output is read at full precision,
so this is far tighter than any digit R prints); undefined values must be null where R says NA.
Skipped without Rscript unless CI is set (then they fail).
"""
import numpy as np
import pandas as pd
import pytest

from analysis.stats import kaplan_meier, logrank, reverse_km_median
from tests.analysis.rlive import rscript

TOLERANCE = 1e-8


def generated(seed, n=120, groups=2, *, rate=0.05, follow_up=40):
    """Exponential times with a hazard rising by group, uniform censoring, rounded to whole
    months: many ties, and durations of 0 (events and censorings at the index date)."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    event_time = rng.exponential(1 / (rate * (1 + 0.5 * g)))
    censor_time = rng.uniform(0, follow_up, n)
    return pd.DataFrame({"t": np.round(np.minimum(event_time, censor_time)),
                         "e": (event_time <= censor_time).astype(int), "g": g})


def close(ours, theirs, tolerance=TOLERANCE):
    """Equal within ``tolerance``, with None (ours) matching null (R's NA) and nothing else."""
    if theirs is None or ours is None:
        return ours is None and theirs is None
    return abs(ours - theirs) <= tolerance * max(1.0, abs(theirs))


def assert_close(ours, theirs, label, tolerance=TOLERANCE):
    assert close(ours, theirs, tolerance), f"{label}: ours {ours}, R {theirs}"


# --- Kaplan-Meier -----------------------------------------------------------------------------
# R starts in about a second: every curve of this section is computed in one R run.

KM_DATA = {
    "seed1": generated(1), "seed2": generated(2), "seed3": generated(3),
    # 20 deaths at distinct times: S = 0.5 exactly between the 10th and 11th death.
    "half": pd.DataFrame({"t": np.arange(1.0, 21.0), "e": 1}),
    # everyone dies: S = 0 at the end; and an event-free stretch (S = 1) from time 0.
    "zero": pd.DataFrame({"t": [0.0, 2, 3, 3, 5, 8], "e": [0, 1, 1, 0, 1, 1]}),
    "six": pd.DataFrame({"t": [2.0, 4, 6, 8, 10, 12], "e": [1, 1, 1, 1, 1, 0]}),
    "follow4": generated(4, n=150), "follow5": generated(5, n=150),
}

KM_R = """
curve <- function(fit) {
  q <- quantile(fit, 0.5)
  list(time = I(fit$time), surv = I(fit$surv), std_err = I(fit$surv * fit$std.err),
       lower = I(fit$lower), upper = I(fit$upper),
       median = unname(q$quantile), median_lower = unname(q$lower), median_upper = unname(q$upper))
}
result <- list()
for (name in names) {
  d <- get(name)
  result[[name]] <- list(
    "log-log" = curve(survfit(Surv(t, e) ~ 1, data = d, conf.type = "log-log")),
    "log" = curve(survfit(Surv(t, e) ~ 1, data = d, conf.type = "log")),
    reverse = curve(survfit(Surv(t, 1 - e) ~ 1, data = d, conf.type = "log-log")),
    censored = sum(d$e == 0))
}
"""


@pytest.fixture(scope="module")
def r_km():
    names = ", ".join(f'"{name}"' for name in KM_DATA)
    return rscript(f"names <- c({names})\n" + KM_R, **KM_DATA)


def assert_km_matches_r(name, r_km, conf_type):
    frame, r = KM_DATA[name], r_km[name][conf_type]
    ours = kaplan_meier(frame["t"], frame["e"], ci_transform=conf_type)
    rows = {row["time"]: row for row in ours["table"]}
    for i, time in enumerate(r["time"]):
        row = rows[time]
        for key, r_key in (("survival", "surv"), ("std_err", "std_err"), ("ci_lower", "lower"),
                           ("ci_upper", "upper")):
            assert_close(row[key], r[r_key][i], f"{name} {conf_type} {key} at t={time}")
    assert_close(ours["median"], r["median"], f"{name} {conf_type} median")
    assert_close(ours["median_ci95"][0], r["median_lower"], f"{name} {conf_type} median lower")
    assert_close(ours["median_ci95"][1], r["median_upper"], f"{name} {conf_type} median upper")


@pytest.mark.parametrize("conf_type", ["log-log", "log"])
@pytest.mark.parametrize("name", ["seed1", "seed2", "seed3"])
def test_km_bands_and_medians_match_r_survfit_on_tied_data_with_zero_durations(name, conf_type, r_km):
    frame = KM_DATA[name]
    assert (frame["t"] == 0).any() and frame["t"].duplicated().any()
    assert_km_matches_r(name, r_km, conf_type)


@pytest.mark.parametrize("conf_type", ["log-log", "log"])
def test_km_where_survival_is_exactly_one_half_over_an_interval_takes_rs_midpoints(conf_type, r_km):
    frame = KM_DATA["half"]
    assert kaplan_meier(frame["t"], frame["e"])["median"] == 10.5
    assert_km_matches_r("half", r_km, conf_type)


@pytest.mark.parametrize("conf_type", ["log-log", "log"])
def test_km_bounds_where_survival_is_zero_or_one_are_null_as_in_r(conf_type, r_km):
    frame = KM_DATA["zero"]
    km = kaplan_meier(frame["t"], frame["e"], ci_transform=conf_type)
    last = km["table"][-1]
    assert last["survival"] == 0.0 and last["ci_lower"] is None and last["ci_upper"] is None
    first = km["table"][0]
    assert first["survival"] == 1.0
    if conf_type == "log-log":  # log(-log 1) does not exist; the log band is [1, 1] there
        assert first["ci_lower"] is None and first["ci_upper"] is None
    assert_km_matches_r("zero", r_km, conf_type)


def test_km_six_patients_five_deaths_give_rs_median_7_with_ci_2_to_na(r_km):
    frame = KM_DATA["six"]
    km = kaplan_meier(frame["t"], frame["e"])
    assert (km["median"], km["median_ci95"]) == (7.0, [2.0, None])
    assert_km_matches_r("six", r_km, "log-log")


@pytest.mark.parametrize("name", ["follow4", "follow5"])
def test_reverse_km_median_follow_up_matches_r_with_censoring_as_the_event(name, r_km):
    frame, r = KM_DATA[name], r_km[name]
    ours = reverse_km_median(frame["t"], frame["e"])
    assert ours["censored"] == r["censored"]
    assert_close(ours["median"], r["reverse"]["median"], "median follow-up")
    assert_close(ours["median_ci95"][0], r["reverse"]["median_lower"], "lower")
    assert_close(ours["median_ci95"][1], r["reverse"]["median_upper"], "upper")
    # Follow-up is not the survival median: flipping the events must change the answer here.
    assert ours["median"] != kaplan_meier(frame["t"], frame["e"])["median"]


# --- log-rank ---------------------------------------------------------------------------------

def _empty_group_frame(label):
    # The group `label` is censored before the first death: its row and column of the
    # covariance are zero. R drops it (df 1); a plain inverse fails unless it sorts last.
    return pd.DataFrame({"t": [5.0, 6, 7, 8, 9, 10, 11, 12, 1, 2],
                         "e": [1, 1, 0, 1, 0, 1, 1, 0, 0, 0],
                         "g": ["b", "b", "b", "b", "y", "y", "y", "y", label, label]})


LOGRANK_DATA = {
    **{f"groups{k}": generated(10 + k, n=200, groups=k) for k in (2, 3, 4, 5)},
    "four": generated(21, n=300, groups=4),
    **{f"empty_{label}": _empty_group_frame(label) for label in ("a", "m", "z")},
}

SURVDIFF_R = """
result <- list()
for (name in names) {
  d <- get(name)
  fit <- survdiff(Surv(t, e) ~ g, data = d)
  df <- sum(fit$exp > 0) - 1
  result[[name]] <- list(chisq = fit$chisq, df = df, p = pchisq(fit$chisq, df, lower.tail = FALSE),
                         observed = I(as.vector(fit$obs)), expected = I(as.vector(fit$exp)),
                         groups = I(as.character(sort(unique(d$g)))))
}
"""


@pytest.fixture(scope="module")
def r_survdiff():
    names = ", ".join(f'"{name}"' for name in LOGRANK_DATA)
    return rscript(f"names <- c({names})\n" + SURVDIFF_R, **LOGRANK_DATA)


def assert_logrank_matches_r(name, r_survdiff):
    frame, r = LOGRANK_DATA[name], r_survdiff[name]
    ours = logrank(frame["t"], frame["e"], frame["g"])
    assert ours["estimable"], ours["reason"]
    assert [str(row["group"]) for row in ours["groups"]] == r["groups"]
    assert ours["df"] == r["df"]
    assert_close(ours["chi2"], r["chisq"], "chisq")
    assert_close(ours["p"], r["p"], "p")
    for row, observed, expected in zip(ours["groups"], r["observed"], r["expected"]):
        assert row["observed"] == observed
        assert_close(row["expected"], expected, f"expected {row['group']}")
    return ours


@pytest.mark.parametrize("groups", [2, 3, 4, 5])
def test_logrank_matches_r_survdiff_for_two_to_five_groups_with_ties(groups, r_survdiff):
    result = assert_logrank_matches_r(f"groups{groups}", r_survdiff)
    assert result["df"] == groups - 1


def test_four_group_logrank_needs_the_full_covariance_matrix(r_survdiff):
    # With only the diagonal of the covariance the 4-group statistic is far off R's.
    result = assert_logrank_matches_r("four", r_survdiff)
    assert result["chi2"] > 5


@pytest.mark.parametrize("label", ["a", "m", "z"])
def test_logrank_with_a_group_nobody_at_risk_at_any_event_time_matches_r_wherever_it_sorts(label, r_survdiff):
    result = assert_logrank_matches_r(f"empty_{label}", r_survdiff)
    assert result["df"] == 1


def test_logrank_with_only_one_group_at_risk_at_the_event_times_is_not_estimable():
    frame = pd.DataFrame({"t": [5.0, 6, 7, 1, 2], "e": [1, 1, 0, 0, 0], "g": ["a", "a", "a", "b", "b"]})
    result = logrank(frame["t"], frame["e"], frame["g"])
    assert result["estimable"] is False and "one group" in result["reason"]
