"""The dashboard's results: plan controls, the cache, the report and the Kaplan-Meier strata.

See the package docstring (analysis/dashboard/__init__.py) for the cache's keys.
"""
import math

import pandas as pd
from django import forms
from django.conf import settings
from django.core.cache import cache
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from analysis import factors
from analysis.plan import ENDPOINTS, FACTORS, PlanError, plan_from_query
from analysis.table1 import min_cell_count
from registry import codes, selectors

RISK_TIMES = (0, 12, 24, 36, 48, 60)  # months: the downloaded numbers at risk (the figures' axis follows the data)
CACHE_SECONDS = 6 * 3600  # keys change with the data; this only bounds memory
CACHE_PREFIX = "analysis:dashboard:v1"
ENDPOINT_LABELS = {"dfs": _("Disease-free survival"), "os": _("Overall survival")}

# What the curves may be stratified by, in the menu's order: factors (labelled by analysis/factors.py
# with the plan's cut-offs) and these other columns of the analysis frame.
STRATIFY = ("none", "size_gt_2cm", "multiple_lesions", "tfi_gt_12m", "histology", "grade", "centre",
            "peri_pm_systemic")
STRATA = {"none": _("none (all patients)"), "grade": _("grade"), "centre": _("centre")}


def strata_choices(plan):
    return [(s, STRATA[s] if s in STRATA else factors.label(s, plan)) for s in STRATIFY]


def covariate_choices(plan):
    """The Cox factors of analysis/plan.py, as a PI reads them under this plan."""
    return [(factor, factors.label(factor, plan)) for factor in FACTORS]


def poll_seconds():
    """How often an open dashboard asks for the data version (settings.DASHBOARD_POLL_SECONDS)."""
    return getattr(settings, "DASHBOARD_POLL_SECONDS", 20)


min_stratum = min_cell_count  # groups smaller than this are not drawn


# --- controls -----------------------------------------------------------------------------------

