"""analysis.stats.cox against R coxph, run live on generated data (tests/analysis/rlive.py):
Efron ties with many tied and zero durations, strata, aliased terms, and Firth's penalty under
separation. All R fits of this module run in one R session (R starts in about a second).
"""
import numpy as np
import pandas as pd
import pytest

from analysis.stats import cox
from analysis.stats.firth import firth_penalised
from tests.analysis.rlive import rscript

TOLERANCE = 1e-8


def cox_data(seed, n=300):
    """Binary x1, continuous x2, three strata with their own baseline; times rounded to half
    months (ties, zeros)."""
    rng = np.random.default_rng(seed)
    x1, x2, s = rng.integers(0, 2, n), rng.normal(size=n), rng.integers(0, 3, n)
    hazard = 0.05 * (1 + s) * np.exp(0.7 * x1 - 0.4 * x2)
    event_time, censor_time = rng.exponential(1 / hazard), rng.uniform(0, 30, n)
    t = np.round(2 * np.minimum(event_time, censor_time)) / 2
    return pd.DataFrame({"t": t, "e": (event_time <= censor_time).astype(int), "x1": x1, "x2": x2, "s": s})


def separated_data(seed, n=60):
    """x1 = 1 for every event (monotone likelihood in x1), x2 informative but not separating."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.integers(0, 2, n), rng.normal(size=n)
    t = np.round(rng.exponential(10 * np.exp(-0.5 * x2)), 1)
    e = (x1 == 1) & (rng.uniform(size=n) < 0.7)
    return pd.DataFrame({"t": t, "e": e.astype(int), "x1": x1, "x2": x2})


MAIN = cox_data(1)
DATA = {
    "plain": MAIN,
    "strat": MAIN,
    "alias": MAIN.assign(x3=MAIN["x1"] + 2 * MAIN["x2"]),
    "within": MAIN.assign(x3=(MAIN["s"] == 2).astype(int)),  # constant within each stratum
    "sep1": separated_data(2),
    "sep2": separated_data(3),
}

COXPH_R = """
summarise <- function(fit) {
  list(coef = I(unname(coef(fit))), se = I(unname(sqrt(diag(vcov(fit))))),
       loglik = I(fit$loglik), score = fit$score, wald = unname(fit$wald.test),
       n = fit$n, events = fit$nevent)
}
# Firth: maximise the penalised partial likelihood l(b) + log|I(b)| / 2, with l and I from
# coxph at fixed b (iter.max = 0), by optim: an implementation independent of ours.
penalised <- function(formula, d) {
  k <- length(attr(terms(formula), "term.labels"))
  pl <- function(b) {
    fit <- suppressWarnings(coxph(formula, data = d, init = b, control = coxph.control(iter.max = 0)))
    fit$loglik[2] + 0.5 * log(det(solve(fit$var)))
  }
  best <- optim(rep(0, k), function(b) -pl(b), method = "BFGS",
                control = list(reltol = 1e-15, maxit = 1000, ndeps = rep(1e-6, k)))
  at_best <- suppressWarnings(coxph(formula, data = d, init = best$par, control = coxph.control(iter.max = 0)))
  # Profile penalised likelihood of each coefficient: the others maximised, the 95% bounds where
  # it falls chi2_1(0.95) / 2 below the maximum, and the penalised LR test of 0.
  top <- -best$value
  profile <- function(j, v) {
    if (k == 1) return(pl(v))
    f <- function(o) { b <- numeric(k); b[j] <- v; b[-j] <- o; -pl(b) }
    o <- optimize(f, interval = best$par[-j] + c(-10, 10), tol = 1e-10)  # k == 2 here
    -o$objective
  }
  lower <- upper <- p <- numeric(k)
  for (j in 1:k) {
    g <- function(v) profile(j, v) - (top - qchisq(0.95, 1) / 2)
    lower[j] <- uniroot(g, best$par[j] + c(-15, 0), tol = 1e-10)$root
    upper[j] <- uniroot(g, best$par[j] + c(0, 15), tol = 1e-10)$root
    p[j] <- pchisq(2 * (top - profile(j, 0)), 1, lower.tail = FALSE)
  }
  list(coef = I(best$par), value = top, se = I(sqrt(diag(at_best$var))),
       lower = I(exp(lower)), upper = I(exp(upper)), p = I(p))
}
ordinary_sep <- suppressWarnings(coxph(Surv(t, e) ~ x1 + x2, data = sep1))
result <- list(
  plain = summarise(coxph(Surv(t, e) ~ x1 + x2, data = plain, ties = "efron")),
  strat = summarise(coxph(Surv(t, e) ~ x1 + x2 + strata(s), data = strat)),
  alias = summarise(coxph(Surv(t, e) ~ x1 + x2 + x3, data = alias)),
  alias_na = I(is.na(coef(coxph(Surv(t, e) ~ x1 + x2 + x3, data = alias)))),
  within = summarise(coxph(Surv(t, e) ~ x1 + x3 + strata(s), data = within)),
  within_na = I(is.na(coef(coxph(Surv(t, e) ~ x1 + x3 + strata(s), data = within)))),
  ordinary_sep_coef = unname(coef(ordinary_sep))[1],
  sep1 = penalised(Surv(t, e) ~ x1 + x2, sep1),
  sep2 = penalised(Surv(t, e) ~ x1, sep2)
)
"""


@pytest.fixture(scope="module")
def r():
    return rscript(COXPH_R, **DATA)


def assert_matches_r(fit, r_fit, names):
    assert fit["estimable"] and fit["method"] == "efron"
    assert (fit["n"], fit["events"]) == (r_fit["n"], r_fit["events"])
    terms = {t["term"]: t for t in fit["terms"]}
    estimated = [c is not None for c in r_fit["coef"]]  # R: NA for an aliased term (and se 0)
    coefs = [c for c, keep in zip(r_fit["coef"], estimated) if keep]
    ses = [s for s, keep in zip(r_fit["se"], estimated) if keep]
    assert [terms[n]["coef"] for n in names] == pytest.approx(coefs, abs=TOLERANCE)
    assert [terms[n]["se"] for n in names] == pytest.approx(ses, abs=TOLERANCE)
    assert fit["loglik"] == pytest.approx(r_fit["loglik"], abs=TOLERANCE * 100)
    assert fit["lr_test"]["statistic"] == pytest.approx(2 * (r_fit["loglik"][1] - r_fit["loglik"][0]), abs=1e-7)
    assert fit["score_test"]["statistic"] == pytest.approx(r_fit["score"], abs=1e-7)
    assert fit["wald_test"]["statistic"] == pytest.approx(r_fit["wald"], abs=1e-7)


def test_efron_cox_matches_r_coxph_on_tied_and_zero_durations(r):
    frame = DATA["plain"]
    assert (frame["t"] == 0).any() and frame.loc[frame["e"] == 1, "t"].duplicated().sum() > 20
    assert_matches_r(cox(frame, "t", "e", ["x1", "x2"]), r["plain"], ["x1", "x2"])


def test_stratified_cox_matches_r_coxph_with_strata(r):
    fit = cox(DATA["strat"], "t", "e", ["x1", "x2"], strata=["s"])
    assert_matches_r(fit, r["strat"], ["x1", "x2"])
    assert fit["concordance"] is None
    unstratified = cox(DATA["strat"], "t", "e", ["x1", "x2"])
    assert unstratified["terms"][0]["coef"] != pytest.approx(fit["terms"][0]["coef"], abs=1e-3)


def test_a_collinear_term_is_dropped_where_r_reports_na_and_the_rest_matches_r(r):
    fit = cox(DATA["alias"], "t", "e", ["x1", "x2", "x3"])
    assert [t.get("dropped") is not None for t in fit["terms"]] == r["alias_na"]
    assert_matches_r(fit, r["alias"], ["x1", "x2"])


def test_a_term_constant_within_every_stratum_is_dropped_as_r_does(r):
    fit = cox(DATA["within"], "t", "e", ["x1", "x3"], strata=["s"])
    assert [t.get("dropped") is not None for t in fit["terms"]] == r["within_na"]
    assert "within strata" in fit["terms"][1]["dropped"]
    assert_matches_r(fit, r["within"], ["x1"])


@pytest.mark.parametrize("name, covariates", [("sep1", ["x1", "x2"]), ("sep2", ["x1"])])
def test_firth_estimate_under_separation_is_rs_maximum_of_the_penalised_likelihood(name, covariates, r):
    frame = DATA[name]
    fit = cox(frame, "t", "e", covariates)
    assert fit["method"] == "firth" and fit["separation"] is True
    coefs = [t["coef"] for t in fit["terms"]]
    # optim (BFGS, numerical gradients) stops within ~1e-8 of the maximum; ours is at least as high.
    assert coefs == pytest.approx(r[name]["coef"], abs=1e-6)
    # Wald se from the information at the penalised estimate (R: coxph's variance there).
    assert [t["se"] for t in fit["terms"]] == pytest.approx(r[name]["se"], abs=1e-6)
    # The separated x1: CI and p from the profile penalised likelihood (Heinze & Schemper), as R
    # finds them. x2 (finite in the ordinary fit): Wald, close to its profile interval.
    x1 = fit["terms"][0]
    assert x1["interval"] == "profile penalised likelihood"
    assert [x1["ci95"][0], x1["ci95"][1], x1["p"]] == pytest.approx(
        [r[name]["lower"][0], r[name]["upper"][0], r[name]["p"][0]], rel=1e-5)
    for term, low, high in zip(fit["terms"][1:], r[name]["lower"][1:], r[name]["upper"][1:]):
        assert term["interval"] == "Wald"
        assert term["ci95"] == pytest.approx([low, high], rel=0.05)
    from analysis.stats.cox import _blocks, _likelihood
    x = frame[covariates].to_numpy(float)
    terms = _likelihood(_blocks(frame["t"].to_numpy(float), frame["e"].to_numpy(float), x))
    assert firth_penalised(terms, np.array(coefs)) == pytest.approx(r[name]["value"], abs=1e-6)
    assert firth_penalised(terms, np.array(coefs)) >= r[name]["value"] - 1e-9


def test_r_coxph_itself_runs_off_on_the_separated_data(r):
    # The case Firth is for: R's ordinary estimate is a huge coefficient with a warning.
    assert abs(r["ordinary_sep_coef"]) > 10
