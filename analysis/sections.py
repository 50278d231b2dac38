"""The report sections of endpoints.md v2 that go beyond the paper's tables: therapy effects
without immortal-time bias, centre effects, proportional-hazards tests and competing risks.

Each function takes the report's model data (analysis.report.model_data: one row per analysed
patient, float factors, NaN = missing) and the plan, and returns plain JSON-ready data; the
warnings each finds go through analysis.warnings.warn.
"""
import math

import numpy as np

from analysis import factors, stats
from analysis.plan import ENDPOINTS
from analysis.stats.centres import cox_by_centre, heterogeneity
from analysis.stats.competing import aalen_johansen
from analysis.stats.intervals import cox_intervals, cox_zph
from analysis.warnings import warn

THERAPY = "peri_pm_systemic"
PH_ALPHA = 0.05
RESIDUAL_POINTS = 400  # scaled Schoenfeld residuals kept per term for the plot
CIF_FACTORS = ("size_gt_2cm", "multiple_lesions", "tfi_gt_12m", "peri_pm_systemic")

METHODS = {
    "therapy_effects": (
        "peri-PM systemic therapy, three estimates: 'naive' = Cox with exposure known at the index date "
        "(immortal-time biased when adjuvant therapy starts after the index: the treated had to survive "
        "event-free until it started); 'landmark' = patients event-free and followed beyond landmark_months, "
        "exposure = therapy started by then, time from the landmark (Cox, analysis.stats.cox); "
        "'time_dependent' = Cox on (start, stop] intervals, exposure switching on at the therapy start "
        "(Efron ties, the registry's numpy fit analysis.stats.intervals, checked against R "
        "coxph(Surv(start, stop, event)) and lifelines CoxTimeVaryingFitter; patients with time 0 have no "
        "interval and are left out)"),
    "centre_effects": (
        "per-centre Cox HR of the plan's centre_factor (analysis.stats.cox), Cochran's Q and I² of the "
        "log HRs (inverse-variance weights); centre_adjustment 'stratified' = Cox stratified by centre, "
        "'robust' = the pooled Cox with the sandwich SE by centre from Efron score residuals "
        "(analysis.stats.cox; lifelines' robust SE treats tied deaths differently, a few % off R), both "
        "checked against R coxph with strata() and cluster(), with and without tied times"),
    "ph_tests": (
        "scaled Schoenfeld residual test per term and global as R survival >= 3.0 cox.zph(fit, "
        "transform='km') (score test for x * g(t), g = 1 - KM(t-) centred), numpy (analysis.stats.intervals): "
        "lifelines' proportional_hazard_test is the older approximation and does not reproduce R's values; "
        "histology dummies are tested one by one"),
    "competing_risks": (
        "cumulative incidence of recurrence with death without recurrence as competing event (Aalen-Johansen, "
        "numpy analysis.stats.competing = R survfit(Surv(t, factor(status)) ~ 1); SE by infinitesimal "
        "jackknife, 95% CI on the log scale as R; lifelines' AalenJohansenFitter jitters tied times); by "
        "site: lung vs elsewhere; cause-specific Cox for recurrence (death censors, analysis.stats.cox)"),
}


# --- therapy effects --------------------------------------------------------------------------

def therapy_effects(data, plan, report):
    """Naive, landmark and time-dependent HRs of peri-PM systemic therapy, per endpoint, in
    everyone and in the patients above the size cut-off."""
    rows = []
    populations = (("all", data), ("size_gt_cutoff", data[data["size_gt_2cm"] == 1.0]))
    for population, subset in populations:
        for endpoint in ENDPOINTS:
            complete = subset.dropna(subset=[f"{endpoint}_months", f"{endpoint}_event", THERAPY])
            t = complete[f"{endpoint}_months"].to_numpy(float)
            e = complete[f"{endpoint}_event"].to_numpy(float)
            start = complete["therapy_start_months"].to_numpy(float)
            base = {"endpoint": endpoint, "population": population}
            rows.append({**base, "method": "naive", **_effect(stats.cox(complete, f"{endpoint}_months",
                                                                        f"{endpoint}_event", [THERAPY],
                                                                        concordance=False)),
                         "biased": bool(np.nanmax(start, initial=-np.inf) > 0),
                         "note": "immortal-time biased: exposure that starts after the index is counted from it"})
            rows.append({**base, "method": "landmark", "landmark_months": plan.landmark_months,
                         **_landmark(t, e, start, plan.landmark_months)})
            rows.append({**base, "method": "time_dependent", **_time_dependent(t, e, start)})
    if any(r["method"] == "naive" and r["biased"] for r in rows):
        warn(report, "immortal_time_bias",
             "Peri-PM systemic therapy that starts after the index date makes the naive hazard ratio "
             "immortal-time biased; quote the time-dependent (or landmark) estimate.", model="therapy_effects")
    return rows


