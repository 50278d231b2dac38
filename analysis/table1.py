"""Table 1 of the report: baseline characteristics of the analysed cohort, overall and by
histology. Categorical variables as counts and % of the group (unknown shown as its own level
"unknown", so the percentages of a variable add up to 100); continuous ones as median, IQR
(pandas' linear interpolation, R's type 7) and the number of patients with a value."""
import pandas as pd
from django.conf import settings

from registry import codes

# (frame column, kind, levels in display order); booleans show "yes" / "no".
VARIABLES = [
    ("sex", "categorical", [c for c, _ in codes.SEX]),
    ("age_at_pm", "continuous", None),
    ("primary_site", "categorical", [c for c, _ in codes.PRIMARY_SITE]),
    ("grade", "categorical", [c for c, _ in codes.GRADE]),
    ("dfi_months", "continuous", None),
    ("synchronous", "binary", None),
    ("tfi_months", "continuous", None),
    ("tfi_gt_12m", "binary", None),
    ("max_lesion_diameter_mm", "continuous", None),
    ("size_gt_2cm", "binary", None),
    ("lesions_resected", "continuous", None),
    ("multiple_lesions", "binary", None),
    ("bilateral", "binary", None),
    ("approach", "categorical", [c for c, _ in codes.APPROACH]),
    ("resection_type", "categorical", [c for c, _ in codes.RESECTION_TYPE]),
    ("peri_pm_systemic", "binary", None),
    ("major_complication", "binary", None),
]
UNKNOWN = "unknown"


def min_cell_count():
    """The smallest group any aggregate output may show (settings.DASHBOARD_MIN_STRATUM, default 5):
    Table 1's cells, the report's estimates and the dashboard's curves."""
    return getattr(settings, "DASHBOARD_MIN_STRATUM", 5)


def table1(frame, histologies, *, min_count=1):
    """{"groups": [{"group", "n"}], "rows": [...]} for the analysed patients in ``frame``.

    Each row: ``variable``, ``type`` ("categorical" / "continuous"), for categorical rows a
    ``level``, and ``values``: {group: {"n", "percent"}} or {group: {"n", "missing", "median",
    "q1", "q3"}}. Groups: "overall", then each histology of the plan (in plan order).

    Small cells are withheld (``suppressed``: True, numbers None): a count from 1 to min_count - 1,
    and the fewest others from which it could be derived (see _suppress_small_cells); a continuous
    variable is withheld in a group with fewer than min_count values.
    """
    groups = [("overall", frame)] + [(h, frame[frame["histology"] == h]) for h in histologies]
    rows = []
    for column, kind, levels in VARIABLES:
        if kind == "continuous":
            rows.append({"variable": column, "type": "continuous",
                         "values": {name: _continuous(part[column]) for name, part in groups}})
            continue
        values = {name: _categories(part[column], kind) for name, part in groups}
        shown = ["yes", "no"] if kind == "binary" else list(levels)
        if any(UNKNOWN in v for v in values.values()):
            shown.append(UNKNOWN)
        for level in shown:
            rows.append({"variable": column, "type": "categorical", "level": level,
                         "values": {name: _share(values[name].get(level, 0), len(part))
                                    for name, part in groups}})
    _suppress_small_cells(rows, min_count)
    return {"groups": [{"group": name, "n": int(len(part))} for name, part in groups], "rows": rows}


def _suppress_small_cells(rows, min_count):
    """Withhold every count from 1 to min_count - 1 (primary), then as few others as needed so
    that none can be derived back (complementary): a group's column adds up to its n and a level's
    row of groups adds up to the overall count, so neither may have exactly one withheld cell."""
    cells = {}  # (variable, level, group) -> count, categorical rows only
    for row in rows:
        if row["type"] == "categorical":
            for group, value in row["values"].items():
                cells[(row["variable"], row["level"], group)] = value["n"]
    hidden = {key for key, n in cells.items() if 0 < n < min_count}
    lines = {}  # every set of cells that adds up to a shown total
    for (variable, level, group) in cells:
        lines.setdefault(("column", variable, group), []).append((variable, level, group))
        lines.setdefault(("row", variable, level), []).append((variable, level, group))
    changed = True
    while changed:
        changed = False
        for members in lines.values():
            withheld = [key for key in members if key in hidden]
            shown = sorted((cells[key], key) for key in members if key not in hidden and cells[key] > 0)
            if len(withheld) == 1 and shown:
                hidden.add(shown[0][1])  # the smallest other count, so the withheld one stays unknown
                changed = True
    for row in rows:
        if row["type"] == "categorical":
            row["values"] = {group: {"n": None, "percent": None, "suppressed": True}
                             if (row["variable"], row["level"], group) in hidden else value
                             for group, value in row["values"].items()}
        else:
            row["values"] = {group: {**{key: None for key in value}, "suppressed": True}
                             if 0 < value["n"] < min_count else value for group, value in row["values"].items()}


def _categories(series, kind):
    """{level: count}; booleans as yes/no, missing as "unknown" (a loop over the distinct
    values only: mapping every row costs a third of a second at 10,000 patients)."""
    counts = {}
    for level, count in series.value_counts(dropna=False).items():
        if pd.isna(level):
            key = UNKNOWN
        else:
            key = ("yes" if bool(level) else "no") if kind == "binary" else str(level)
        counts[key] = counts.get(key, 0) + int(count)
    return counts


def _share(count, total):
    return {"n": count, "percent": 100.0 * count / total if total else None}


def _continuous(series):
    values = pd.to_numeric(series, errors="coerce").astype(float).dropna()
    if values.empty:
        return {"n": 0, "missing": int(len(series)), "median": None, "q1": None, "q3": None}
    q1, median, q3 = values.quantile([0.25, 0.5, 0.75]).tolist()
    return {"n": int(len(values)), "missing": int(len(series) - len(values)),
            "median": float(median), "q1": float(q1), "q3": float(q3)}
