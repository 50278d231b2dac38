"""The methods paragraph of the paper pack: the data (the freeze, its instant and hash), the
definitions under the plan, the statistics, which code fitted what, the software and its versions.

``paragraphs(report, plan)`` gives [(heading, text)], in the active language; ``markdown`` joins
them as Markdown, and analysis/paper/documents.py sets the same paragraphs in Word.
"""
from django.utils.translation import gettext as _

from analysis import factors
from analysis.dashboard.tables import cohort_steps, plan_changes


def _data(report):
    freeze, cohort = report["freeze"], report["cohort"]
    rule = _("all records") if freeze["rule"] == "all" else _("only records verified or locked")
    return _("The analysis used the data freeze “%(name)s” of the Sarcoma PM registry, frozen at %(when)s "
             "(%(rule)s; SHA-256 content hash %(hash)s; data dictionary version %(dictionary)s). Of %(registered)s "
             "registered patients, %(analysed)s were analysed; the cohort flow is figures/cohort_flow.") % {
        "name": freeze["name"], "when": freeze["frozen_at"], "rule": rule, "hash": freeze["content_hash"],
        "dictionary": freeze["dictionary_version"], "registered": f"{cohort['registered']:,}",
        "analysed": f"{cohort['analysed']:,}"}


def _definitions(plan):
    index = (_("the date of the first metastasectomy") if plan.index_rule == "first_pm" else
             _("the date of the first metastasectomy with a complete resection (%(margins)s)")
             % {"margins": "/".join(plan.complete_margins)})
    return _("Time zero (the index date) was %(index)s; durations are in months (days / 30.4375). Overall survival "
             "(OS) ended at death from any cause; disease-free survival (DFS) at the first recurrence after the "
             "index date or death, whichever came first. Patients without the event were censored at the latest "
             "date in any of their records. Factors: %(factors)s. Peri-PM systemic therapy: a neoadjuvant line "
             "that started up to %(window)s months before, or an adjuvant line that started up to %(window)s "
             "months after the index operation. The treatment-free interval ran from the end of the last "
             "treatment before the diagnosis of the lung metastases to that diagnosis; it is unknown when the end "
             "of such a treatment is unknown.") % {
        "index": index, "window": f"{plan.systemic_window_months:g}",
        "factors": "; ".join(str(factors.label(f, plan)) for f in ("size_gt_2cm", "multiple_lesions",
                                                                    "tfi_gt_12m", "synchronous"))}


def _cohort(report, plan):
    steps = [str(step["label"]) for step in cohort_steps(report["cohort"], plan)]
    return _("Patients entered the analysis unless, in this order: %(steps)s; each excluded patient is counted at "
             "the first criterion not met.") % {"steps": "; ".join(steps)}


def _statistics(plan):
    covariates = ", ".join(str(factors.label(f, plan)) for f in plan.multivariable_covariates)
    return _("Survival was estimated by Kaplan–Meier with pointwise 95%% confidence intervals on the log(−log) "
             "scale (Greenwood variance); medians with Brookmeyer–Crowley 95%% CIs, and survival at %(times)s "
             "months. Hazard ratios (HR) come from Cox proportional hazards models with Efron's method for ties, "
             "with Wald 95%% CIs and two-sided Wald p; each model used the patients with every variable of it "
             "known (complete cases). Univariable models were fitted for every factor; the multivariable model "
             "of %(endpoints)s included %(covariates)s. Binary factors were also compared by the log-rank test. "
             "The effect of peri-PM systemic therapy was estimated without immortal-time bias by a landmark "
             "analysis at %(landmark)s months and by a Cox model with the therapy as a time-dependent covariate. "
             "Models with fewer than 10 events per term are flagged; a diverging fit (separation) is replaced by "
             "Firth's penalised estimate. Proportional hazards were checked by scaled Schoenfeld residuals.") % {
        "times": ", ".join(f"{t:g}" for t in plan.rate_times_months),
        "endpoints": ", ".join(e.upper() for e in plan.multivariable_endpoints), "covariates": covariates,
        "landmark": f"{plan.landmark_months:g}"}


def _plan(report, plan):
    changes = plan_changes(plan)
    changed = ("; ".join(f"{name} = {value}" for name, value, _default in changes) if changes
               else _("none"))
    return _("Analysis plan “%(name)s” (hash %(hash)s; plan.json holds every parameter). Parameters that differ "
             "from the registry's defaults (endpoints.md): %(changed)s.") % {
        "name": plan.name, "hash": report["plan_hash"], "changed": changed}


def _software(report):
    versions = report["software"]
    packages = ", ".join(f"{name} {versions[name]}" for name in ("numpy", "pandas", "scipy", "lifelines",
                                                                  "matplotlib", "python-docx", "Django")
                         if versions.get(name))
    return _("Computed by the Sarcoma PM registry, version %(version)s, on Python %(python)s with %(packages)s. "
             "Kaplan–Meier curves: lifelines' KaplanMeierFitter, with the confidence bands and the median and its "
             "CI computed as R's survfit does (analysis/stats/km.py). Cox models: the registry's own "
             "Newton–Raphson fit with Efron ties (analysis/stats/cox.py), Firth's penalised fit "
             "(analysis/stats/firth.py), the counting-process fit of the time-dependent model "
             "(analysis/stats/intervals.py); log-rank tests: analysis/stats/logrank.py; cumulative incidence: "
             "Aalen–Johansen (analysis/stats/competing.py). The registry's test suite checks each of them "
             "against R's survival package. Figures: matplotlib; tables: python-docx. reproduce.R (R with the "
             "survival package only) and reproduce.py (lifelines) recompute the medians, the survival rates "
             "and every hazard ratio from data/analysis_data.csv.") % {
        "version": versions["registry"], "python": versions["python"], "packages": packages}


def paragraphs(report, plan):
    """[(heading, text)] of the methods, in the active language."""
    return [
        (_("Data"), _data(report)),
        (_("Definitions"), _definitions(plan)),
        (_("Study cohort"), _cohort(report, plan)),
        (_("Statistical analysis"), _statistics(plan)),
        (_("Analysis plan"), _plan(report, plan)),
        (_("Software"), _software(report)),
    ]


def markdown(report, plan, footer):
    parts = [f"# {_('Methods')}", ""]
    for heading, text in paragraphs(report, plan):
        parts += [f"**{heading}.** {text}", ""]
    parts += ["---", "", footer, ""]
    return "\n".join(parts)