def _effect(fit, n=None):
    term = (fit.get("terms") or [{}])[0]
    return {"n": fit.get("n", n or 0) if n is None else n, "events": fit.get("events", 0), "hr": term.get("hr"),
            "ci95": term.get("ci95", [None, None]), "p": term.get("p"),
            "estimable": fit["estimable"], "reason": fit["reason"]}


def _landmark(t, e, start, landmark):
    """Cox from the landmark: those still event-free and followed beyond it; exposed = started by then."""
    keep = t > landmark
    exposed = (start[keep] <= landmark).astype(float)  # NaN (never started) compares False
    frame = {"t": t[keep] - landmark, "e": e[keep], "x": exposed}
    import pandas as pd

    return _effect(stats.cox(pd.DataFrame(frame), "t", "e", ["x"], concordance=False))


def counting_process(t, e, start):
    """(start, stop, event, exposed, patient) rows: exposure switches on at the therapy start
    (from time 0 when it started before the index). Patients with time 0 have no interval."""
    keep = t > 0
    t, e, start = t[keep], e[keep], start[keep]
    patient = np.flatnonzero(keep)
    switch = (start > 0) & (start < t)  # NaN compares False: never exposed
    always = start <= 0
    one = ~switch
    starts = np.concatenate([np.zeros(one.sum()), np.zeros(switch.sum()), start[switch]])
    stops = np.concatenate([t[one], start[switch], t[switch]])
    events = np.concatenate([e[one], np.zeros(switch.sum()), e[switch]])
    exposed = np.concatenate([always[one].astype(float), np.zeros(switch.sum()), np.ones(switch.sum())])
    ids = np.concatenate([patient[one], patient[switch], patient[switch]])
    return starts, stops, events, exposed, ids


def _time_dependent(t, e, start):
    starts, stops, events, exposed, ids = counting_process(t, e, start)
    fit = cox_intervals(starts, stops, events, exposed[:, None], [THERAPY])
    return _effect(fit, n=int(len(np.unique(ids))))


# --- centre effects -----------------------------------------------------------------------------

def centre_effects(data, plan):
    """Per-centre HRs of the plan's centre_factor with their heterogeneity; under a centre
    adjustment, the multivariable models adjusted for centre."""
    factor = plan.centre_factor
    rows, tests = [], []
    for endpoint in ENDPOINTS:
        coefs, ses = [], []
        for centre, subset in data.groupby("centre", sort=True):
            fit = stats.cox(subset, f"{endpoint}_months", f"{endpoint}_event", [factor], concordance=False)
            term = (fit.get("terms") or [{}])[0]
            rows.append({"endpoint": endpoint, "centre": centre, "factor": factor, "hr": term.get("hr"),
                         "ci95": term.get("ci95", [None, None]), "n": fit.get("n", 0), "events": fit.get("events", 0),
                         "estimable": fit["estimable"], "reason": fit["reason"]})
            coefs.append(term.get("coef", math.nan) if fit["estimable"] else math.nan)
            ses.append(term.get("se", math.nan) if fit["estimable"] else math.nan)
        result = heterogeneity(coefs, ses)
        tests.append({"endpoint": endpoint, "factor": factor, **{k: result[k] for k in ("q", "df", "p", "i2")},
                      "pooled_hr": result["pooled_hr"]})
    adjusted = []
    if plan.centre_adjustment != "none":
        columns = [c for f in plan.multivariable_covariates for c in factors.columns(f, plan)]
        for endpoint in plan.multivariable_endpoints:
            fit = cox_by_centre(data, f"{endpoint}_months", f"{endpoint}_event", columns, "centre",
                                plan.centre_adjustment)
            adjusted.append({"endpoint": endpoint, "model": "multivariable", "n": fit.get("n", 0),
                             "events": fit.get("events", 0), "estimable": fit["estimable"], "reason": fit["reason"],
                             "terms": [{k: term[k] for k in ("term", "hr", "ci95", "p")}
                                       for term in fit.get("terms", [])]})
    return {"adjustment": plan.centre_adjustment, "rows": rows, "heterogeneity": tests, "adjusted": adjusted}


# --- proportional hazards ---------------------------------------------------------------------

