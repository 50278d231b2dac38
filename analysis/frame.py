"""The analysis frame: the registry as one row per patient, with the endpoints and derived
variables of ../shared/spec/endpoints.md computed under an analysis plan.

Reads a fixed number of queries whatever the number of patients: one ``values_list`` per table,
each restricted to the patient scope by a subquery (plus at most one query for the user's
memberships), or one query for a data freeze's cases (registry.selectors.FrozenRows, the same rows
as they were frozen); everything else is vectorised pandas.

Conventions beyond endpoints.md (stated here because results depend on them):
- A patient without any metastasectomy has no index date: no endpoint can be derived, so
  ``eligible`` is False with ``exclusion_reason`` "no metastasectomy", checked before the
  study-cohort criteria of the plan.
- TFI (endpoints.md v2): only treatments that ended on or before lung_mets_diagnosis_date count
  (primary surgery, radiotherapy end and systemic therapy end alike): it is the interval from the
  *last treatment before the lung metastases*, and a primary resected after them (synchronous)
  leaves TFI 0. A systemic therapy that started on or before that date and ended after it means
  the patient was still on treatment: TFI 0. A treatment whose end is unknown makes TFI unknown
  (NaN), not 0: a blank primary surgery date (the dictionary has no "not resected" code, so blank
  is unknown, not "no surgery"), radiotherapy given (neoadjuvant/adjuvant) without an end date, a
  systemic therapy started by then without an end date. Radiotherapy "none" or blank counts as
  not given. A patient without a primary-tumour record (required by the dictionary, so incomplete
  data) has TFI unknown too.
- Missing-data codes (registry.codes.MISSING_CODES) are missing values in every column: a coded
  field is empty in the registry, so it is NaN/None here, and every model drops it (complete
  cases, n stated per model). For the TFI (endpoints.md v2) a treatment marked "not done" (ND on
  its date: the primary's surgery_date, the radiotherapy_end_date, a systemic therapy's end_date)
  is ignored: no surgery, no radiotherapy, and such a systemic therapy is left out of every
  derivation (it was not given: no TFI, no peri-PM therapy, no last known date). "Unknown" (UNK)
  and "not applicable" (NA) on those dates leave the date unknown, as a blank does: a treatment
  that happened with its end unknown makes TFI missing, not 0. A code on radiotherapy itself
  counts as not given, as a blank does.
- ``peri_pm_systemic_start_months``: months from the index date to the start of the earliest
  line that makes peri_pm_systemic true (negative for neoadjuvant), for the time-dependent and
  landmark estimates; NaN without one. ``first_recurrence_site``: the site of the first
  recurrence on or after the index date (None without one), for the competing-risks analysis.
- Peri-PM window: a pm_neoadjuvant line starting 0..window months before the index date, or a
  pm_adjuvant line starting 0..window months after it; both ends included, months = days /
  (365.25/12), so the default 6 months is 182.625 days (182 days in, 183 days out).
- Events dated before the index date (impossible under the registry's rules, possible in
  imported legacy data) are ignored for recurrence; such a death is kept (time < 0 is then the
  statistics' problem to refuse, not silently a censoring).
"""
import numpy as np
import pandas as pd

from analysis import factors
from analysis.factors import CUT_OFFS
from analysis.plan import AnalysisPlan
from registry import access, codes, selectors
from registry.index_date import index_rows

DAYS_PER_MONTH = 365.25 / 12

COLUMNS = [
    "patient_id", "centre", "histology", "sex", "age_at_pm", "index_date",
    "os_months", "os_event", "dfs_months", "dfs_event",
    "max_lesion_diameter_mm", "size_gt_2cm", "lesions_resected", "multiple_lesions",
    "tfi_months", "tfi_gt_12m", "dfi_months", "synchronous",
    "grade", "primary_site", "bilateral", "approach", "resection_type",
    "peri_pm_systemic", "peri_pm_systemic_start_months", "first_recurrence_site",
    "major_complication", "eligible", "exclusion_reason",
]

NO_METASTASECTOMY = "no metastasectomy"

# (frame name, column of registry.frozen.columns) per table; dates are parsed after loading.
_PATIENT_FIELDS = [("patient_id", "patient_id"), ("centre", "centre"), ("sex", "sex"),
                   ("birth_year", "birth_year"), ("histology", "histology"),
                   ("lung_mets_date", "lung_mets_diagnosis_date"),
                   ("extrapulmonary", "extrapulmonary_disease_at_pm")]
