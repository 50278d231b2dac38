"""The dashboard's numbers as display rows for the templates and as CSV / JSON downloads."""
import csv
import io
import json
import re

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from analysis import factors
from analysis.dashboard.compute import ENDPOINT_LABELS, time_axis
from analysis.frame import NO_METASTASECTOMY
from analysis.plan import AnalysisPlan
from analysis.plots import at_risk, format_hr, format_p
from registry import codes

# --- labels and table rows for the page ---------------------------------------------------------

def term_label(term, plan):
    """A Cox term as the study would print it, with the plan's cut-offs (analysis/factors.py)."""
    return factors.label(term, plan)


def univariable_rows(report, plan):
    """One row per Cox term with its DFS and OS results side by side."""
    rows = {}
    for row in report["univariable"]:
        rows.setdefault(row["factor"], {"label": term_label(row["factor"], plan)})[row["endpoint"]] = cells(row, plan)
    return list(rows.values())


def multivariable_rows(report, plan):
    """The plan's multivariable models: title, n, events and a display row per term."""
    return [{**model, "endpoint_label": ENDPOINT_LABELS[model["endpoint"]], "reason": readable(model["reason"], plan),
             "covariate_labels": [term_label(c, plan) for c in model["covariates"]],
             "rows": [{"label": term_label(t["factor"], plan), **cells({**t, "estimable": model["estimable"]}, plan)}
                      for t in model["terms"]]} for model in report["multivariable"]]


def subgroup_rows(report, plan):
    """The subgroup models, labelled with the plan's cut-off (e.g. "max diameter > 20 mm")."""
    return [{"name": row["name"], "label": term_label(row["subgroup"], plan).lower(),
             "endpoint": row["endpoint"].upper(), **cells(row, plan)} for row in report["subgroups"]]


def endpoint_rows(report):
    """DFS and OS: n, events, median (CI) and the survival rates of the plan."""
    return [{"endpoint": endpoint, "label": ENDPOINT_LABELS[endpoint], "n": s["n"], "events": s["events"],
             "median": median_text(s["median_months"], s["estimable"]),
             "median_in_months": s["estimable"] and s["median_months"] is not None,
             "median_ci": interval(s["median_ci95"]), "estimable": s["estimable"], "reason": s["reason"],
             "rates": [{"months": r["months"], "survival": percent(r["survival"]), "ci": interval(r["ci95"], percent)}
                       for r in s["rates"]]}
            for endpoint, s in report["endpoints"].items()]


def cohort_steps(cohort, plan):
    """The cohort flow's exclusions, each criterion as a person reads it (analysis/frame.py
    names them in English with the plan's values; the same values fill the translated text)."""
    histologies, margins = "/".join(plan.histologies), "/".join(plan.complete_margins)
    period = f"{plan.period_start.isoformat()}..{plan.period_end.isoformat()}"
    labels = {
        NO_METASTASECTOMY: _("no metastasectomy"),
        f"histology not {histologies}": _("histology not %(histologies)s") % {"histologies": histologies},
        f"index margin not {margins}": _("index margin not %(margins)s") % {"margins": margins},
        "extrapulmonary disease at PM": _("extrapulmonary disease at PM"),
        f"index date outside {period}": _("index date outside %(period)s") % {"period": period},
    }
    return [{**step, "label": str(labels.get(step["criterion"], step["criterion"]))} for step in cohort["excluded"]]


def plan_changes(plan):
    """[(parameter, value, default)] where the plan differs from endpoints.md (name aside)."""
    defaults, values = AnalysisPlan().to_dict(), plan.to_dict()
    return [(name, values[name], defaults[name]) for name in values if name != "name" and values[name] != defaults[name]]


def scope_label(centres):
    if centres is None:
        return _("All centres (pooled)")
    return (_("Centre %(codes)s") if len(centres) == 1 else _("Centres %(codes)s")) % {"codes": ", ".join(centres)}


def readable(text, plan):
    """A message of the statistics with every factor or Cox term id ("size_gt_2cm",
    "histology_SyS") replaced by its label under the plan ("Largest lesion > 20 mm")."""
    if not text:
        return text
    ids = sorted({*factors.FACTORS, *(f"histology_{h}" for h in plan.histologies)}, key=len, reverse=True)
    return re.sub(r"\b(" + "|".join(map(re.escape, ids)) + r")\b", lambda m: str(factors.label(m[1], plan)), text)


