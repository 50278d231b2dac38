"""The paper pack's analysis data: the analysis frame of the freeze, one row per registered patient
(eligible = 1 for the analysed), de-identified as the plan says (plan.pack_deidentify), with its
data dictionary.

- "intervals" (the default): no calendar date. The frame's one date, index_date, is left out (every
  duration is already in months from it); the exclusion "index date outside <period>" names no dates;
  age_at_pm (whole years) is kept, as in the dataset export's option of the same name.
- "none": index_date is kept.
Patients are named by their registry pseudonym. Flags and events are 1/0, unknown values blank;
numbers are written at full precision, so R and Python read exactly the values the report used.
"""
from analysis.dashboard import csv_text
from analysis.frame import column_descriptions

PERIOD = "index date outside"


def analysis_data(frame, plan):
    """The frame as the pack holds it (a copy): de-identified, flags as 1/0."""
    data = frame.copy()
    if plan.pack_deidentify == "intervals":
        data = data.drop(columns=["index_date"])
        outside = data["exclusion_reason"].fillna("").str.startswith(PERIOD)
        data.loc[outside, "exclusion_reason"] = f"{PERIOD} the study period"
    for column in data.columns:
        if str(data[column].dtype) == "boolean" or data[column].dtype == bool:
            data[column] = data[column].astype("Int64")
    return data


def data_csv(data, footer):
    """CSV text: a header, one row per patient, blank = unknown, the footer as a last "#" line."""
    return data.to_csv(index=False, lineterminator="\n") + footer + "\n"


def dictionary_csv(data, plan, footer):
    """The data dictionary of ``data``: variable, type, label, codes ("code=label | ...")."""
    described = column_descriptions(plan)
    rows = []
    for name in data.columns:
        kind, label, codes = described.get(name, ("text", name, ()))
        kind = "int (1/0)" if kind == "flag" else kind
        rows.append([name, kind, label, " | ".join(f"{code}={text}" for code, text in codes)])
    return csv_text(["variable", "type", "label", "codes"], rows) + footer + "\n"
