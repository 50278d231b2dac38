"""The paper pack of a data freeze under an analysis plan: one zip with everything a manuscript
needs, computed from the freeze alone.

    result = paper_pack(freeze=freeze, plan=plan, out="pack.zip")
    result.sha256, result.name

The archive holds one folder, ``paper-pack_<freeze>_<plan hash>/`` (and the centres, when narrowed):
- README.txt: what the pack is, its provenance, how to reproduce it;
- methods.md and methods.docx: the methods paragraph (analysis/paper/methods.py);
- report.json: the survival report of the freeze (as ``survival_report --freeze NAME --json``), and
  plan.json: the plan;
- tables/: Table 1 and the Cox tables (univariable, multivariable, therapy effects) as .docx and .csv;
- figures/: every Kaplan-Meier figure (DFS and OS, all patients and by each multivariable covariate
  that has groups) and the cumulative incidence, and the cohort flow, as PDF and SVG, 85 and 180 mm wide;
- data/: the de-identified analysis data and its dictionary (analysis/paper/data.py);
- reproduce.R and reproduce.py: recompute the medians, rates and hazard ratios from data/ and write
  reproduced.json with the keys of report.json.

Deterministic: the report of a freeze is a function of the freeze and the plan (analysis/report.py),
every file is written with fixed metadata dated at the freeze's instant, and the zip's entries come in
a fixed order with that date (analysis/paper/archive.py), so two packs of the same freeze and plan on
the same software are the same bytes, whenever and by whomever they are made. The report is computed
in English (as every report is); the documents, figures and their labels in the plan's language.
"""
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from django.utils import translation
from django.utils.translation import gettext as _

from analysis import provenance
from analysis.dashboard import compute, csv_text
from analysis.dashboard import figures as dashboard_figures
from analysis.dashboard.tables import cohort_steps
from analysis.paper import data as pack_data
from analysis.paper import figures, methods, reproduction, tables
from analysis.paper.archive import write_zip
from analysis.paper.documents import Writer
from analysis.plan import ENDPOINTS, AnalysisPlan
from analysis.plots import at_risk
from analysis.report import frame_with_version, report_from_frame


@dataclass(frozen=True)
class PackResult:
    name: str       # the file name a download suggests
    sha256: str     # of the archive's bytes: the same for the same freeze, plan and software
    size: int
    report: dict    # the survival report the pack holds
    patient_ids: tuple  # the patients whose rows the pack's data hold


def pack_name(freeze, plan, centres=None):
    """"paper-pack_<freeze>_<plan hash>", and the centres when the pack is narrowed to some."""
    return "_".join(["paper-pack", freeze.name, plan.hash, *sorted(centres or ())])


def paper_pack(*, freeze, plan=None, out, centres=None):
    """Write the paper pack of ``freeze`` under ``plan`` (default: endpoints.md) to ``out`` (a path or a
    binary file); ``centres`` narrows it to those centre codes (None: every centre of the freeze).
    The caller decides who may have it (the pack holds row-level data: access.can_export_pooled)."""
    plan = plan or AnalysisPlan()
    with translation.override("en"):
        frame, version = frame_with_version(plan, centres=centres, freeze=freeze)
        report = report_from_frame(frame, version, plan, centres=centres, freeze=freeze)
    with translation.override(plan.language):
        entries = pack_entries(report, frame, plan, freeze)
    folder = pack_name(freeze, plan, centres)
    buffer = io.BytesIO()
    write_zip([(f"{folder}/{name}", content) for name, content in entries], buffer, freeze.created_at)
    archive = buffer.getvalue()
    if isinstance(out, (str, Path)):
        Path(out).write_bytes(archive)
    else:
        out.write(archive)
    return PackResult(name=f"{folder}.zip", sha256=hashlib.sha256(archive).hexdigest(), size=len(archive),
                      report=report, patient_ids=tuple(frame["patient_id"]))


