"""The survival report: the study's results (endpoints.md, "Results the study reports")
recomputed from the pooled registry (or from a data freeze of it), as plain JSON-serialisable data.

    report = survival_report(AnalysisPlan(), user=request.user)
    json.dumps(report, allow_nan=False)

Statistics come from analysis.stats (checked against R); this module only chooses the data,
the factors and the shape of the result. Every result names its plan (and hash) and the data
version it was computed from; values that cannot be estimated are null with a reason.

Keys added by endpoints.md's v2 (every v1 key is unchanged; Cox rows also carry ``method``,
"efron" or "firth"):

- ``warnings``: ``[{code, message, model}]``, what a reader must know before trusting a number
  (analysis.warnings): ``low_epv`` (a Cox model with < 10 events per term), ``separation_firth``
  (the ordinary fit diverged; Firth-penalised estimates are shown), ``aliased_term`` (a term
  left out: no variation or collinear). ``model`` names the model: "univariable dfs histology",
  "multivariable dfs", "subgroup dfs ...", "interaction dfs size_gt_2cm:peri_pm_systemic".
- ``global_tests``: ``[{endpoint, model ("univariable" | "multivariable"), factor, terms,
  adjusted_for, n, events, wald: {statistic, df, p}, lr: {statistic, df, p} | null, method,
  estimable, reason}]``: all of a multi-level factor's terms at once (histology, 2 df).
- ``interaction_tests``: ``[{endpoint, factors, term, n, events, hr, ci95, p, lr, method,
  estimable, reason}]``: the size x peri-PM systemic therapy product term behind the subgroup
  claim (Wald p; LR test against the main-effects model).
- ``cutoff_search``: ``[{factor, endpoint, variable, chosen, best_cutoff, max_stat, p_adjusted,
  chosen_stat, chosen_p, search_range, cutoffs_searched, n, events, estimable, reason}]``: the
  maximally selected log-rank statistic over the plan's ``cutoff_search_range`` with the
  Lausen-Schumacher adjusted p, beside the chosen cut-off's own statistic and unadjusted p.
- ``freeze``: null for the live registry; from a data freeze ``{name, frozen_at, rule,
  content_hash, dictionary_version, live_data_version}`` (registry.selectors.freeze_provenance),
  and then ``data_version`` is the freeze's and ``generated_at`` its instant.
- ``software``: ``{registry, python, numpy, pandas, scipy, lifelines, matplotlib, python-docx,
  Django}`` versions (analysis.provenance): what computed the numbers.
- ``therapy_effects``, ``ph_tests`` (and ``ph_residuals``), ``centre_effects``,
  ``competing_risks``: see analysis/sections.py; they add ``ph_violated``, ``immortal_time_bias``
  and ``event_at_time_zero`` to ``warnings``.
"""
from django.utils import timezone

from analysis import cutoffs, factors, model_tests, provenance, sections, stats
from analysis.cox_models import fit_cox
from analysis.frame import analysis_frame, cohort_criteria
from analysis.plan import ENDPOINTS, FACTORS, AnalysisPlan
from analysis.table1 import min_cell_count, table1
from registry import selectors

BINARY_FACTORS = ("size_gt_2cm", "multiple_lesions", "tfi_gt_12m", "sex_male", "grade_G3", "bilateral",
                  "peri_pm_systemic", "synchronous")

