"""Writing a cohort as an import workbook."""
from __future__ import annotations

from registry.synthetic.model import COLUMNS, TABLES

LOCAL_ID = "local_id"


def local_keys(cohort: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The cohort as a centre writes its new patients for an import: every row names its patient by
    a local key (P1, P2, … in the order of the patients) in `local_id` instead of `patient_id`; the
    registry issues the pseudonyms when the file is imported. The cohort itself is left as it is."""
    keys = {row["patient_id"]: f"P{number}" for number, row in enumerate(cohort["patients"], start=1)}
    return {table: [{LOCAL_ID: keys[row["patient_id"]], **{k: v for k, v in row.items() if k != "patient_id"}}
                    for row in cohort[table]] for table in TABLES}


def import_columns(table: str, *, pseudonyms: bool = False) -> list[str]:
    """The columns of a workbook sheet: COLUMNS[table], with local_id in place of patient_id unless
    the rows name their patients by pseudonyms."""
    return [LOCAL_ID if column == "patient_id" and not pseudonyms else column for column in COLUMNS[table]]


def write_workbook(cohort: dict[str, list[dict]], path, *, pseudonyms: bool = False) -> None:
    """Write the cohort as an import workbook: one sheet per table (named as in TABLES), header
    row `import_columns(table)`; dates as Excel dates (yyyy-mm-dd), booleans yes/no, blanks empty.

    Patients are new to the registry, named by local keys (`local_keys`). With `pseudonyms` the
    cohort's own pseudonyms are written in patient_id instead: a file about patients already in the
    registry (e.g. loaded with `generate_cohort --load`), which the import updates or leaves as they are.
    """
    from openpyxl import Workbook  # imported here: generating a cohort needs no openpyxl

    rows_of = cohort if pseudonyms else local_keys(cohort)
    workbook = Workbook(write_only=True)
    for table in TABLES:
        sheet = workbook.create_sheet(table)
        columns = import_columns(table, pseudonyms=pseudonyms)
        sheet.append(columns)
        for row in rows_of[table]:
            # A date value gets openpyxl's 'yyyy-mm-dd' number format on its own in write-only
            # mode (and styled cells are never reused for the next value).
            sheet.append([("yes" if value else "no") if isinstance(value, bool) else value
                          for value in (row[column] for column in columns)])
    workbook.save(path)