_PRIMARY_FIELDS = [("patient_id", "patient_id"), ("primary_diagnosis_date", "diagnosis_date"),
                   ("primary_site", "site"), ("grade", "grade"),
                   ("primary_surgery_date", "surgery_date"), ("radiotherapy", "radiotherapy"),
                   ("radiotherapy_end_date", "radiotherapy_end_date"), ("primary_codes", "missing_codes")]
_PM_FIELDS = [("patient_id", "patient_id"), ("surgery_date", "surgery_date"), ("side", "side"),
              ("approach", "approach"), ("resection_type", "resection_type"),
              ("lesions_resected", "lesions_resected"), ("max_lesion_diameter_mm", "max_lesion_diameter_mm"),
              ("margin", "margin"), ("clavien_dindo", "clavien_dindo")]
_THERAPY_FIELDS = [("patient_id", "patient_id"), ("start_date", "start_date"), ("end_date", "end_date"),
                   ("intent", "intent"), ("therapy_codes", "missing_codes")]
NOT_DONE = "ND"  # the missing-data code of a treatment that was not given (registry.codes)
_FOLLOW_UP_FIELDS = [("patient_id", "patient_id"), ("event_date", "event_date"), ("event", "event"),
                     ("recurrence_site", "recurrence_site")]

def analysis_frame(plan=None, *, user=None, centres=None, row_level=False, freeze=None):
    """One row per patient the user may analyse, with exactly the columns ``COLUMNS``.

    ``user=None`` means no user restriction (management commands, benchmarks): every patient.
    ``centres`` narrows the scope to those centre codes. ``row_level``: the frame itself is the
    output (not an aggregate of it), so only the centres whose records the user may read count.
    ``freeze``: a data freeze (registry.selectors.freeze_named) to read instead of the live
    registry, under the same access rules. Rows are sorted by patient_id. Durations are months
    (days / (365.25/12)); unknown values are NaN/None/<NA>, never 0.
    """
    plan = plan or AnalysisPlan()
    tables = load_tables(table_source(user=user, centres=centres, row_level=row_level, freeze=freeze))
    return derive_frame(tables, plan)


def export_frame(*, user, centre, freeze=None):
    """(frame, plan, column descriptions) for a dataset export: the default plan, one centre or pooled."""
    plan = AnalysisPlan()
    frame = analysis_frame(plan, user=user, centres=[centre] if centre else None, freeze=freeze)
    return frame, plan, column_descriptions(plan)


def column_descriptions(plan):
    """{column: (type, label, codes)} of the frame (and its de-identified index_date_days), for the
    data dictionary of an export; the factors are labelled with the plan's cut-offs."""
    described = {
        "patient_id": ("text", "registry pseudonym"),
        "centre": ("text", "centre code"),
        "histology": ("code", "histology"),
        "sex": ("code", "sex"),
        "age_at_pm": ("int", "age at index PM (years): year of index date - birth_year"),
        "index_date": ("date", "index date: earliest metastasectomy (or earliest complete one, by plan)"),
        "index_date_days": ("days", "index date in days from the index operation (0)"),
        "os_months": ("float", "overall survival time (months from index)"),
        "os_event": ("int", "death (1) or censored (0)"),
        "dfs_months": ("float", "disease-free survival time (months from index)"),
        "dfs_event": ("int", "recurrence or death (1) or censored (0)"),
        "max_lesion_diameter_mm": ("float", "largest lesion at index PM (mm)"),
        "lesions_resected": ("int", "lesions resected at index PM"),
        "tfi_months": ("float", "treatment-free interval (months)"),
        "dfi_months": ("float", "primary diagnosis to lung metastases (months)"),
        "grade": ("code", "FNCLCC grade of the primary"),
        "primary_site": ("code", "site of the primary"),
        "bilateral": ("flag", "index operation bilateral"),
        "approach": ("code", "approach of the index operation"),
        "resection_type": ("code", "resection type of the index operation"),
        "peri_pm_systemic": ("flag", "systemic therapy within the window around the index PM"),
        "peri_pm_systemic_start_months": ("float", "months from the index PM to the start of that therapy"),
        "first_recurrence_site": ("code", "site of the first recurrence after the index PM"),
        "major_complication": ("flag", "Clavien-Dindo of the index operation IIIa or higher"),
        "eligible": ("flag", "in the study cohort of the analysis plan"),
        "exclusion_reason": ("text", "first cohort criterion not met"),
        **{factor: ("flag", factors.label(factor, plan)) for factor in factors.CUT_OFFS},
    }
    code_lists = {"histology": codes.HISTOLOGY, "sex": codes.SEX, "grade": codes.GRADE,
                  "primary_site": codes.PRIMARY_SITE, "approach": codes.APPROACH,
                  "resection_type": codes.RESECTION_TYPE}
    return {name: (kind, label, tuple((c, str(text)) for c, text in code_lists.get(name, ())))
            for name, (kind, label) in described.items()}


