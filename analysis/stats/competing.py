"""Cumulative incidence with competing risks: the Aalen-Johansen estimator (= R
``survfit(Surv(time, factor(status)) ~ 1)``), standard errors by the infinitesimal jackknife as
R survival >= 3.0 computes them for multi-state curves, 95% CI on the log scale as R prints them
(conf.type = "log", upper bound capped at 1).

Not lifelines' AalenJohansenFitter: it breaks tied event times by random jitter (so estimates
change from run to run and differ from R's on a registry where times are whole days), and its
variance is the delta-method one, not R's.
"""
import numpy as np

from analysis.stats.common import _num, _z


def aalen_johansen(times, causes, at_times, *, alpha=0.05):
    """Cumulative incidence of every cause at ``at_times``.

    ``causes``: 0 = censored, 1, 2, ... = the cause of the event. Returns {"n", "events":
    {cause: count}, "cif": {cause: [[est, lo, hi] per time]}, "curve": {"time": [...], cause:
    [...]}} (the curves where they step); beyond the last observed time
    an estimate is null (R extends the curve; the report does not extrapolate).
    """
    t = np.asarray(times, dtype=float)
    c = np.asarray(causes, dtype=int)
    kinds = sorted(int(k) for k in np.unique(c[c > 0]))
    result = {"n": int(len(t)), "events": {k: int((c == k).sum()) for k in kinds}, "cif": {},
              "curve": {"time": []}}
    if len(t) == 0:
        return result
    unique, inverse = np.unique(t, return_inverse=True)
    leaving = np.bincount(inverse, minlength=unique.size)
    at_risk = len(t) - np.concatenate([[0], np.cumsum(leaving)[:-1]]).astype(float)
    deaths = np.bincount(inverse, weights=(c > 0).astype(float), minlength=unique.size)
    survival = np.cumprod(1 - deaths / at_risk)
    before = np.concatenate([[1.0], survival[:-1]])  # S(s-)
    with np.errstate(divide="ignore", invalid="ignore"):
        # B(s): the at-risk part of d log S / d w_i (see _influence); 0 where everybody left
        b_step = np.where(at_risk > deaths, deaths / (at_risk * (at_risk - deaths)), 0.0)
        jump = np.where(at_risk > deaths, 1 / (at_risk - deaths), 0.0)
    b_cum = np.cumsum(b_step)
    b_before = np.concatenate([[0.0], b_cum[:-1]])
    z = _z(alpha)
    for k in kinds:
        d_k = np.bincount(inverse, weights=(c == k).astype(float), minlength=unique.size)
        hazard = d_k / at_risk
        cif = np.cumsum(before * hazard)
        result["curve"][k] = cif
        c1 = np.cumsum(before * hazard * b_before)
        c2 = np.cumsum(before * d_k / at_risk ** 2)
        rows = []
        for when in at_times:
            if when > unique[-1]:
                rows.append([None, None, None])
                continue
            j = np.searchsorted(unique, when, side="right") - 1  # last time <= when
            if j < 0:
                rows.append([0.0, None, None])
                continue
            influence = _influence(inverse, c, k, j, cif, c1, c2, b_cum, jump, before, at_risk)
            estimate = cif[j]
            se = float(np.sqrt((influence ** 2).sum()))
            if estimate <= 0 or se == 0:
                rows.append([_num(estimate), None, None])
                continue
            spread = z * se / estimate
            rows.append([_num(estimate), _num(estimate * np.exp(-spread)), _num(min(1.0, estimate * np.exp(spread)))])
        result["cif"][k] = rows
    result["curve"] = _steps(unique, result["curve"], kinds)
    return result


def _steps(times, curves, kinds):
    """The curves at the times where one of them moves (for drawing; plain lists)."""
    moves = np.zeros(len(times), dtype=bool)
    for k in kinds:
        moves |= np.diff(np.concatenate([[0.0], curves[k]])) != 0
    return {"time": times[moves].tolist(), **{k: curves[k][moves].tolist() for k in kinds}}


def _influence(inverse, c, k, j, cif, c1, c2, b_cum, jump, before, at_risk):
    """d CIF_k(t_j) / d w_i for every subject i (the infinitesimal jackknife).

    CIF_k(t) = sum_{s<=t} S(s-) dN_k(s)/Y(s). A subject at risk up to its time T_i changes Y(s)
    for s <= T_i, and its event changes dN(T_i): the sums over s split at min(t, T_i), so the
    whole vector is O(n) from cumulative sums over the event times.
    """
    own = np.minimum(inverse, j)  # last time at which subject i still counts, up to t_j
    had_event = c > 0
    # through S(s-): log S moves by B(min(s-, T_i)) - [event at T_i < s] / (Y - d)(T_i)
    through_survival = c1[own] + np.where(inverse < j, (b_cum[inverse] - had_event * jump[inverse])
                                          * (cif[j] - cif[inverse]), 0.0)
    # through the hazard dN_k/Y: its own event adds, being at risk dilutes
    through_hazard = np.where((c == k) & (inverse <= j), before[inverse] / at_risk[inverse], 0.0) - c2[own]
    return through_survival + through_hazard
