"""Plain-text rendering of the survival report, laid out like a paper's tables, and the
--plan and --freeze options shared by the analysis commands."""
from pathlib import Path

from django.core.management.base import CommandError

from analysis.plan import AnalysisPlan, PlanError
from registry import selectors


def plan_from_file(path):
    """The plan in a JSON file (None: the defaults of endpoints.md); CommandError if unusable."""
    if not path:
        return AnalysisPlan()
    try:
        return AnalysisPlan.from_json(Path(path).read_text())
    except OSError as error:
        raise CommandError(f"Cannot read the plan {path}: {error.strerror}") from error
    except PlanError as error:
        raise CommandError(f"{path}: {error}") from error


def freeze_from_name(name):
    """The data freeze named (None without a name: the live registry); CommandError if there is none."""
    if not name:
        return None
    freeze = selectors.freeze_named(name)
    if freeze is None:
        raise CommandError(f"There is no freeze {name!r} (manage.py freeze_create makes one).")
    return freeze


def months(value):
    return "—" if value is None else f"{value:.1f}"


def ci(pair, fmt=months):
    low, high = pair
    return f"({fmt(low)}–{fmt(high)})" if low is not None or high is not None else ""


def p_value(p):
    if p is None:
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def ratio(value):
    return "—" if value is None else f"{value:.2f}"


def percent(value):
    return "—" if value is None else f"{100 * value:.1f} %"


def table(header, rows):
    """Columns padded to their widest cell; the first column left-aligned, the rest right."""
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_report(report):
    """The report as text: header, cohort flow, endpoints, Table 2 (univariable), Table 3
    (multivariable), subgroup, complications, Table 1."""
    sections = [_header(report), _cohort(report), _endpoints(report), _univariable(report),
                _multivariable(report), _subgroups(report), _complications(report), _table1(report)]
    if report.get("warnings"):
        sections.insert(1, _warnings(report))
    return "\n\n".join(sections) + "\n"


def _warnings(report):
    return "Warnings\n" + "\n".join(f"- [{w['code']}] {w['message']}" for w in report["warnings"])


def _header(report):
    scope = report["scope"]
    centres = ", ".join(scope["centres_included"]) or "none"
    freeze = report.get("freeze")
    source = (f"freeze {freeze['name']} of {freeze['frozen_at']} ({freeze['rule']} records, content hash "
              f"{freeze['content_hash']}, data dictionary {freeze['dictionary_version']})" if freeze else
              f"data version {report['data_version']}, generated {report['generated_at']}")
    return (f"Survival report — plan '{report['plan']['name']}' ({report['plan_hash']}), {source}\n"
            f"Centres: {centres}")


def _cohort(report):
    cohort = report["cohort"]
    rows = [["registered", cohort["registered"]]]
    rows += [[f"  excluded: {step['criterion']}", step["n"]] for step in cohort["excluded"]]
    rows.append(["analysed", cohort["analysed"]])
    return "Cohort flow\n" + table(["", "patients"], rows)


def _endpoints(report):
    rows = []
    for name, summary in report["endpoints"].items():
        rates = [f"{percent(r['survival'])} {ci(r['ci95'], percent)}".strip() for r in summary["rates"]]
        rows.append([name.upper(), summary["n"], summary["events"],
                     f"{months(summary['median_months'])} {ci(summary['median_ci95'])}".strip(), *rates])
    first = next(iter(report["endpoints"].values()))
    header = ["endpoint", "n", "events", "median months (95% CI)"] + [f"{r['months']:g} months" for r in first["rates"]]
    follow = report["follow_up"]
    return ("Endpoints (Kaplan–Meier, log(−log) CI)\n" + table(header, rows)
            + f"\nMedian follow-up (reverse KM): {months(follow['median_months'])} months {ci(follow['median_ci95'])}")


def _hr(row):
    if not row["estimable"]:
        return "not estimable"
    firth = " Firth" if row.get("method") == "firth" else ""  # a penalised estimate under separation
    return f"{ratio(row['hr'])} {ci(row['ci95'], ratio)}{firth}"


def _univariable(report):
    by_factor = {}
    for row in report["univariable"]:
        by_factor.setdefault(row["factor"], {})[row["endpoint"]] = row
    rows = []
    for factor, endpoints in by_factor.items():
        cells = [factor]
        for endpoint in ("dfs", "os"):
            row = endpoints.get(endpoint)
            cells += [f"{row['n']}/{row['events']}", _hr(row), p_value(row["p"]), p_value(row["logrank_p"])]
        rows.append(cells)
    header = ["factor", "DFS n/ev", "DFS HR (95% CI)", "p", "log-rank p", "OS n/ev", "OS HR (95% CI)", "p", "log-rank p"]
    return "Table 2. Univariable Cox models (Efron, Wald p)\n" + table(header, rows)


def _multivariable(report):
    parts = []
    for model in report["multivariable"]:
        title = (f"Table 3. Multivariable Cox model, {model['endpoint'].upper()} "
                 f"(n = {model['n']}, events = {model['events']}, complete cases)")
        if not model["estimable"]:
            parts.append(f"{title}\n  not estimable: {model['reason']}")
            continue
        rows = [[t["factor"], f"{ratio(t['hr'])} {ci(t['ci95'], ratio)}", p_value(t["p"])] for t in model["terms"]]
        parts.append(title + "\n" + table(["factor", "HR (95% CI)", "p"], rows))
    return "\n\n".join(parts)


def _subgroups(report):
    rows = [[s["name"], s["endpoint"].upper(), f"{s['n']}/{s['events']}", _hr(s), p_value(s["p"]),
             p_value(s["logrank_p"])] for s in report["subgroups"]]
    return "Subgroups\n" + table(["subgroup", "endpoint", "n/ev", "HR (95% CI)", "p", "log-rank p"], rows)


def _complications(report):
    c = report["complications"]
    return f"Complications: {c['major']} of {c['n']} index operations with {c['definition']} ({percent(c['proportion'])})"


def _table1(report):
    t1 = report["table1"]
    groups = [g["group"] for g in t1["groups"]]
    header = ["characteristic"] + [f"{g['group']} (n = {g['n']})" for g in t1["groups"]]
    rows = []
    for row in t1["rows"]:
        if row["type"] == "continuous":
            label = f"{row['variable']}, median (IQR)"
            cells = [_median_iqr(row["values"][g]) for g in groups]
        else:
            label = f"{row['variable']}: {row['level']}"
            cells = [_count(row["values"][g]) for g in groups]
        rows.append([label, *cells])
    return ("Table 1. Baseline characteristics of the analysed cohort\n" + table(header, rows)
            + "\nwithheld: a count below the plan's minimum cell size, or one from which it could be derived")


def _count(value):
    return "withheld" if value.get("suppressed") else f"{value['n']} ({_pct(value['percent'])})"


def _median_iqr(value):
    if value.get("suppressed"):
        return "withheld"
    if value["median"] is None:
        return "—"
    return f"{value['median']:.1f} ({value['q1']:.1f}–{value['q3']:.1f})"


def _pct(value):
    return "—" if value is None else f"{value:.0f} %"