def patient_scope(*, user=None, centres=None, row_level=False):
    """The Patient queryset the analysis may read (access.py decides; None = the system)."""
    scope = access.patients_for_analysis(access.SYSTEM if user is None else user, row_level=row_level)
    if centres is not None:
        scope = scope.filter(centre__in=sorted(centres))
    return scope


def freeze_centres(*, user=None, centres=None, row_level=False):
    """The centre codes of a freeze the analysis may read (None: every one), by the same rule as
    patient_scope: access.py's centres, narrowed to ``centres``."""
    allowed = access.centres_for_analysis(access.SYSTEM if user is None else user, row_level=row_level)
    if allowed == access.ALL:
        return None if centres is None else set(centres)
    return set(allowed) if centres is None else set(allowed) & set(centres)


def table_source(*, user=None, centres=None, row_level=False, freeze=None):
    """Where the frame's rows come from: the live registry (registry.selectors.LiveRows) or a freeze
    (FrozenRows), scoped alike; both give the same rows for the same data."""
    if freeze is None:
        return selectors.LiveRows(patient_scope(user=user, centres=centres, row_level=row_level))
    return selectors.FrozenRows(freeze, freeze_centres(user=user, centres=centres, row_level=row_level),
                                dates_as_text=True)  # _rows parses every date column


def _rows(source, table, fields, dates=()):
    """A DataFrame of one table's rows (in no particular order: pandas sorts what it needs)."""
    names, columns = zip(*fields)
    frame = pd.DataFrame.from_records(source.rows(table, list(columns)), columns=list(names))
    for column in dates:
        frame[column] = pd.to_datetime(frame[column])
    return frame


def load_tables(source):
    """The five tables from a table_source: five queries from the live registry, one from a freeze."""
    return {
        "patients": _rows(source, "patients", _PATIENT_FIELDS, ["lung_mets_date"]),
        "primary_tumours": _rows(source, "primary_tumours", _PRIMARY_FIELDS,
                                 ["primary_diagnosis_date", "primary_surgery_date", "radiotherapy_end_date"]),
        "metastasectomies": _rows(source, "metastasectomies", _PM_FIELDS, ["surgery_date"]),
        "systemic_therapies": _rows(source, "systemic_therapies", _THERAPY_FIELDS, ["start_date", "end_date"]),
        "follow_up": _rows(source, "follow_up", _FOLLOW_UP_FIELDS, ["event_date"]),
    }


def _months(later, earlier):
    """(later - earlier) in months as floats; NaN where either date is missing."""
    return (later - earlier) / pd.Timedelta(days=1) / DAYS_PER_MONTH


def _latest(parts):
    """Latest date per patient row over several (row, date) array pairs."""
    long = pd.DataFrame({"row": np.concatenate([np.asarray(rows) for rows, _dates in parts]),
                         "date": np.concatenate([np.asarray(dates, dtype="datetime64[ns]") for _rows, dates in parts])})
    return long.dropna(subset=["date"]).groupby("row")["date"].max()


def _flag(values, known):
    """A nullable boolean array: the condition where ``known``, <NA> elsewhere."""
    flags = pd.array(np.asarray(pd.Series(values).fillna(False), dtype=bool), dtype="boolean")
    flags[~np.asarray(known, dtype=bool)] = pd.NA
    return flags


def _event(happened, known):
    """A nullable 1/0 event array: <NA> where the patient has no index date."""
    events = pd.array(np.asarray(happened, dtype=int), dtype="Int64")
    events[~np.asarray(known, dtype=bool)] = pd.NA
    return events


def _by_row(table, patient_ids):
    """The table keyed by the patient's row number instead of the pseudonym.

    Grouping and sorting on integers instead of strings is what keeps 100,000 patients fast.
    """
    rows = patient_ids.get_indexer(table["patient_id"])
    return table.drop(columns="patient_id").assign(row=rows)[rows >= 0]