def cells(row, plan=None):
    """Display strings of one model row (its reason in the plan's words when the plan is given)."""
    return {"hr": format_hr(row), "p": format_p(row.get("p")), "logrank_p": format_p(row.get("logrank_p")),
            "n": row.get("n"), "events": row.get("events"), "estimable": row.get("estimable"),
            "reason": readable(row.get("reason"), plan) if plan else row.get("reason")}


def median_text(median, estimable=True):
    """A KM median: "—" without an estimate, "not reached" when the curve stays above 50 %."""
    if not estimable:
        return "—"
    return str(_("not reached")) if median is None else months(median)


def months(value):
    return "—" if value is None else f"{value:.1f}"


def interval(pair, fmt=months):
    low, high = pair or (None, None)
    return "" if low is None and high is None else f"{fmt(low)}–{fmt(high)}"


def percent(value):
    return "—" if value is None else f"{100 * value:.1f} %"


TABLE1_LABELS = {
    "sex": _("Sex"), "age_at_pm": _("Age at PM, years"), "primary_site": _("Primary site"), "grade": _("Grade"),
    "dfi_months": _("Disease-free interval (DFI), months"), "synchronous": _("Synchronous"),
    "tfi_months": _("Treatment-free interval (TFI), months"),
    "max_lesion_diameter_mm": _("Max lesion diameter, mm"), "lesions_resected": _("Lesions resected"),
    "bilateral": _("Bilateral"), "approach": _("Approach"),
    "resection_type": _("Resection type"), "peri_pm_systemic": _("Peri-PM systemic therapy"),
    "major_complication": _("Clavien-Dindo ≥ IIIa"),
}
LEVEL_WORDS = {"yes": _("yes"), "no": _("no"), "unknown": _("unknown")}


LEVEL_LABELS = {variable: dict(choices) for variable, choices in (
    ("sex", codes.SEX), ("primary_site", codes.PRIMARY_SITE), ("grade", codes.GRADE), ("approach", codes.APPROACH),
    ("resection_type", codes.RESECTION_TYPE))}


def table1_label(variable, plan):
    """A variable of Table 1 as its heading says it; the factors with a cut-off show the plan's value."""
    if variable in factors.CUT_OFFS:
        return factors.label(variable, plan)
    return str(TABLE1_LABELS.get(variable, variable))


def table1_rows(table1, plan):
    """Table 1 as display rows: a heading per variable, then one row per level, or one row with
    the median (IQR) of a continuous variable (under its own heading, never the previous one's)."""
    groups = [g["group"] for g in table1["groups"]]
    out, previous = [], None
    for row in table1["rows"]:
        if row["variable"] != previous:
            out.append({"label": table1_label(row["variable"], plan), "heading": True, "cells": []})
            previous = row["variable"]
        if row["type"] == "continuous":
            values = [row["values"][g] for g in groups]
            out.append({"label": str(_("median (IQR)")), "heading": False, "cells": [
                str(SUPPRESSED) if v.get("suppressed") else "—" if v["median"] is None
                else f"{v['median']:.1f} ({v['q1']:.1f}–{v['q3']:.1f})" for v in values]})
            continue
        level = LEVEL_LABELS.get(row["variable"], {}).get(row["level"]) or LEVEL_WORDS.get(row["level"], row["level"])
        out.append({"label": str(level), "heading": False, "cells": [_count(row["values"][g]) for g in groups]})
    return out


SUPPRESSED = _("withheld (small group)")


def _count(value):
    """"12 (34 %)": a count with its share of the column."""
    if value.get("suppressed"):
        return str(SUPPRESSED)
    return f"{value['n']} ({'—' if value['percent'] is None else format(value['percent'], '.0f')} %)"


# --- downloads ----------------------------------------------------------------------------------

def download_name(what, results_, centres, extension):
    """A download's file name after what it shows: "km_dfs_by-size-gt-30mm_MUC_2026-12-05.svg"
    (the curves' stratification for the figures and tables that have one, a single centre's
    scope, the day of the download)."""
    plan = AnalysisPlan.from_dict(results_["report"]["plan"])
    parts = [what.replace("-", "_")]
    factor = results_["strata"]["factor"]
    if factor != "none" and what.split("-")[0] in ("km", "risk", "survival"):
        parts.append("by-" + factor_slug(factor, plan))
    if centres:
        parts.append("-".join(centres))
    if results_["report"].get("freeze"):
        parts.append("freeze-" + results_["report"]["freeze"]["name"])
    parts.append(timezone.localdate().isoformat())
    return f"{'_'.join(parts)}.{extension}"


