"""Missing-data codes in the export: each coded cell holds its code, written the way each format
keeps a reason for a missing value.

A record keeps its codes apart from its values (`missing_codes`, {column: UNK | ND | NA}); the
export puts each code in its cell, as a `MissingCode` (a str), so that every writer can tell it
from a value:
- CSV and Excel: the code as text (UNK, ND, NA), as the import reads it back;
- Stata: extended missing values .a (UNK), .b (ND), .c (NA) in numeric and date columns, with value
  labels "UNK: Unknown"...; Stata counts them as missing in every command. Text columns: the code;
- SPSS: user-missing values with value labels: 99997 (UNK), 99998 (ND), 99999 (NA) in numeric
  columns (no column of the registry comes near them), 1582-10-15/16/17 in date columns (the first
  days of SPSS's calendar, which no record can hold) and the codes themselves in text columns;
  SPSS leaves user-missing values out of every analysis.
"""
import datetime
import re

from registry.codes import MISSING_CODES, values

CODES = tuple(values(MISSING_CODES))
STATA_TAGS = dict(zip(CODES, "abc"))
SPSS_NUMBERS = dict(zip(CODES, (99997.0, 99998.0, 99999.0)))
SPSS_DATES = {code: datetime.date(1582, 10, 15 + i) for i, code in enumerate(CODES)}
SPSS_EPOCH = datetime.date(1582, 10, 14)  # SPSS dates are seconds since then
NUMERIC = ("code", "bool", "flag", "int", "number", "float", "days")


class MissingCode(str):
    """A cell holding a missing-data code instead of a value."""

    __slots__ = ()


CELLS = {code: MissingCode(code) for code in CODES}


def value_label(code, label):
    return f"{code}: {label}"


def with_codes(columns, rows):
    """Rows of (values..., the record's missing_codes) → rows of values, each coded cell holding its
    MissingCode. `columns` are the dictionary columns of the values, in order."""
    positions = {column.name: i for i, column in enumerate(columns) if column.missing_codes}
    for row in rows:
        codes = row[-1]
        if not codes:
            yield row[:-1]
            continue
        row = list(row[:-1])
        for name, code in codes.items():
            if name in positions:
                row[positions[name]] = CELLS.get(code, code)
        yield row


def split(columns, rows):
    """(rows with None in each coded cell, {column index: {row index: code}}) for Stata and SPSS,
    whose frames are built from the values alone."""
    coded_columns = [i for i, column in enumerate(columns) if column.missing_codes]
    rows = list(rows)
    coded = {}
    if not coded_columns:
        return rows, coded
    for number, row in enumerate(rows):
        for i in coded_columns:
            value = row[i]
            if value.__class__ is MissingCode:
                if not isinstance(row, list):
                    row = rows[number] = list(row)
                row[i] = None
                coded.setdefault(i, {})[number] = str(value)
    return rows, coded


def stats_codes(frame, columns, coded, value_labels, *, file_format):
    """Put the codes `split` took out into the frame of a Stata ("dta") or SPSS ("sav") file, with
    their value labels; returns the writer's extra arguments (Stata's missing_user_values, SPSS's
    missing_ranges)."""
    user_missing, formats = {}, {}
    for i, cells in coded.items():
        column = columns[i]
        name, labels = column.name, dict(column.missing_codes)
        series = frame[name].astype(object)
        numeric, date = column.type in NUMERIC, column.type == "date"
        if file_format == "dta":
            if numeric or date:
                for row, code in cells.items():
                    series.iat[row] = STATA_TAGS[code]
                value_labels[name] = {**value_labels.get(name, {}),
                                      **{STATA_TAGS[code]: value_label(code, labels[code]) for code in CODES}}
                user_missing[name] = [STATA_TAGS[code] for code in CODES]
                if date:  # a date even where every cell is coded (the writer would see no date)
                    formats[name] = "%td"
            else:
                for row, code in cells.items():
                    series.iat[row] = code
        else:
            marks = SPSS_NUMBERS if numeric else SPSS_DATES if date else dict(zip(CODES, CODES))
            for row, code in cells.items():
                series.iat[row] = marks[code]
            if numeric:
                value_labels[name] = {**value_labels.get(name, {}),
                                      **{marks[code]: value_label(code, labels[code]) for code in CODES}}
                user_missing[name] = [marks[code] for code in CODES]
            elif date:
                value_labels[name] = {marks[code]: value_label(code, labels[code]) for code in CODES}
                user_missing[name] = [float((marks[code] - SPSS_EPOCH).days * 86400) for code in CODES]
            else:
                user_missing[name] = list(CODES)
        frame[name] = series if not numeric or file_format == "dta" else series.astype("float64")
    if not user_missing:
        return {}
    if file_format == "dta":
        return {"missing_user_values": user_missing, **({"variable_format": formats} if formats else {})}
    return {"missing_ranges": user_missing}


def spss_formats(formats, columns, coded):
    """The SPSS display formats ({column: format}) of the numeric columns that hold a code, wide
    enough for the user-missing numbers (five digits): F1.0 → F5.0."""
    widened = {}
    for i in coded:
        match = re.fullmatch(r"F(\d+)\.(\d+)", formats.get(columns[i].name, ""))
        if match is not None:
            width, decimals = int(match[1]), int(match[2])
            widened[columns[i].name] = f"F{max(width, 5 + (decimals + 1 if decimals else 0))}.{decimals}"
    return widened
