"""The paper's tables from the survival report: Table 1 (baseline characteristics), Table 2
(univariable Cox models), Table 3 (multivariable Cox models) and Table 4 (the effects of peri-PM
systemic therapy), each as a journal prints it (estimates with their 95% CI, p to 3 decimals,
footnotes with n and events) and as CSV with the numbers at full precision.

Each table is plain data: {"name", "title", "header", "rows", "footnotes", "csv": (header, rows)};
a row of one cell is a heading across the table. Labels follow the active language and the plan's
cut-offs (analysis/factors.py, analysis/dashboard/tables.py).
"""
from django.utils.translation import gettext as _

from analysis.dashboard import tables as shown
from analysis.plots import format_hr, format_p


def _hr_note():
    return _("HR, hazard ratio; CI, confidence interval. Cox proportional hazards models with Efron's method "
             "for ties; Wald 95% CI and two-sided p.")


def _span(values):
    """"1,498" or "1,402–1,498": one number, or the range of several."""
    values = sorted(set(values))
    if not values:
        return "—"
    return f"{values[0]:,}" if len(values) == 1 else f"{values[0]:,}–{values[-1]:,}"


def _firth_note(rows):
    if any(row.get("method") == "firth" for row in rows):
        return [_("Firth: the ordinary fit diverged (separation); a Firth-penalised estimate with its profile "
                  "likelihood CI and p.")]
    return []


def table1(report, plan):
    """Baseline characteristics, overall and by histology (n (%) or median (IQR))."""
    groups = report["table1"]["groups"]
    header = [_("Characteristic")] + [
        _("%(group)s (n = %(n)s)") % {"group": _("All patients") if g["group"] == "overall" else g["group"],
                                      "n": f"{g['n']:,}"} for g in groups]
    rows = [[row["label"]] if row["heading"] else ["   " + row["label"], *row["cells"]]
            for row in shown.table1_rows(report["table1"], plan)]
    footnotes = [
        _("Values are n (%) of the column, or median (interquartile range) and the patients with a value. "
          "Unknown values are a level of their own, so the percentages of a characteristic add up to 100."),
        _("%(n)s of %(registered)s registered patients analysed (cohort flow: figures/cohort_flow). A count "
          "that could identify a small group is withheld, with as few others as needed to keep it so.")
        % {"n": f"{report['cohort']['analysed']:,}", "registered": f"{report['cohort']['registered']:,}"},
    ]
    return {"name": "table1", "title": _("Table 1. Baseline characteristics of the analysed patients"),
            "header": header, "rows": rows, "footnotes": footnotes, "csv": shown.CSV["table1"](report, None)}


def univariable(report, plan):
    """Every factor's univariable Cox model, DFS and OS side by side."""
    by_factor = {}
    for row in report["univariable"]:
        by_factor.setdefault(row["factor"], {})[row["endpoint"]] = row
    rows = []
    for factor, models in by_factor.items():
        cells = [shown.term_label(factor, plan)]
        for endpoint in ("dfs", "os"):
            model = models.get(endpoint, {})
            cells += [format_hr(model), format_p(model.get("p"))]
        rows.append(cells)
    counts = []
    for endpoint in ("dfs", "os"):
        models = [row for row in report["univariable"] if row["endpoint"] == endpoint and row["estimable"]]
        counts.append(_("%(endpoint)s: n = %(n)s patients, %(events)s events per model (patients with a known "
                        "value of the factor)") % {"endpoint": endpoint.upper(), "n": _span(r["n"] for r in models),
                                                   "events": _span(r["events"] for r in models)})
    header = [_("Factor"), _("DFS HR (95% CI)"), _("p"), _("OS HR (95% CI)"), _("p")]
    csv_header = ["endpoint", "factor", "label", "n", "events", "hr", "ci_lower", "ci_upper", "p", "logrank_p",
                  "method", "reason"]
    csv_rows = [[r["endpoint"], r["factor"], shown.term_label(r["factor"], plan), r["n"], r["events"], r["hr"],
                 *r["ci95"], r["p"], r["logrank_p"], r["method"], r["reason"]] for r in report["univariable"]]
    return {"name": "table2_univariable", "title": _("Table 2. Univariable Cox models of disease-free (DFS) and "
                                                      "overall survival (OS)"),
            "header": header, "rows": rows,
            "footnotes": [_hr_note(), "; ".join(counts) + "."] + _firth_note(report["univariable"]),
            "csv": (csv_header, csv_rows)}


