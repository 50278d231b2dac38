"""Writing a cohort as an import workbook."""
from __future__ import annotations

from registry.synthetic.model import COLUMNS, TABLES


def write_workbook(cohort: dict[str, list[dict]], path) -> None:
    """Write the cohort as an import workbook: one sheet per table (named as in TABLES), header
    row COLUMNS[table]; dates as Excel dates (yyyy-mm-dd), booleans yes/no, blanks empty."""
    from openpyxl import Workbook  # imported here: generating a cohort needs no openpyxl

    workbook = Workbook(write_only=True)
    for table in TABLES:
        sheet = workbook.create_sheet(table)
        columns = COLUMNS[table]
        sheet.append(columns)
        for row in cohort[table]:
            # A date value gets openpyxl's 'yyyy-mm-dd' number format on its own in write-only
            # mode (and styled cells are never reused for the next value).
            sheet.append([("yes" if value else "no") if isinstance(value, bool) else value
                          for value in (row[column] for column in columns)])
    workbook.save(path)