class ControlsForm(forms.Form):
    """The cut-offs, stratification and multivariable covariates: a plain GET form.

    Every field is optional: a link may carry only some (``?stratify=histology``); a missing
    or invalid field keeps the base plan's value (an invalid one shows its error).
    """

    size_cutoff_mm = forms.FloatField(label=_("Size cut-off"), min_value=0, max_value=200, required=False)
    lesions_cutoff = forms.IntegerField(label=_("Lesions cut-off"), min_value=1, max_value=20, required=False)
    tfi_cutoff_months = forms.FloatField(label=_("Treatment-free interval (TFI) cut-off"), min_value=0, max_value=240, required=False)
    stratify = forms.ChoiceField(label=_("Stratify curves by"), required=False)
    covariates = forms.MultipleChoiceField(
        label=_("Covariates of the multivariable DFS model"),
        widget=forms.CheckboxSelectMultiple, required=False,
        help_text=_("Tick at least one."))
    xmax = forms.FloatField(label=_("Time axis up to"), min_value=6, max_value=600, required=False,
                            help_text=_("Months; empty: up to the last follow-up."))
    xstep = forms.ChoiceField(label=_("Tick every"), required=False, choices=[
        ("", _("automatic")), ("3", "3"), ("6", "6"), ("12", "12"), ("24", "24"), ("36", "36"), ("60", "60")],
        help_text=_("Months between the marks of the time axis (and the numbers at risk)."))
    bands = forms.ChoiceField(label=_("95% CI bands"), required=False, choices=[
        ("", _("automatic (up to two groups)")), ("on", _("shown")), ("off", _("hidden"))])

    def __init__(self, *args, plan, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["stratify"].choices = strata_choices(plan)
        self.fields["covariates"].choices = covariate_choices(plan)


def plan_fields(plan):
    """The form's initial values: cut-offs as a person writes them (20, not 20.0)."""
    return {"size_cutoff_mm": f"{plan.size_cutoff_mm:g}", "lesions_cutoff": plan.lesions_cutoff,
            "tfi_cutoff_months": f"{plan.tfi_cutoff_months:g}", "covariates": list(plan.multivariable_covariates)}


COVARIATES_SHOWN = "covariates_shown"  # a hidden field of the form: its boxes were on the page


def controls(query, base):
    """(form, plan, factor) from the query: the base plan (defaults or a saved plan) with the
    given, valid fields of the form applied."""
    initial = {**plan_fields(base), "stratify": "none", "xmax": "", "xstep": "", "bands": ""}
    if not any(name in query for name in ControlsForm.base_fields):
        return ControlsForm(initial=initial, plan=base), base, "none"
    form = ControlsForm({**initial, **{name: query.get(name) for name in initial if name in query},
                         "covariates": query.getlist("covariates") or initial["covariates"]}, plan=base)
    form.is_valid()  # the form's ranges; a field that fails them keeps the base plan's value
    if COVARIATES_SHOWN in query and not query.getlist("covariates"):  # the form sent, every box unticked
        form.add_error("covariates", _("No covariate ticked: the model needs at least one, so it keeps "
                                       "the plan's covariates (ticked again below)."))
    data = form.cleaned_data
    params = {name: [str(form.data[name])] for name in ("size_cutoff_mm", "lesions_cutoff", "tfi_cutoff_months")
              if data.get(name) is not None}
    if data.get("covariates"):
        params["multivariable_covariates"] = [f for f in FACTORS if f in data["covariates"]]
    try:
        plan = plan_from_query(params, base)
    except PlanError as error:  # the form's ranges should prevent this; never a 500
        form.add_error(None, str(error))
        plan = base
    form.fields["stratify"].choices = strata_choices(plan)  # labelled with the cut-offs now in force
    form.fields["covariates"].choices = covariate_choices(plan)
    return form, plan, data.get("stratify") or "none"


def figure_options(form):
    """How the Kaplan-Meier figures are drawn: {"xmax": months or None (from the data), "xstep":
    months between ticks or None (from the axis' length), "bands":
    "on", "off" or None (shown for up to two groups)}; an invalid value keeps the default."""
    data = getattr(form, "cleaned_data", None) or {}
    return {"xmax": data.get("xmax"), "xstep": int(data["xstep"]) if data.get("xstep") else None,
            "bands": data.get("bands") or None}


# --- cached results -----------------------------------------------------------------------------

def scope_key(centres):
    return "all" if centres is None else "+".join(sorted(centres))


def cache_key(kind, plan, version, centres):
    return f"{CACHE_PREFIX}:{kind}:{plan.hash}:{version}:{scope_key(centres)}"


def version_key(version, freeze=None):
    """The data part of a cache key: the live data version, or the freeze and its version."""
    return version if freeze is None else f"freeze-{freeze.pk}-{version}"


def entry_kinds(factor):
    """The cache entries' kinds for a stratification factor. The small-group guard changes what is
    shown and drawn, and the language the labels of the strata and the text of the figures: both
    are part of the keys (the report itself is the same in every language)."""
    guard, language = min_stratum(), translation.get_language()
    return {"report": f"report:{guard}", "strata": f"strata:{factor}:{guard}:{language}",
            "figures": f"figures:{factor}:{guard}:{language}"}


def results(plan, centres, factor, freeze=None):
    """{"report", "strata", "cache": "hit"|"miss", "figures_key"} for the plan, the centres
    (None = all), the stratification factor and the data freeze (None: the live registry).

    Reads the data version (ten indexed queries; a freeze's: one), then the cache; on a miss
    reads the frame once, computes what is missing and stores it under the version the frame
    was read at. Two requests missing at the same moment both compute (no lock): the cost of a
    rare double computation is lower than that of a lock every request would pass through.
    """
    kinds = entry_kinds(factor)

    def keys(version):
        return {name: cache_key(kind, plan, version_key(version, freeze), centres) for name, kind in kinds.items()}

    # another centre's saves leave this view cached; a freeze's version never moves
    key = keys(selectors.data_version(centres) if freeze is None else selectors.freeze_version(freeze))
    found = cache.get_many([key["report"], key["strata"]])
    if len(found) == 2:
        return {"report": found[key["report"]], "strata": found[key["strata"]], "cache": "hit",
                "figures_key": key["figures"]}

    from analysis.report import frame_with_version  # lifelines loads in seconds: only on a miss

    frame, read_at = frame_with_version(plan, centres=centres, freeze=freeze)
    stored, key = key, keys(read_at)
    report = found.get(stored["report"]) if stored == key else None
    report = report or report_from_frame(frame, read_at, plan, centres, freeze)
    strata = overall_strata(report) if factor == "none" else strata_for(frame[frame["eligible"]], factor, plan)
    cache.set_many({key["report"]: report, key["strata"]: strata}, CACHE_SECONDS)
    return {"report": report, "strata": strata, "cache": "miss", "figures_key": key["figures"]}


def report_from_frame(frame, version, plan, centres, freeze=None):
    """``survival_report(plan, centres=centres, freeze=freeze)`` from a frame already read (so the
    dashboard reads the registry once for the report and the strata)."""
    from analysis import report

    return report.report_from_frame(frame, version, plan, centres=centres, freeze=freeze)


# --- strata -------------------------------------------------------------------------------------

def _binary(values, no, yes):
    return values.map(lambda v: None if pd.isna(v) else (yes if bool(v) else no)), [no, yes]


def stratum_labels(analysed, factor, plan):
    """(label per patient, None = unknown; the labels in display order) for one factor."""
    if factor in ("size_gt_2cm", "multiple_lesions", "tfi_gt_12m", "peri_pm_systemic"):
        return _binary(analysed[factor].astype(object), *factors.levels(factor, plan))
    if factor == "histology":
        return analysed["histology"].astype(object), list(plan.histologies)
    if factor == "grade":
        return analysed["grade"].astype(object), [code for code, _label in codes.GRADE]
    if factor == "centre":
        return analysed["centre"].astype(object), sorted(analysed["centre"].unique().tolist())
    everyone = str(_("All patients"))
    return pd.Series(everyone, index=analysed.index, dtype=object), [everyone]


def overall_strata(report):
    """The unstratified curves: the report's own Kaplan-Meier estimates, one group of everyone."""
    result = {"factor": "none", "label": str(STRATA["none"]), "unknown": 0, "hidden": [], "endpoints": {}}
    everyone = str(_("All patients"))
    if report.get("withheld"):  # too few patients for any estimate (analysis/report.py)
        result["hidden"].append({"label": everyone, "n": report["cohort"]["analysed"]})
        result["endpoints"] = {endpoint: {"groups": [], "logrank": None} for endpoint in ENDPOINTS}
        return result
    for endpoint in ENDPOINTS:
        summary = report["endpoints"][endpoint]
        group = {"label": everyone, "n": summary["n"], "events": summary["events"],
                 "median": summary["median_months"], "median_ci95": summary["median_ci95"],
                 "curve": report["curves"][endpoint]}
        shown = summary["estimable"] and summary["n"] >= min_stratum()
        if summary["n"] and not shown and not result["hidden"]:
            result["hidden"].append({"label": everyone, "n": summary["n"]})
        result["endpoints"][endpoint] = {"groups": [group] if shown else [], "logrank": None}
    return result


def stratum_title(factor, plan):
    """The factor as a figure title says it: "... by lesion size (30 mm)"."""
    return factors.title(factor, plan) or str(STRATA.get(factor, factor))


def strata_for(analysed, factor, plan):
    """Kaplan-Meier per group of ``factor`` for each endpoint, or nothing drawn at all.

    When any group, or the patients whose value is unknown, number fewer than min_stratum(), no
    group is drawn: the unstratified curve minus the groups drawn would reveal the small group's
    times exactly (a group of one patient gave away her censoring and event times). The small
    groups are listed in "hidden" without their size. Otherwise every group is drawn and the
    log-rank test compares them.
    """
    from analysis import stats
    from analysis.report import curve

    labels, order = stratum_labels(analysed, factor, plan)
    sizes, unknown = labels.value_counts(), int(labels.isna().sum())
    small = [label for label in order if 0 < sizes.get(label, 0) < min_stratum()]
    if 0 < unknown < min_stratum():
        small.append(str(_("unknown")))
    shown = [] if small else [label for label in order if sizes.get(label, 0)]
    result = {"factor": factor, "label": stratum_title(factor, plan), "unknown": unknown,
              "hidden": [{"label": label, "n": None} for label in small], "endpoints": {}}
    drawn = labels.isin(shown)
    for endpoint in ENDPOINTS:
        months, events = analysed[f"{endpoint}_months"].astype(float), analysed[f"{endpoint}_event"].astype(float)
        groups = []
        for label in shown:
            km = stats.kaplan_meier(months[labels == label], events[labels == label])
            if km["estimable"]:
                groups.append({"label": label, "n": km["n"], "events": km["events"], "median": km["median"],
                               "median_ci95": km["median_ci95"], "curve": curve(km)})
        test = stats.logrank(months[drawn], events[drawn], labels[drawn]) if len(groups) > 1 else None
        result["endpoints"][endpoint] = {
            "groups": groups,
            "logrank": None if test is None else {k: test.get(k) for k in ("estimable", "reason", "chi2", "df", "p")}}
    return result


def time_axis(groups, xmax=None, xstep=None):
    """(horizon, tick times) in months: up to ``xmax`` if given, else up to the last follow-up
    rounded up to a year; a tick every ``xstep`` months if given (but never more than 40 ticks),
    else every 12 months (24, 36... on a long axis, at most 16 ticks)."""
    last = max((group["curve"]["time"][-1] for group in groups if group["curve"]["time"]), default=RISK_TIMES[-1])
    horizon = xmax or 12 * max(1, math.ceil(last / 12))
    step = max(xstep, math.ceil(horizon / 40)) if xstep else 12 * math.ceil(horizon / 180)
    return horizon, list(range(0, int(horizon) + 1, step))