def multivariable(report, plan):
    """The plan's multivariable Cox models, one block per endpoint."""
    rows, footnotes, csv_rows = [], [_hr_note()], []
    for model in report["multivariable"]:
        endpoint = model["endpoint"].upper()
        rows.append([_("%(endpoint)s (n = %(n)s, %(events)s events)") % {
            "endpoint": endpoint, "n": f"{model['n']:,}", "events": f"{model['events']:,}"}])
        if not model["estimable"]:
            rows.append([_("not estimable: %(reason)s") % {"reason": shown.readable(model["reason"], plan)}])
        for term in model["terms"]:
            rows.append([shown.term_label(term["factor"], plan), format_hr({**term, "estimable": model["estimable"]}),
                         format_p(term["p"])])
            csv_rows.append([model["endpoint"], term["factor"], shown.term_label(term["factor"], plan), model["n"],
                             model["events"], term["hr"], *term["ci95"], term["p"], term["method"]])
        footnotes.append(_("%(endpoint)s: %(n)s patients with every covariate known (complete cases), %(events)s "
                           "events; covariates: %(covariates)s.") % {
            "endpoint": endpoint, "n": f"{model['n']:,}", "events": f"{model['events']:,}",
            "covariates": ", ".join(str(shown.term_label(c, plan)) for c in model["covariates"])})
    csv_header = ["endpoint", "factor", "label", "n", "events", "hr", "ci_lower", "ci_upper", "p", "method"]
    return {"name": "table3_multivariable", "title": _("Table 3. Multivariable Cox models"),
            "header": [_("Factor"), _("HR (95% CI)"), _("p")], "rows": rows,
            "footnotes": footnotes + _firth_note([t for m in report["multivariable"] for t in m["terms"]]),
            "csv": (csv_header, csv_rows)}


def therapy_effects(report, plan):
    """Peri-PM systemic therapy: the naive, landmark and time-dependent estimates."""
    effects = report.get("therapy_effects", [])
    populations = {"all": _("All patients"), "size_gt_cutoff": shown.term_label("size_gt_2cm", plan)}
    methods = {"naive": _("Naive"), "landmark": _("Landmark at %(months)s months") % {
        "months": f"{plan.landmark_months:g}"}, "time_dependent": _("Time-dependent")}
    rows = [[populations[r["population"]], r["endpoint"].upper(), methods[r["method"]],
             f"{r['n']:,} ({r['events']:,})", format_hr(r), format_p(r["p"])] for r in effects]
    footnotes = [
        _hr_note(),
        _("Naive: exposure known at the index date, which counts the time before an adjuvant therapy started as "
          "treated (immortal-time bias). Landmark: patients event-free and followed beyond %(months)s months, "
          "exposed if the therapy started by then, time from the landmark. Time-dependent: exposure switches on "
          "when the therapy starts (counting-process Cox model).") % {"months": f"{plan.landmark_months:g}"},
        _("n (events): the patients and events each estimate is based on."),
    ]
    csv_header = ["population", "endpoint", "method", "n", "events", "hr", "ci_lower", "ci_upper", "p", "reason"]
    csv_rows = [[r["population"], r["endpoint"], r["method"], r["n"], r["events"], r["hr"], *r["ci95"], r["p"],
                 r["reason"]] for r in effects]
    return {"name": "table4_therapy_effects", "title": _("Table 4. Peri-PM systemic therapy: hazard ratios without "
                                                          "and with correction for immortal time"),
            "header": [_("Patients"), _("Endpoint"), _("Estimate"), _("n (events)"), _("HR (95% CI)"), _("p")],
            "rows": rows, "footnotes": footnotes, "csv": (csv_header, csv_rows)}


TABLES = (table1, univariable, multivariable, therapy_effects)


def paper_tables(report, plan):
    return [make(report, plan) for make in TABLES]