def ph_tests(data, plan, univariable, multivariable, report):
    """cox.zph per term and global for every univariable and multivariable Cox model of the
    report, at the coefficients the report fitted; residuals of the multivariable models."""
    models = {}
    for row in univariable:
        factor = row["factor"]
        model = "histology" if factor.startswith("histology_") else factor
        models.setdefault((row["endpoint"], model), []).append(row)
    for model in multivariable:
        models[(model["endpoint"], "multivariable")] = [{**term, "estimable": model["estimable"]}
                                                        for term in model["terms"]]
    tests, residuals = [], []
    for (endpoint, model), terms in models.items():
        if not terms or not all(term["estimable"] and term["hr"] for term in terms):
            continue
        columns = [term["factor"] for term in terms]
        complete = data[[f"{endpoint}_months", f"{endpoint}_event", *columns]].dropna()
        beta = [math.log(term["hr"]) for term in terms]
        grouped = {}  # histology's dummies are one term with 2 df, as R's factor term
        for column in columns:
            grouped.setdefault("histology" if column.startswith("histology_") else column, []).append(column)
        result = cox_zph(complete.iloc[:, 0], complete.iloc[:, 1], complete[columns].to_numpy(), beta, columns,
                         terms=grouped)
        for test in result["terms"]:
            tests.append({"endpoint": endpoint, "model": model, **test})
            if test["term"] != "GLOBAL" and test["p"] is not None and test["p"] < PH_ALPHA:
                warn(report, "ph_violated",
                     f"Proportional hazards doubtful for {test['term']} in the {endpoint.upper()} {model} model "
                     f"(scaled Schoenfeld test p = {test['p']:.3f}): its hazard ratio is an average over time.",
                     model=f"{endpoint}:{model}:{test['term']}")
        if model == "multivariable":
            step = max(1, len(result["residuals"]["g"]) // RESIDUAL_POINTS)
            for column, scaled in zip(columns, result["residuals"]["scaled"]):
                residuals.append({"endpoint": endpoint, "model": model, "term": column,
                                  "time": result["residuals"]["time"][::step], "scaled": scaled[::step]})
    return tests, residuals


# --- competing risks --------------------------------------------------------------------------

def _cif(result, cause, times):
    rows = result["cif"].get(cause) or [[0.0 if result["n"] else None, None, None]] * len(times)
    return {"n": result["n"], "events": result["events"].get(cause, 0),
            "cif": {f"{t:g}": row for t, row in zip(times, rows)},
            "curve": {"time": result["curve"]["time"], "cif": result["curve"].get(cause, [])}}


def competing_risks(data, plan):
    """Cumulative incidence of recurrence and of death without recurrence (overall, by factor,
    recurrence by site) at the plan's rate times, and the cause-specific Cox model of recurrence."""
    times = list(plan.rate_times_months)
    known = data.dropna(subset=["dfs_months", "dfs_event"])
    recurred = known["recurrence_site"].notna().to_numpy()
    event = known["dfs_event"].to_numpy() == 1
    cause = np.where(event, np.where(recurred, 1, 2), 0)
    t = known["dfs_months"].to_numpy(float)
    overall = aalen_johansen(t, cause, times)
    by_factor = []
    for factor in CIF_FACTORS:
        for level in (0.0, 1.0):
            group = (known[factor] == level).to_numpy()
            result = aalen_johansen(t[group], cause[group], times)
            by_factor.append({"factor": factor, "level": int(level),
                              "recurrence": _cif(result, 1, times),
                              "death_without_recurrence": _cif(result, 2, times)})
    lung = known["recurrence_site"].to_numpy(object) == "lung"
    site_cause = np.where(cause == 1, np.where(lung, 1, 2), np.where(cause == 2, 3, 0))
    by_site = aalen_johansen(t, site_cause, times)
    recurrence_data = known.assign(recurrence_event=(cause == 1).astype(float))
    columns = [c for f in plan.multivariable_covariates for c in factors.columns(f, plan)]
    fit = stats.cox(recurrence_data, "dfs_months", "recurrence_event", columns, concordance=False)
    return {
        "recurrence": _cif(overall, 1, times),
        "death_without_recurrence": _cif(overall, 2, times),
        "by_factor": by_factor,
        "by_site": {"lung": _cif(by_site, 1, times), "elsewhere": _cif(by_site, 2, times),
                    "death_without_recurrence": _cif(by_site, 3, times)},
        "cause_specific_cox": {"event": "recurrence (death without recurrence censors)", "n": fit.get("n", 0),
                               "events": fit.get("events", 0), "estimable": fit["estimable"], "reason": fit["reason"],
                               "terms": [{k: term[k] for k in ("term", "hr", "ci95", "p")}
                                         for term in fit.get("terms", [])]},
    }


def event_at_time_zero(data, report):
    """A recurrence dated on the index date: an event at time 0 (kept, but worth checking)."""
    at_zero = int(((data["dfs_months"] == 0) & (data["dfs_event"] == 1) & data["recurrence_site"].notna()).sum())
    if at_zero:
        warn(report, "event_at_time_zero",
             f"{at_zero} patient(s) have a recurrence dated on the index date (an event at time 0): check that "
             "the recurrence was not the disease the metastasectomy treated.", model="dfs")