def pack_entries(report, frame, plan, freeze):
    """[(path in the pack's folder, bytes)] in the pack's order."""
    footer = provenance.footer(report)
    csv_footer = provenance.csv_footer(report)
    software = provenance.software_text(report["software"])
    when = freeze.created_at
    entries = [("README.txt", readme(report, plan).encode())]

    entries.append(("methods.md", methods.markdown(report, plan, footer).encode()))
    writer = Writer(title=_("Methods"), footer=footer, language=plan.language, when=when)
    writer.heading(_("Methods"))
    for heading, text in methods.paragraphs(report, plan):
        writer.paragraph(f"**{heading}.** {text}")
    entries.append(("methods.docx", writer.bytes()))
    entries.append(("report.json", json.dumps(report, indent=1, allow_nan=False).encode()))
    entries.append(("plan.json", plan.to_json(indent=2).encode()))

    for table in tables.paper_tables(report, plan):
        writer = Writer(title=table["title"], footer=footer, language=plan.language, when=when)
        writer.table(table["title"], table["header"], table["rows"], table["footnotes"])
        entries.append((f"tables/{table['name']}.docx", writer.bytes()))
        entries.append((f"tables/{table['name']}.csv", (csv_text(*table["csv"]) + csv_footer + "\n").encode()))

    for name, title, draw, args in figure_list(report, frame, plan):
        for width in figures.WIDTHS_MM:
            files = figures.render(draw, *args, width, title=title, footer=footer, software=software)
            entries += [(f"figures/{name}_{width}mm.{fmt}", content) for fmt, content in files.items()]

    data = pack_data.analysis_data(frame, plan)
    entries.append(("data/analysis_data.csv", pack_data.data_csv(data, csv_footer).encode()))
    entries.append(("data/data_dictionary.csv", pack_data.dictionary_csv(data, plan, csv_footer).encode()))
    entries.append(("reproduce.R", reproduction.r_script(plan).encode()))
    entries.append(("reproduce.py", reproduction.python_script().encode()))
    return entries


def figure_list(report, frame, plan):
    """[(file name, title, draw function, its arguments but the width)] of every figure."""
    overall = compute.overall_strata(report)
    strata = [("", overall)]
    analysed = frame[frame["eligible"]]
    for factor in plan.multivariable_covariates:
        if factor in compute.STRATIFY:
            strata.append((f"_by_{factor}", compute.strata_for(analysed, factor, plan)))
    listed = []
    for endpoint in ENDPOINTS:
        for suffix, stratum in strata:
            data = dashboard_figures.km_figure({"strata": stratum}, endpoint)
            listed.append((f"km_{endpoint}{suffix}", data["title"], figures.km, (data,)))
    cif = dashboard_figures.cif_figure(report)
    listed.append(("cumulative_incidence", cif["title"], figures.cif,
                   (cif, at_risk(report["curves"]["dfs"], cif["ticks"]))))
    steps = {"registered": report["cohort"]["registered"], "analysed": report["cohort"]["analysed"],
             "excluded": [{"label": step["label"], "n": step["n"]} for step in cohort_steps(report["cohort"], plan)]}
    listed.append(("cohort_flow", _("Cohort flow"), figures.flow, (steps,)))
    return listed


def readme(report, plan):
    freeze = report["freeze"]
    lines = [
        _("Paper pack: the results of the Sarcoma PM registry's data freeze %(name)s under the analysis plan "
          "“%(plan)s”.") % {"name": freeze["name"], "plan": plan.name},
        "",
        _("Data freeze: %(name)s, frozen at %(when)s; content hash (SHA-256) %(hash)s; data dictionary %(dict)s.")
        % {"name": freeze["name"], "when": freeze["frozen_at"], "hash": freeze["content_hash"],
           "dict": freeze["dictionary_version"]},
        _("Analysis plan: “%(plan)s”, hash %(hash)s (plan.json).") % {"plan": plan.name, "hash": plan.hash},
        _("Software: %(software)s.") % {"software": provenance.software_text(report["software"])},
        _("Analysed: %(analysed)s of %(registered)s registered patients.") % report["cohort"],
        "",
        _("Files:"),
        "  methods.md, methods.docx   " + _("the methods paragraph"),
        "  report.json                " + _("the survival report of the freeze (every number)"),
        "  plan.json                  " + _("the analysis plan"),
        "  tables/                    " + _("Table 1 and the Cox tables, as .docx and .csv"),
        "  figures/                   " + _("Kaplan-Meier, cumulative incidence and cohort flow; PDF and SVG, "
                                            "85 and 180 mm wide"),
        "  data/analysis_data.csv     " + _("one row per registered patient (eligible = 1: analysed); "
                                            "de-identification: %(mode)s") % {"mode": plan.pack_deidentify},
        "  data/data_dictionary.csv   " + _("what each column of the data holds"),
        "  reproduce.R, reproduce.py  " + _("recompute the estimates from data/"),
        "",
        _("To reproduce: in this folder run `Rscript reproduce.R` (R with the survival package) or `python "
          "reproduce.py` (pandas and lifelines). Each writes reproduced.json: the medians with their CI, the "
          "survival rates and every univariable and multivariable hazard ratio with CI and p, under the keys of "
          "report.json (endpoints, univariable, multivariable), to 7 significant digits. A model the report "
          "fitted by Firth's method (separation: see its warnings) is an ordinary Cox model in the scripts."),
        _("CSV files end with a comment line (#) naming the data, the plan and the software."),
        "",
    ]
    return "\n".join(lines)