METHODS = {
    "time_scale": "months = days / (365.25 / 12) from the index date (first metastasectomy)",
    "kaplan_meier": "Kaplan-Meier (lifelines); pointwise 95% CI on the log(-log) scale (Greenwood), "
                    "as R survfit conf.type='log-log'; null where undefined (S(t) = 1 or 0)",
    "median": "as R survfit: first time with S(t) <= 0.5, the midpoint of the interval where S(t) = 0.5 "
              "exactly; null when not reached",
    "median_ci": "Brookmeyer-Crowley: where the log(-log) band crosses 0.5 (same midpoint rule); "
                 "null bound when not reached (R: NA)",
    "rates": "S(t) at the plan's rate_times_months with its log(-log) pointwise 95% CI; "
             "null beyond the last observed time",
    "follow_up": "median follow-up by reverse Kaplan-Meier of OS (death censors, censoring is the event)",
    "cox": "Cox proportional hazards, Efron ties, fitted by the registry's own Newton-Raphson "
           "(checked against R coxph); "
           "HR with Wald 95% CI and Wald p; complete cases per model ('n' used)",
    "logrank": "log-rank test (= R survdiff) for binary factors, same patients as the Cox model; "
               "generalised inverse and df = its rank when a group has nobody at risk",
    "cox_checks": "fewer than 10 events per term: a low_epv warning; a diverging fit (separation): "
                  "Firth-penalised Cox (Heinze-Schemper, Efron ties; CI and p from the profile penalised "
                  "likelihood); a term without variation "
                  "or collinear: left out (as R's NA), the rest fitted",
    "global_tests": "histology's terms together: Wald (b' V^-1 b) and likelihood ratio against the model "
                    "without histology on the same patients (R anova)",
    "interaction_tests": "size_gt_2cm x peri_pm_systemic product term: Wald p and LR test against the "
                         "main-effects model",
    "cutoff_search": "maximally selected log-rank statistic over the cut-offs between the plan's "
                     "cutoff_search_range quantiles, Lausen-Schumacher (1992) adjusted p",
    "factors": "histology: dummies against LMS; sex_male: male vs female (diverse -> missing); "
               "age_per_10y: age_at_pm / 10; grade_G3: G3 vs G1/G2 (GX or blank -> missing)",
    "cohort": "patients without a metastasectomy have no index date and are excluded first; "
              "then the plan's criteria in order, each patient counted at the first that fails",
    **sections.METHODS,
}


def survival_report(plan=None, *, user=None, centres=None, freeze=None):
    """The full report as a dict (keys below); ``user=None`` = no user restriction (the system);
    ``freeze``: computed from that data freeze instead of the live registry."""
    plan = plan or AnalysisPlan()
    frame, version = frame_with_version(plan, user=user, centres=centres, freeze=freeze)
    return report_from_frame(frame, version, plan, user=user, centres=centres, freeze=freeze)


def report_from_frame(frame, version, plan, *, user=None, centres=None, freeze=None):
    """The report from an analysis frame already read at data version ``version``.

    For callers that need the frame for something else too (the dashboard's strata), so the
    registry is read once. ``user`` and ``centres`` only fill in ``scope``. From a ``freeze`` the
    report names it (``freeze``: name, instant, rule, content hash, data dictionary version) and
    ``generated_at`` is the freeze's instant, so that it is a function of the freeze and the plan
    alone: computed again at any later time, it is the same, byte for byte.
    """
    analysed = frame[frame["eligible"]]
    # Fewer patients than an aggregate may show: every estimate would describe them one by one
    # (a median of three is one patient's time), so each is computed on no patient: not estimable.
    minimum = min_cell_count()
    withheld = 0 < len(analysed) < minimum
    estimated = analysed.iloc[0:0] if withheld else analysed
    data = model_data(estimated, plan)
    km = {endpoint: kaplan_meier(data, endpoint, plan) for endpoint in ENDPOINTS}
    report = {
        "plan": plan.to_dict(),
        "plan_hash": plan.hash,
        "data_version": version,
        "freeze": selectors.freeze_provenance(freeze) if freeze is not None else None,
        "generated_at": freeze.created_at.isoformat() if freeze is not None else timezone.now().isoformat(),
        "software": provenance.software(),
        "scope": scope(frame, user=user, centres=centres),
        "cohort": cohort_flow(frame, plan),
        "endpoints": {endpoint: endpoint_summary(km[endpoint], plan) for endpoint in ENDPOINTS},
        "follow_up": follow_up(data),
        "warnings": [],
    }
    sections.event_at_time_zero(data, report)
    report["univariable"] = univariable(data, plan, report=report)
    report["multivariable"] = [multivariable(data, endpoint, plan, report=report)
                               for endpoint in plan.multivariable_endpoints]
    report["subgroups"] = subgroups(data, plan, report=report)
    report["global_tests"] = model_tests.global_tests(data, plan, report=report)
    report["interaction_tests"] = model_tests.interaction_tests(data, plan, report=report)
    report["cutoff_search"] = cutoffs.cutoff_search(estimated, data, plan)
    therapy = sections.therapy_effects(data, plan, report)
    ph, residuals = sections.ph_tests(data, plan, report["univariable"], report["multivariable"], report)
    report.update({
        "complications": complications(estimated),
        "table1": table1(analysed, plan.histologies, min_count=minimum),
        "curves": {endpoint: curve(km[endpoint]) for endpoint in ENDPOINTS},
        "methods": METHODS,
        "withheld": (f"Fewer than {minimum} patients analysed: no estimate is shown, as it would describe "
                     "individual patients.") if withheld else None,
        "therapy_effects": therapy,
        "ph_tests": ph,
        "ph_residuals": residuals,
        "centre_effects": sections.centre_effects(data, plan),
        "competing_risks": sections.competing_risks(data, plan),
    })
    return report


