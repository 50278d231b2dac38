"""One file per table in the chosen format, added to the export's zip archive.

CSV: UTF-8 without BOM, ',' separated, ISO dates, '.' decimals, blank = unknown; the registry
tables use the dictionary's own conventions (codes, yes/no), so an export without
de-identification can be imported again as it is. XLSX: one workbook per table (registry/transfer/exporting/xlsx.py), real dates.
In both, text that a spreadsheet would run as a formula (starting with = + - @, tab or CR) is
prefixed with an apostrophe; numbers are numbers and never touched.

Stata (.dta, version 15) and SPSS (.sav), written by pyreadstat: code columns become numbers
1…n in the order of the dictionary's code list, with value labels "code: label"; yes/no columns
become 1/0 labelled yes/no; dates are Stata/SPSS dates; every variable has its label.
"""
import csv
import io
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import partial

from registry.transfer.exporting import missing, xlsx
from registry.transfer.exporting.missing import MissingCode

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FORMATS = ("csv", "xlsx", "dta", "sav")


@dataclass(frozen=True)
class ExportColumn:
    """A column as written: `type` is text, code, int, number, float, date, days, bool (yes/no) or
    flag (1/0); `codes` are (code, label) pairs for value labels; `missing_codes` those of the
    missing-data codes its cells may hold (registry/transfer/exporting/missing.py)."""

    name: str
    type: str
    label: str
    codes: tuple = ()
    missing_codes: tuple = ()


def neutral(value):
    """Text a spreadsheet would evaluate as a formula, made inert with a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _blank_or(convert):
    """None → blank, a missing-data code → itself, any other value → convert(value)."""
    return lambda value: "" if value is None else value if value.__class__ is MissingCode else convert(value)


def _float_text(value):
    return "" if value != value else repr(value)  # NaN is unknown


TEXT_FORMATTERS = {
    "bool": _blank_or(lambda v: "yes" if v else "no"),
    "flag": _blank_or(lambda v: "1" if v else "0"),
    "date": _blank_or(lambda v: v.isoformat()),
    "float": _blank_or(_float_text),
    "text": _blank_or(lambda v: neutral(str(v))),
}


def text_formatter(kind):
    """value → CSV text for one column kind (chosen once per column, not per cell)."""
    return TEXT_FORMATTERS.get(kind, _blank_or(lambda v: neutral(v) if isinstance(v, str) else str(v)))


XLSX_VALUES = {
    "bool": lambda v: None if v is None else v if v.__class__ is MissingCode else ("yes" if v else "no"),
    "flag": lambda v: None if v is None else (1 if v else 0),
    "text": lambda v: neutral(v) if isinstance(v, str) else v,
}


def _fixed(fixes, row):
    row = list(row)
    for i, fix in fixes:
        row[i] = fix(row[i])
    return row


def write_csv(archive, filename, columns, rows):
    formatters = [text_formatter(c.type) for c in columns]
    with archive.open(filename, "w", force_zip64=True) as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow([c.name for c in columns])
        for row in rows:
            writer.writerow([f(v) for f, v in zip(formatters, row)])
        text.flush()
        text.detach()


XLSX_KINDS = {"code": "text", "int": "number", "number": "number", "float": "number", "days": "number",
              "flag": "number", "date": "date", "bool": "text"}


def write_xlsx(archive, filename, columns, rows, *, sheet_name):
    kinds = [c.type for c in columns]
    fixes = [(i, XLSX_VALUES[kind]) for i, kind in enumerate(kinds) if kind in XLSX_VALUES]
    if fixes:
        rows = map(partial(_fixed, fixes), rows)
    # A column that may hold a missing-data code is written cell by cell (the code as text).
    xlsx.write_workbook(archive, filename, sheet_name, [c.name for c in columns], rows,
                        kinds=[None if c.missing_codes else XLSX_KINDS.get(c.type) for c in columns])


def _add_via_temp(archive, filename, save):
    """pyreadstat writes to a path, not a stream. On Linux it gets /proc/self/fd/N of an unnamed
    temporary file, so a worker killed mid-export leaves no clinical data on disk; elsewhere a
    named temporary file, removed afterwards."""
    with tempfile.TemporaryFile() as unnamed:
        path = f"/proc/self/fd/{unnamed.fileno()}"
        if os.path.exists(path):
            save(path)
            unnamed.seek(0)
            with archive.open(filename, "w") as member:
                shutil.copyfileobj(unnamed, member, 1 << 20)
            return
    handle, path = tempfile.mkstemp(suffix=os.path.splitext(filename)[1])
    os.close(handle)
    try:
        save(path)
        archive.write(path, filename)
    finally:
        os.unlink(path)


def _labelled_frame(columns, rows):
    """A DataFrame for Stata/SPSS with numeric codes, plus its variable and value labels."""
    import pandas as pd

    data = {c.name: [] for c in columns}
    names = [c.name for c in columns]
    for row in rows:
        for name, value in zip(names, row):
            data[name].append(value)
    frame = pd.DataFrame(index=range(len(data[names[0]]) if names else 0))
    value_labels = {}
    for column in columns:
        values = data.pop(column.name)
        if column.type == "code" and column.codes:
            numbers = {code: i for i, (code, _label) in enumerate(column.codes, start=1)}
            frame[column.name] = pd.array([numbers.get(v) for v in values], dtype="float64")
            value_labels[column.name] = {float(i): value_label(code, label) for code, label in column.codes
                                         for i in [numbers[code]]}
        elif column.type in ("bool", "flag"):
            frame[column.name] = pd.array([None if v is None else float(bool(v)) for v in values], dtype="float64")
            value_labels[column.name] = {0.0: "no", 1.0: "yes"}
        elif column.type in ("int", "number", "float", "days"):
            frame[column.name] = pd.array([None if v is None else float(v) for v in values], dtype="float64")
        elif column.type == "date":
            frame[column.name] = pd.Series(values, dtype="object")
        else:
            frame[column.name] = pd.Series(["" if v is None else str(v) for v in values], dtype="object")
    labels = {c.name: c.label[:80] for c in columns}
    return frame, labels, value_labels


def value_label(code, label):
    label = str(label)
    return code if label == code else f"{code}: {label}"


def write_stats(archive, filename, columns, rows, *, file_format, file_label):
    import pyreadstat

    rows, coded = missing.split(columns, rows)
    frame, labels, value_labels = _labelled_frame(columns, rows)
    codes = missing.stats_codes(frame, columns, coded, value_labels, file_format=file_format)
    if file_format == "dta":
        def save(path):
            pyreadstat.write_dta(frame, path, file_label=file_label[:80], column_labels=labels,
                                 variable_value_labels=value_labels, version=15, **codes)
    else:
        def save(path):
            pyreadstat.write_sav(frame, path, file_label=file_label[:64], column_labels=labels,
                                 variable_value_labels=value_labels, **codes)
    _add_via_temp(archive, filename, save)


def write_table(archive, base_name, columns, rows, *, file_format, file_label=""):
    """Add `base_name`.<format> to the archive; returns the member name."""
    filename = f"{base_name}.{file_format}"
    if file_format == "csv":
        write_csv(archive, filename, columns, rows)
    elif file_format == "xlsx":
        write_xlsx(archive, filename, columns, rows, sheet_name=base_name)
    elif file_format in ("dta", "sav"):
        write_stats(archive, filename, columns, rows, file_format=file_format, file_label=file_label)
    else:
        raise ValueError(f"unknown format {file_format!r}: one of {', '.join(FORMATS)}")
    return filename
