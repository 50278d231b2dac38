"""The log-rank test across two or more groups (= R survdiff), computed directly with numpy."""
import numpy as np
import pandas as pd
from scipy import stats

from analysis.stats.common import _durations_events, _native, _not_estimable, _num, _numeric


def logrank(durations, events, groups):
    """Log-rank test of equal survival across two or more groups (= R survdiff).

    Observed and expected events per group: expected sums d_t * n_gt / n_t over event times.
    Rows with a missing group are dropped; empty groups are ignored. A group with nobody at risk
    at any event time adds nothing to the test: the statistic uses the generalised inverse of the
    covariance and df = its rank, as R survdiff (which drops groups with expected 0).
    """
    frame = pd.DataFrame({"t": _numeric(durations), "e": _numeric(events),
                          "g": np.asarray(groups, dtype=object)}).dropna()
    t, e, problem = _durations_events(frame["t"], frame["e"])
    if problem:
        return _not_estimable(problem)
    frame = pd.DataFrame({"t": t, "e": e, "g": frame["g"].to_numpy()})
    labels = sorted(frame["g"].unique(), key=lambda x: (str(type(x)), x))
    if len(labels) < 2:
        return _not_estimable("fewer than 2 non-empty groups")
    if frame["e"].sum() == 0:
        return _not_estimable("no events")

    # Vectorised over event times: at-risk counts per group by binary search on sorted times.
    t_all, e_all = frame["t"].to_numpy(float), frame["e"].to_numpy(float)
    event_times, deaths = np.unique(t_all[e_all == 1], return_counts=True)
    members = [(frame["g"] == label).to_numpy() for label in labels]
    at_risk = np.array([np.sort(t_all[m]).size - np.searchsorted(np.sort(t_all[m]), event_times, side="left")
                        for m in members], dtype=float)                          # groups x event times
    total = at_risk.sum(axis=0)
    share = at_risk / total
    observed = np.array([e_all[m].sum() for m in members])
    expected = (deaths * share).sum(axis=1)
    # Hypergeometric covariance of the observed counts (R survdiff), summed over event times.
    spread = deaths * (total - deaths) / np.where(total > 1, total - 1, 1)
    covariance = (np.diag((spread * share).sum(axis=1)) - (spread * share) @ share.T)
    chi2, df = _quadratic_form(observed - expected, covariance)
    if df == 0:
        return _not_estimable("only one group has patients at risk at the event times")
    rows = [{"group": _native(label), "n": int(m.sum()), "observed": int(o), "expected": _num(x)}
            for label, m, o, x in zip(labels, members, observed, expected)]
    return {"estimable": True, "reason": None, "chi2": _num(chi2), "df": df,
            "p": _num(stats.chi2.sf(chi2, df)), "groups": rows}


def _quadratic_form(difference, covariance):
    """(O - E)' V^+ (O - E) and the rank of V.

    V is singular by construction (its rows sum to 0), and more so when a group has nobody at
    risk at any event time (a zero row and column). The Moore-Penrose inverse gives the same
    statistic as inverting V without the redundant and empty groups, wherever they sort, and
    its rank is the test's degrees of freedom.
    """
    scale = np.abs(covariance).max()
    if not scale > 0:
        return 0.0, 0
    tolerance = scale * covariance.shape[0] * 1e-10
    chi2 = float(difference @ np.linalg.pinv(covariance, rcond=tolerance / scale, hermitian=True) @ difference)
    return chi2, int(np.linalg.matrix_rank(covariance, tol=tolerance, hermitian=True))