def frame_with_version(plan, *, user=None, centres=None, row_level=False, freeze=None):
    """The analysis frame and the data version it was read at, both from one snapshot of the
    database, so the version a report names is exactly the data its numbers come from, however
    many nurses save meanwhile. The version covers `centres`; without them, every centre (a
    user's own centres are a subset: their version may move for others' saves, never miss one).
    From a freeze, which never changes, the version is the freeze's (selectors.freeze_version)."""
    if freeze is not None:
        frame = analysis_frame(plan, user=user, centres=centres, row_level=row_level, freeze=freeze)
        return frame, selectors.freeze_version(freeze)
    with selectors.one_snapshot():
        version = selectors.data_version(centres)  # the first read: it fixes the snapshot on PostgreSQL
        return analysis_frame(plan, user=user, centres=centres, row_level=row_level), version


def scope(frame, *, user=None, centres=None):
    return {
        "user": getattr(user, "username", None),
        "centres_requested": sorted(centres) if centres is not None else None,
        "centres_included": sorted(frame["centre"].unique().tolist()),
    }


def cohort_flow(frame, plan):
    """registered -> excluded at each criterion (in order) -> analysed."""
    reasons = frame["exclusion_reason"].value_counts()
    excluded = [{"criterion": reason, "n": int(reasons.get(reason, 0))} for reason, _test in cohort_criteria(plan)]
    return {"registered": int(len(frame)), "excluded": excluded, "analysed": int(frame["eligible"].sum())}


# --- model data -------------------------------------------------------------------------------

def model_data(analysed, plan):
    """Float columns for the models: durations, events and every factor (NaN = missing)."""
    data = factors.model_columns(analysed, plan)
    for column in ("dfs_months", "dfs_event", "os_months", "os_event"):
        data[column] = factors.as_float(analysed[column])
    data["therapy_start_months"] = analysed["peri_pm_systemic_start_months"].astype(float)
    data["centre"] = analysed["centre"]
    data["recurrence_site"] = analysed["first_recurrence_site"]
    return data.reset_index(drop=True)


# --- endpoints --------------------------------------------------------------------------------

def _ci(low, high):
    return [low, high]


def kaplan_meier(data, endpoint, plan):
    """The Kaplan-Meier estimate of one endpoint (log(-log) CI), with S at the plan's times."""
    return stats.kaplan_meier(data[f"{endpoint}_months"], data[f"{endpoint}_event"],
                                 times=list(plan.rate_times_months))


def endpoint_summary(km, plan):
    """n, events, median with CI, and survival rates at the plan's times."""
    if not km["estimable"]:
        return {"n": km.get("n", 0), "events": km.get("events", 0), "median_months": None,
                "median_ci95": [None, None],
                "rates": [{"months": t, "survival": None, "ci95": [None, None], "at_risk": 0}
                          for t in plan.rate_times_months],
                "estimable": False, "reason": km["reason"]}
    return {"n": km["n"], "events": km["events"], "median_months": km["median"], "median_ci95": km["median_ci95"],
            "rates": [{"months": at["time"], "survival": at["survival"], "ci95": _ci(at["ci_lower"], at["ci_upper"]),
                       "at_risk": at["at_risk"]} for at in km["at"]],
            "estimable": True, "reason": None}