def factor_slug(factor, plan):
    """A stratification factor in a file name, with the plan's cut-off."""
    cut = factors.cut_text
    return {"size_gt_2cm": f"size-gt-{cut(plan.size_cutoff_mm)}mm",
            "multiple_lesions": f"lesions-gt-{plan.lesions_cutoff}",
            "tfi_gt_12m": f"tfi-gt-{cut(plan.tfi_cutoff_months)}months"}.get(factor, factor.replace("_", "-"))


def _km_csv(report, strata):
    columns = ["time", "at_risk", "events", "censored", "survival", "ci_lower", "ci_upper"]
    rows = [[endpoint, group["label"], *values] for endpoint, part in strata["endpoints"].items()
            for group in part["groups"] for values in zip(*(group["curve"][k] for k in columns))]
    return ["endpoint", "group", "time_months", *columns[1:]], rows


def _risk_csv(report, strata, options=None):
    """The numbers at risk at the figure's ticks (its time axis: from the data, or as the PI set it)."""
    options = options or {}
    rows = []
    for endpoint, part in strata["endpoints"].items():
        _horizon, ticks = time_axis(part["groups"], options.get("xmax"), options.get("xstep"))
        rows += [[endpoint, g["label"], when, count] for g in part["groups"]
                 for when, count in zip(ticks, at_risk(g["curve"], ticks))]
    return ["endpoint", "group", "months", "at_risk"], rows


def _models_csv(name):
    def rows(report, strata):
        header = ["endpoint", "factor", "hr", "ci_lower", "ci_upper", "p", "logrank_p", "n", "events", "reason"]
        return header, [[r["endpoint"], r["factor"], r["hr"], *r["ci95"], r["p"], r["logrank_p"], r["n"],
                         r["events"], r["reason"]] for r in report[name]]
    return rows


def _multivariable_csv(report, strata):
    return (["endpoint", "factor", "hr", "ci_lower", "ci_upper", "p", "n", "events"],
            [[m["endpoint"], t["factor"], t["hr"], *t["ci95"], t["p"], m["n"], m["events"]]
             for m in report["multivariable"] for t in m["terms"]])


def _cohort_csv(report, strata):
    cohort = report["cohort"]
    return ["step", "patients"], ([["registered", cohort["registered"]]]
                                  + [[f"excluded: {s['criterion']}", s["n"]] for s in cohort["excluded"]]
                                  + [["analysed", cohort["analysed"]]])


def _table1_csv(report, strata):
    """Long format: one row per variable, level and statistic; one column per group."""
    groups = [g["group"] for g in report["table1"]["groups"]]
    rows = []
    for row in report["table1"]["rows"]:
        if row["type"] == "continuous":
            rows += [[row["variable"], "", stat] + [row["values"][g][stat] for g in groups]
                     for stat in ("n", "median", "q1", "q3")]
        else:
            rows += [[row["variable"], row["level"], stat] + [row["values"][g][stat] for g in groups]
                     for stat in ("n", "percent")]
    return ["variable", "level", "statistic", *groups], rows


CSV = {"km": _km_csv, "risk": _risk_csv, "univariable": _models_csv("univariable"),
       "multivariable": _multivariable_csv, "subgroups": _models_csv("subgroups"), "cohort": _cohort_csv,
       "table1": _table1_csv}
CSV_TABLES = tuple(CSV)


def csv_rows(results_, table, options=None):
    """(header, rows) of one numbers table for CSV download (a name of CSV_TABLES); the numbers at
    risk follow the figures' time axis (`options`: compute.figure_options)."""
    if table == "risk":
        return _risk_csv(results_["report"], results_["strata"], options)
    return CSV[table](results_["report"], results_["strata"])


def csv_text(header, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if value is None else value for value in row] for row in rows)
    return buffer.getvalue()


def json_text(results_):
    """The report and the strata as one JSON document (what every figure on the page shows)."""
    return json.dumps({"report": results_["report"], "strata": results_["strata"]}, indent=1, allow_nan=False)