def derive_frame(tables, plan):
    """The analysis frame from the five loaded tables (pure pandas; see the module docstring)."""
    frame = tables["patients"].sort_values("patient_id", ignore_index=True)  # index = patient row
    patient_ids = pd.Index(frame["patient_id"])
    primaries, pms, therapies, follow_up = (
        _by_row(tables[name], patient_ids)
        for name in ("primary_tumours", "metastasectomies", "systemic_therapies", "follow_up"))
    therapies = therapies[~_coded(therapies, "therapy_codes", "end_date", NOT_DONE)]  # not given: ignored
    frame = frame.join(primaries.drop_duplicates("row").set_index("row"))
    frame = frame.join(_index_operation(pms, plan))
    has_pm = frame["index_date"].notna().to_numpy()

    _add_endpoints(frame, pms, therapies, follow_up)
    _add_intervals(frame, therapies, plan)
    frame["age_at_pm"] = (frame["index_date"].dt.year - frame["birth_year"]).astype("Int64")
    frame["max_lesion_diameter_mm"] = frame["max_lesion_diameter_mm"].astype(float)
    frame["lesions_resected"] = frame["lesions_resected"].astype("Int64")
    frame["size_gt_2cm"] = _flag(CUT_OFFS["size_gt_2cm"](frame, plan), has_pm)
    frame["multiple_lesions"] = _flag(CUT_OFFS["multiple_lesions"](frame, plan), has_pm)
    frame["bilateral"] = _flag(frame["side"] == "bilateral", has_pm)
    frame["major_complication"] = _flag(frame["clavien_dindo"].isin(codes.MAJOR_COMPLICATION), has_pm)
    start = _peri_pm_systemic_start(frame, therapies, plan)
    frame["peri_pm_systemic"] = _flag(start.notna(), has_pm)
    frame["peri_pm_systemic_start_months"] = start
    frame["exclusion_reason"] = _exclusion_reasons(frame, plan)
    frame["eligible"] = frame["exclusion_reason"].isna()
    # Object columns hold None (not NaN) for unknown values: JSON and CSV stay clean.
    for column in ("grade", "primary_site", "approach", "resection_type", "exclusion_reason", "first_recurrence_site"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    frame = frame[COLUMNS]
    frame.attrs.update(plan=plan.name, plan_hash=plan.hash)  # the frame names its plan too
    return frame


def _coded(table, codes_column, field, code):
    """Whether each row's missing-data codes ({column: code} or None) give `field` the code `code`."""
    if codes_column not in table:
        return np.zeros(len(table), dtype=bool)
    return np.array([isinstance(codes, dict) and codes.get(field) == code for codes in table[codes_column]],
                    dtype=bool)


def _index_operation(pms, plan):
    """The index operation of each patient (registry.index_date, the plan's rule), by patient row."""
    index = pms[index_rows(pms["row"].to_numpy(), pms["surgery_date"].to_numpy(), pms["margin"].to_numpy(),
                           rule=plan.index_rule, complete_margins=plan.complete_margins)]
    return index.rename(columns={"surgery_date": "index_date", "margin": "index_margin"}).set_index("row")


def _at_rows(series, rows):
    """``series`` (indexed by patient row 0..n-1) looked up for each row number in ``rows``."""
    return series.to_numpy()[np.asarray(rows, dtype=int)]


def _add_endpoints(frame, pms, therapies, follow_up):
    """os_/dfs_ months and events (endpoints.md: last known date = latest date anywhere)."""
    last = _latest([(pms["row"], pms["surgery_date"]),
                    (therapies["row"], therapies["start_date"]),
                    (therapies["row"], therapies["end_date"]),
                    (follow_up["row"], follow_up["event_date"])]).reindex(frame.index)
    index = frame["index_date"]
    death = follow_up[follow_up["event"] == "death"].groupby("row")["event_date"].min().reindex(frame.index)
    recurrences = follow_up[follow_up["event"] == "recurrence"]
    # A recurrence before the index belongs to the history before the first PM: not an event.
    after_index = recurrences["event_date"].to_numpy() >= _at_rows(index, recurrences["row"])
    first = recurrences[after_index].sort_values(["row", "event_date"]).drop_duplicates("row").set_index("row")
    recurrence = first["event_date"].reindex(frame.index)
    frame["first_recurrence_site"] = first["recurrence_site"].reindex(frame.index)
    dfs_date = pd.concat([recurrence, death], axis=1).min(axis=1)  # same day: one DFS event

    known = index.notna()
    frame["os_event"] = _event(death.notna(), known)
    frame["os_months"] = _months(death.where(death.notna(), last), index)
    frame["dfs_event"] = _event(dfs_date.notna(), known)
    frame["dfs_months"] = _months(dfs_date.where(dfs_date.notna(), last), index)


def _add_intervals(frame, therapies, plan):
    """tfi_months / tfi_gt_12m, dfi_months / synchronous (endpoints.md v2, TFI as in the docstring)."""
    lung = frame["lung_mets_date"]
    therapy_lung = _at_rows(lung, therapies["row"])
    started = therapies["start_date"].to_numpy() <= therapy_lung
    therapy_end = therapies["end_date"].to_numpy()
    ended = therapy_end <= therapy_lung
    radiotherapy_given = (frame["radiotherapy"].isin(("neoadjuvant", "adjuvant"))
                          & ~_coded(frame, "primary_codes", "radiotherapy_end_date", NOT_DONE))
    surgery_not_done = _coded(frame, "primary_codes", "surgery_date", NOT_DONE)
    ends = _latest([(frame.index, frame["primary_surgery_date"].where(frame["primary_surgery_date"] <= lung)),
                    (frame.index, frame["radiotherapy_end_date"].where(radiotherapy_given
                                                                       & (frame["radiotherapy_end_date"] <= lung))),
                    (therapies["row"], therapies["end_date"].where(ended))])
    on_treatment = np.zeros(len(frame), dtype=bool)
    on_treatment[therapies["row"].to_numpy(dtype=int)[started & (therapy_end > therapy_lung)]] = True
    end_unknown = ((frame["primary_surgery_date"].isna() & ~surgery_not_done)
                   | (radiotherapy_given & frame["radiotherapy_end_date"].isna())
                   | frame["primary_diagnosis_date"].isna()).to_numpy()  # no primary record: unknown too
    end_unknown[therapies["row"].to_numpy(dtype=int)[started & pd.isna(therapy_end)]] = True
    tfi = _months(lung, ends.reindex(frame.index)).fillna(0.0)  # nothing ended before: 0
    tfi[end_unknown] = np.nan
    tfi[on_treatment & lung.notna().to_numpy()] = 0.0  # on treatment at the diagnosis: 0, whatever else is unknown
    frame["tfi_months"] = tfi.where(lung.notna())
    frame["tfi_gt_12m"] = _flag(CUT_OFFS["tfi_gt_12m"](frame, plan), frame["tfi_months"].notna())
    frame["dfi_months"] = _months(lung, frame["primary_diagnosis_date"])
    known = frame["dfi_months"].notna().to_numpy()
    frame["synchronous"] = _flag(CUT_OFFS["synchronous"](frame, plan), known)


def _peri_pm_systemic_start(frame, therapies, plan):
    """Months from the index to the earliest pm_neoadjuvant / pm_adjuvant line starting within
    the window of the index (NaN where none does)."""
    offset = _months(therapies["start_date"], pd.Series(_at_rows(frame["index_date"], therapies["row"]),
                                                        index=therapies.index))
    window = plan.systemic_window_months
    before = (therapies["intent"] == "pm_neoadjuvant") & offset.between(-window, 0)
    after = (therapies["intent"] == "pm_adjuvant") & offset.between(0, window)
    return offset[before | after].groupby(therapies.loc[before | after, "row"]).min().reindex(frame.index)


def cohort_criteria(plan):
    """The study-cohort filter in order: [(exclusion_reason, test frame -> passes), ...].

    "no metastasectomy" always comes first (no index date, no endpoint); the plan's criteria
    follow in the order of endpoints.md.
    """
    criteria = [(NO_METASTASECTOMY, lambda f: f["index_date"].notna())]
    criteria.append((f"histology not {'/'.join(plan.histologies)}",
                     lambda f: f["histology"].isin(plan.histologies)))
    if plan.require_r0:  # "index margin not R0" under the defaults
        criteria.append((f"index margin not {'/'.join(plan.complete_margins)}",
                         lambda f: f["index_margin"].isin(plan.complete_margins)))
    if plan.exclude_extrapulmonary:
        criteria.append(("extrapulmonary disease at PM", lambda f: ~f["extrapulmonary"].astype(bool)))
    criteria.append((f"index date outside {plan.period_start.isoformat()}..{plan.period_end.isoformat()}",
                     lambda f: f["index_date"].between(pd.Timestamp(plan.period_start), pd.Timestamp(plan.period_end))))
    return criteria


def _exclusion_reasons(frame, plan):
    """The first failing criterion per patient (None where every criterion passes)."""
    reasons = pd.Series(None, index=frame.index, dtype=object)
    for reason, passes in cohort_criteria(plan):
        failing = reasons.isna() & ~passes(frame).fillna(False).astype(bool)
        reasons[failing] = reason
    return reasons