def follow_up(data):
    """Median follow-up after the index (reverse Kaplan-Meier of OS)."""
    result = stats.reverse_km_median(data["os_months"], data["os_event"])
    return {"method": "reverse Kaplan-Meier", "n": result.get("n", 0), "median_months": result.get("median"),
            "median_ci95": result.get("median_ci95", [None, None]),
            "estimable": result["estimable"], "reason": result["reason"]}


def curve(km):
    """The KM table as columns (compact for a dashboard): time, at_risk, events, censored,
    survival and its log(-log) band."""
    keys = ("time", "at_risk", "events", "censored", "survival", "ci_lower", "ci_upper")
    table = km.get("table", [])
    return {key: [row[key] for row in table] for key in keys}


# --- Cox models -------------------------------------------------------------------------------

def _cox_rows(data, endpoint, columns, *, logrank=False, report=None, model=None):
    """One Cox model of ``endpoint`` on ``columns``: a row per column (null where not estimable;
    a dropped term's row says why). ``method`` is "efron", or "firth" under separation."""
    fit = fit_cox(data, endpoint, columns, report=report, model=model)
    terms = {term["term"]: term for term in fit.get("terms", [])}
    logrank_p = None
    if logrank and len(columns) == 1:
        complete = data[[f"{endpoint}_months", f"{endpoint}_event", columns[0]]].dropna()
        test = stats.logrank(complete.iloc[:, 0], complete.iloc[:, 1], complete.iloc[:, 2])
        logrank_p = test.get("p")
    rows = []
    for column in columns:
        term = terms.get(column, {})
        dropped = term.get("dropped")
        rows.append({"endpoint": endpoint, "factor": column, "hr": term.get("hr"),
                     "ci95": term.get("ci95", [None, None]), "p": term.get("p"),
                     "n": fit.get("n", 0), "events": fit.get("events", 0),
                     "logrank_p": logrank_p, "estimable": fit["estimable"] and not dropped,
                     "reason": fit["reason"] or (dropped and f"{column} left out: {dropped}"),
                     "method": fit.get("method")})
    return rows


def univariable(data, plan, *, report=None):
    """One Cox model per factor and endpoint (histology: one model, a row per dummy)."""
    rows = []
    for endpoint in ENDPOINTS:
        for factor in FACTORS:
            rows += _cox_rows(data, endpoint, factors.columns(factor, plan), logrank=factor in BINARY_FACTORS,
                              report=report, model=f"univariable {endpoint} {factor}")
    return rows


def multivariable(data, endpoint, plan, *, report=None):
    """The plan's multivariable Cox model of ``endpoint`` (complete cases, n used)."""
    columns = [c for factor in plan.multivariable_covariates for c in factors.columns(factor, plan)]
    rows = _cox_rows(data, endpoint, columns, report=report, model=f"multivariable {endpoint}") or [
        {"n": 0, "events": 0, "estimable": False, "reason": "no covariates", "method": None}]
    fitted = any(row.get("hr") is not None for row in rows)  # a term may be left out, the model stands
    return {"endpoint": endpoint, "covariates": list(plan.multivariable_covariates),
            "n": rows[0]["n"], "events": rows[0]["events"],
            "terms": [{k: row[k] for k in ("factor", "hr", "ci95", "p", "method")} for row in rows if "factor" in row],
            "estimable": fitted, "reason": None if fitted else rows[0]["reason"], "method": rows[0]["method"]}


def subgroups(data, plan, *, report=None):
    """peri_pm_systemic within the size_gt_2cm patients, DFS (the study's subgroup finding)."""
    subset = data[data["size_gt_2cm"] == 1.0]
    row = _cox_rows(subset, "dfs", ["peri_pm_systemic"], logrank=True, report=report,
                    model="subgroup dfs peri_pm_systemic within size_gt_2cm")[0]
    return [{"name": "peri_pm_systemic within size_gt_2cm", "subgroup": "size_gt_2cm",
             "subgroup_rule": f"max_lesion_diameter_mm > {plan.size_cutoff_mm:g}", **row}]


def complications(analysed):
    """Index operations with a Clavien-Dindo >= IIIa complication."""
    known = analysed["major_complication"].dropna()
    major = int(known.astype(bool).sum())
    return {"n": int(len(known)), "major": major, "proportion": major / len(known) if len(known) else None,
            "definition": "Clavien-Dindo >= IIIa at the index operation"}