# --- endpoints.md v2 sections -------------------------------------------------------------------

METHOD_LABELS = {"naive": _("Naive (exposure at the index date; immortal-time biased)"),
                 "landmark": _("Landmark at %(months)s months"),
                 "time_dependent": _("Time-dependent Cox (quote this)")}
POPULATION_LABELS = {"all": _("All patients"), "size_gt_cutoff": _("Largest lesion above the size cut-off")}


def warnings_for(report, prefix=""):
    """The report's warnings whose model starts with ``prefix`` ("therapy_effects", "dfs:", ...),
    their messages in the plan's words (readable)."""
    plan = AnalysisPlan.from_dict(report["plan"])
    return [{**w, "message": readable(w["message"], plan)} for w in report.get("warnings", [])
            if (w.get("model") or "").startswith(prefix)]


def therapy_rows(report):
    """The three estimates of peri-PM systemic therapy, per population and endpoint."""
    plan = AnalysisPlan.from_dict(report["plan"])
    rows = []
    for row in report.get("therapy_effects", []):
        label = METHOD_LABELS[row["method"]]
        if row["method"] == "landmark":
            label = label % {"months": f"{row['landmark_months']:g}"}
        rows.append({"population": POPULATION_LABELS[row["population"]], "endpoint": row["endpoint"].upper(),
                     "method": label, "biased": row.get("biased", False), **cells(row, plan)})
    return rows


def model_label(model, plan):
    """A Cox model as the PI reads it: the multivariable one, or a factor's univariable one."""
    if model == "multivariable":
        return _("multivariable")
    return _("univariable: %(factor)s") % {"factor": term_label(model, plan)}


def ph_rows(report):
    """cox.zph per model and term; ``violated`` marks p < 0.05 (not the global row)."""
    plan = AnalysisPlan.from_dict(report["plan"])
    return [{"endpoint": row["endpoint"].upper(), "model": model_label(row["model"], plan),
             "term": _("global test") if row["term"] == "GLOBAL" else term_label(row["term"], plan),
             "chisq": f"{row['chisq']:.2f}" if row["chisq"] is not None else "—", "df": row["df"],
             "p": format_p(row["p"]),
             "violated": row["term"] != "GLOBAL" and row["p"] is not None and row["p"] < 0.05}
            for row in report.get("ph_tests", [])]


def heterogeneity_rows(report):
    plan = AnalysisPlan.from_dict(report["plan"])
    return [{"endpoint": row["endpoint"].upper(), "factor": term_label(row["factor"], plan),
             "q": f"{row['q']:.2f}" if row["q"] is not None else "—", "df": row["df"], "p": format_p(row["p"]),
             "i2": percent(row["i2"])} for row in report.get("centre_effects", {}).get("heterogeneity", [])]


def cif_rows(report, plan):
    """Cumulative incidence at the plan's times: recurrence and death without recurrence, overall,
    recurrence by site, and both by each factor's level."""
    section = report.get("competing_risks") or {}
    rows = []

    def add(label, result, group=""):
        rows.append({"label": label, "group": group, "events": result["events"],
                     "at": [{"months": months_, "estimate": percent(value[0]), "ci": interval(value[1:], percent)}
                            for months_, value in result["cif"].items()]})
    for key, label in (("recurrence", _("Recurrence")), ("death_without_recurrence", _("Death without recurrence"))):
        if key in section:
            add(label, section[key])
    by_site = section.get("by_site") or {}
    for key, label in (("lung", _("Recurrence in the lung")), ("elsewhere", _("Recurrence elsewhere"))):
        if key in by_site:
            add(label, by_site[key], _("by site"))
    for row in section.get("by_factor", []):
        group = factors.levels(row["factor"], plan)[row["level"]]  # e.g. "TFI > 12 months"
        add(_("Recurrence"), row["recurrence"], group)
        add(_("Death without recurrence"), row["death_without_recurrence"], group)
    return rows


def cause_specific_rows(report, plan):
    """The cause-specific Cox model of recurrence (death without recurrence censors)."""
    fit = (report.get("competing_risks") or {}).get("cause_specific_cox") or {}
    if not fit.get("estimable"):
        return []
    return [{"label": term_label(term["term"], plan), "hr": format_hr({**term, "estimable": True}),
             "p": format_p(term["p"])} for term in fit["terms"]]
