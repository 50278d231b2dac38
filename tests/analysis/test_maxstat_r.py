"""The cut-off search (analysis.stats.maxstat): every statistic against R survdiff looped over the
same cut-offs, the Lausen-Schumacher p against its formula evaluated in R, and the adjusted p
against the truth of cohorts simulated without any effect."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.stats.maxstat import _standardised_logrank, lausen_schumacher_p, max_logrank
from tests.analysis.rlive import rscript


def cohort(seed, n=250, effect=0.0):
    """A factor on a 0.5 grid (ties), some of it missing; hazard doubles above 20 by `effect`."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.uniform(0, 50, n) * 2) / 2
    event_time = rng.exponential(10 / np.exp(effect * (x > 20)))
    censor_time = rng.uniform(0, 30, n)
    x[rng.uniform(size=n) < 0.05] = np.nan
    return pd.DataFrame({"t": np.round(np.minimum(event_time, censor_time)),
                         "e": (event_time <= censor_time).astype(int), "x": x})


LOOP_R = """
d <- d[!is.na(d$x), ]
q <- quantile(d$x, c(0.1, 0.9))
cutoffs <- sort(unique(d$x[d$x >= q[1] & d$x <= q[2] & d$x < max(d$x)]))
stat <- sapply(cutoffs, function(c) sqrt(survdiff(Surv(t, e) ~ I(x > c), data = d)$chisq))
b <- max(stat)
result <- list(cutoffs = I(cutoffs), stat = I(stat), best = cutoffs[which.max(stat)], max = b,
               range = I(unname(q)), chosen = sqrt(survdiff(Surv(t, e) ~ I(x > 20), data = d)$chisq),
               p = 4 * dnorm(b) / b + dnorm(b) * (b - 1 / b) * log((0.9 * (1 - 0.1)) / ((1 - 0.9) * 0.1)))
"""


@pytest.mark.parametrize("seed, effect", [(1, 0.0), (2, 0.7)])
def test_every_cutoff_statistic_is_r_survdiffs_and_the_maximum_and_p_agree(seed, effect):
    frame = cohort(seed, effect=effect)
    r = rscript(LOOP_R, d=frame)
    ours = max_logrank(frame["t"], frame["e"], frame["x"], chosen=20)
    complete = frame.dropna()
    statistics = np.abs(_standardised_logrank(complete["t"].to_numpy(float), complete["e"].to_numpy(float),
                                              complete["x"].to_numpy(float), np.array(r["cutoffs"])))
    assert statistics == pytest.approx(r["stat"], abs=1e-9)
    assert ours["cutoffs_searched"] == len(r["cutoffs"]) and ours["search_range"] == pytest.approx(r["range"])
    assert ours["best_cutoff"] == r["best"]
    assert ours["max_stat"] == pytest.approx(r["max"], abs=1e-9)
    assert ours["p_adjusted"] == pytest.approx(min(1.0, r["p"]), abs=1e-12)
    assert ours["chosen_stat"] == pytest.approx(r["chosen"], abs=1e-9)
    assert ours["n"] == len(complete)


def test_lausen_schumacher_p_is_capped_at_one_and_falls_with_the_statistic():
    assert lausen_schumacher_p(0.5) == 1.0 and lausen_schumacher_p(0) == 1.0
    assert lausen_schumacher_p(3.0) > lausen_schumacher_p(3.5) > 0
    # Searching costs: the adjusted p of a statistic is several times its unadjusted p.
    assert lausen_schumacher_p(3.0) > 5 * 2 * stats.norm.sf(3.0)


def test_adjusted_p_holds_its_level_on_cohorts_without_any_effect_where_the_naive_p_does_not():
    # 400 null cohorts: the adjusted p is below 0.05 about 5 % of the time (Lausen-Schumacher is
    # slightly conservative); the unadjusted p of the best cut-off is far more often.
    adjusted, naive = [], []
    for seed in range(400):
        frame = cohort(1000 + seed, n=150)
        result = max_logrank(frame["t"], frame["e"], frame["x"])
        adjusted.append(result["p_adjusted"] < 0.05)
        naive.append(2 * stats.norm.sf(result["max_stat"]) < 0.05)
    assert stats.binomtest(sum(adjusted), len(adjusted), 0.05).pvalue > 0.001, np.mean(adjusted)
    assert np.mean(naive) > 0.2


def test_cutoff_search_without_events_or_without_a_split_is_not_estimable():
    assert max_logrank([1, 2, 3], [0, 0, 0], [1, 2, 3])["estimable"] is False
    assert max_logrank([1, 2, 3, 4], [1, 0, 1, 1], [5, 5, 5, 5])["estimable"] is False
