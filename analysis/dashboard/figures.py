"""The figures of the dashboard as plain data for analysis/plots.py, and drawn for the page."""
import math

from django.core.cache import cache
from django.utils.translation import gettext as _

from analysis import provenance
from analysis.dashboard.compute import CACHE_SECONDS, ENDPOINT_LABELS, min_stratum, time_axis
from analysis.dashboard.tables import interval, median_text, percent, term_label
from analysis.plan import ENDPOINTS, AnalysisPlan
from analysis.plots import at_risk


def km_figure(results_, endpoint, options=None):
    """The data of one Kaplan-Meier figure (analysis/plots.py draws it). ``options``: see
    compute.figure_options (the time axis and the CI bands)."""
    options = options or {}
    strata = results_["strata"]
    part = strata["endpoints"][endpoint]
    horizon, ticks = time_axis(part["groups"], options.get("xmax"), options.get("xstep"))
    groups = [{**group, "at_risk": at_risk(group["curve"], ticks)} for group in part["groups"]]
    bands = {"on": True, "off": False}.get(options.get("bands"), len(groups) <= 2)
    logrank = part["logrank"] or {}
    title = str(ENDPOINT_LABELS[endpoint]) if strata["factor"] == "none" else \
        _("%(endpoint)s by %(factor)s") % {"endpoint": ENDPOINT_LABELS[endpoint], "factor": strata["label"]}
    return {"title": title, "endpoint": endpoint,
            "endpoint_label": endpoint.upper(),
            "horizon": horizon, "risk_times": ticks, "groups": groups, "bands": bands,
            "logrank_p": logrank.get("p") if logrank.get("estimable") else None}


def forest_figure(results_, model):
    """Forest data: "dfs"/"os" (univariable) or "multivariable" (the plan's DFS model)."""
    report = results_["report"]
    plan = AnalysisPlan.from_dict(report["plan"])
    if model == "multivariable" and not report["multivariable"]:
        return {"title": _("No multivariable model in this plan"), "rows": []}
    if model == "multivariable":
        fit = report["multivariable"][0]
        rows = [{**term, "estimable": fit["estimable"]} for term in fit["terms"]]
        title = _("Multivariable Cox model, DFS (n = %(n)s, %(events)s events)") % {"n": fit["n"],
                                                                                    "events": fit["events"]}
    else:
        rows = [row for row in report["univariable"] if row["endpoint"] == model]
        title = _("Univariable Cox models, %(endpoint)s") % {"endpoint": model.upper()}
    return {"title": title, "rows": [{**row, "label": term_label(row["factor"], plan)} for row in rows]}


FIGURES = {"km-dfs": ("km", "dfs"), "km-os": ("km", "os"), "forest-dfs": ("forest", "dfs"),
           "forest-os": ("forest", "os"), "forest-multivariable": ("forest", "multivariable")}


def figure(results_, name, fmt, options=None):
    """(bytes or str, content type) of a figure by name, as "svg" or "png"; its metadata name the
    data (freeze or live data version), the plan and the software (analysis.provenance)."""
    from analysis import plots

    kind, which = FIGURES[name]
    data = km_figure(results_, which, options) if kind == "km" else forest_figure(results_, which)
    data["source"] = provenance.footer(results_["report"])
    if fmt == "png":
        return (plots.km_png if kind == "km" else plots.forest_png)(data), "image/png"
    svg = (plots.km_svg if kind == "km" else plots.forest_svg)(data, ident=name)
    return plots.with_source(svg, data["source"]), "image/svg+xml"


def page_figures(results_, options=None):
    """Every figure of the page as inline SVG with its numbers table (cached: drawing the
    curves of 10,000 patients takes longer than the rest of a cached page)."""
    options = options or {}
    key = f"{results_['figures_key']}:{options.get('xmax')}:{options.get('xstep')}:{options.get('bands')}"
    figures = cache.get(key)
    if figures is None:
        figures = draw_page_figures(results_, options)
        cache.set(key, figures, CACHE_SECONDS)
    return figures


def draw_page_figures(results_, options=None):
    from analysis import plots

    km = []
    for endpoint in ENDPOINTS:
        data = km_figure(results_, endpoint, options)
        km.append((endpoint, data["title"], plots.km_svg(data, ident=f"km-{endpoint}"), km_summary_rows(data)))
    forests = {name: forest_figure(results_, name) for name in ("dfs", "os", "multivariable")}
    report = results_["report"]
    return {"km": km,
            "forest_panels": [(name, forests[name]["title"], plots.forest_svg(forests[name], ident=f"forest-{name}"))
                              for name in ("dfs", "os")],
            "forest_multivariable": plots.forest_svg(forests["multivariable"], ident="forest-multivariable"),
            "centre_forests": [(endpoint, plots.forest_svg(centre_forest(report, endpoint), ident=f"centres-{endpoint}"))
                               for endpoint in ENDPOINTS],
            "cif_svg": plots.cif_svg(cif_figure(report, options), ident="cif"),
            "ph_residual_svgs": [plots.residual_svg(residual, ident=f"zph-{index}")
                                 for index, residual in enumerate(residual_figures(report))]}


def centre_forest(report, endpoint):
    """Per-centre HRs of the plan's centre factor (analysis/plots.py forest data)."""
    rows = [{**row, "label": row["centre"], "p": None}
            for row in report.get("centre_effects", {}).get("rows", []) if row["endpoint"] == endpoint]
    factor = term_label(rows[0]["factor"], AnalysisPlan.from_dict(report["plan"])) if rows else ""
    return {"title": _("%(endpoint)s: %(factor)s by centre") % {"endpoint": endpoint.upper(), "factor": factor},
            "rows": rows}


def cif_figure(report, options=None):
    """Cumulative incidence of recurrence and of death without recurrence (Aalen-Johansen), on the
    same time axis as the Kaplan-Meier figures (from the data, or as the PI set it)."""
    options = options or {}
    section = report.get("competing_risks") or {}
    curves = [{"label": label, **section[key]["curve"]}
              for key, label in (("recurrence", _("Recurrence")),
                                 ("death_without_recurrence", _("Death without recurrence")))
              if key in section]
    horizon, ticks = time_axis([{"curve": curve} for curve in curves], options.get("xmax"), options.get("xstep"))
    return {"title": _("Cumulative incidence of recurrence, death without recurrence as competing event"),
            "horizon": horizon, "ticks": ticks, "curves": curves}


def residual_figures(report):
    """Scaled Schoenfeld residuals of the multivariable models' terms."""
    hr = {(m["endpoint"], t["factor"]): t["hr"] for m in report.get("multivariable", []) for t in m["terms"]}
    plan = AnalysisPlan.from_dict(report["plan"])
    return [{"title": _("%(endpoint)s multivariable: %(term)s") % {"endpoint": r["endpoint"].upper(),
                                                                    "term": term_label(r["term"], plan)},
             "time": r["time"], "scaled": r["scaled"],
             "coef": math.log(hr[(r["endpoint"], r["term"])]) if hr.get((r["endpoint"], r["term"])) else 0.0}
            for r in report.get("ph_residuals", [])]


def strata_note(strata):
    """What the curves leave out: groups under the minimum size and patients with unknown values."""
    parts = []
    if strata["hidden"] and strata["factor"] != "none":
        groups = ", ".join(g["label"] for g in strata["hidden"])
        parts.append(_("No curve drawn: fewer than %(n)s patients in %(groups)s, and the other curves "
                       "would reveal them by difference.") % {"n": min_stratum(), "groups": groups})
    elif strata["hidden"]:  # the whole cohort: its size is no secret (the cohort flow shows it)
        group = strata["hidden"][0]
        parts.append(_("Not drawn, fewer than %(n)s patients: %(group)s (n = %(size)s).")
                     % {"n": min_stratum(), "group": group["label"], "size": group["n"]})
    if strata["unknown"]:
        parts.append(_("Not in the curves: %(n)s patients with unknown %(factor)s.")
                     % {"n": strata["unknown"], "factor": strata["label"]})
    return " ".join(parts)


def km_summary_rows(figure_data):
    """Per group: n, events, median (CI), and S(t) with CI and numbers at the risk times."""
    rows = []
    for group in figure_data["groups"]:
        curve = group["curve"]
        at = []
        for when, count in zip(figure_data["risk_times"], group["at_risk"]):
            index = max((i for i, t in enumerate(curve["time"]) if t <= when), default=None)
            beyond = when > curve["time"][-1] if curve["time"] else True
            survival = None if index is None or beyond else curve["survival"][index]
            band = (None, None) if survival is None else (curve["ci_lower"][index], curve["ci_upper"][index])
            events = sum(e for t, e in zip(curve["time"], curve["events"]) if t <= when)
            at.append({"months": when, "at_risk": count, "events": events, "survival": percent(survival),
                       "ci": interval(band, percent)})
        rows.append({"label": group["label"], "n": group["n"], "events": group["events"],
                     "median": median_text(group["median"]),
                     "median_ci": interval(group["median_ci95"]), "at": at})
    return rows
