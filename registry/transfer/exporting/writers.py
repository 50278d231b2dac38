"""The export's files in the chosen format, added to the export's zip archive.

CSV: one file per table, UTF-8 without BOM, ',' separated, ISO dates, '.' decimals, blank =
unknown; text that a spreadsheet would run as a formula (starting with = + - @, tab or CR) is
prefixed with an apostrophe, which the import takes off again. XLSX: the five registry tables as
one workbook (WORKBOOK) with a sheet per table, real dates, the formula-like text written as it
is (registry/transfer/exporting/xlsx.py says why that is safe). Both use the dictionary's own
column names and conventions (codes, yes/no), the shape the import reads, so an export without
de-identification can be imported again as it is. Numbers are numbers and never touched.

Stata (.dta format 118, which Stata 14 and later open) and SPSS (.sav), written by pyreadstat:
code columns become numbers 1…n in the order of the dictionary's code list, with value labels
"code: label"; yes/no columns become 1/0 labelled yes/no; dates are Stata/SPSS dates; every
variable has its label. SPSS variables also carry their measure level (nominal, ordinal, scale)
and a display format without spurious decimals (F1.0 for a code, F8.0 for a count).
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

FORMULA_STARTS = xlsx.FORMULA_STARTS
FORMATS = ("csv", "xlsx", "dta", "sav")
# The Excel export's one workbook of the registry tables (the analysis frame and the data
# dictionary are workbooks of their own beside it: the import reads only WORKBOOK).
WORKBOOK = "registry.xlsx"
STATA_VERSION = 14  # pyreadstat's name for .dta format 118 (its default, 15, writes 119: Stata 15+ only)


@dataclass(frozen=True)
class ExportColumn:
    """A column as written: `type` is text, code, int, number, float, date, days, bool (yes/no) or
    flag (1/0); `codes` are (code, label) pairs for value labels; `decimals` those of a number;
    `missing_codes` those of the missing-data codes its cells may hold (exporting/missing.py)."""

    name: str
    type: str
    label: str
    codes: tuple = ()
    decimals: int | None = None
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


# Text is written as it is: the xlsx writer keeps formula-like text inert without an apostrophe.
XLSX_VALUES = {
    "bool": lambda v: None if v is None else v if v.__class__ is MissingCode else ("yes" if v else "no"),
    "flag": lambda v: None if v is None else (1 if v else 0),
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


def xlsx_sheet(name, columns, rows):
    """(name, header, rows, kinds) of one sheet for xlsx.write_workbook; `rows` are read only when
    the workbook is written."""
    kinds = [c.type for c in columns]
    fixes = [(i, XLSX_VALUES[kind]) for i, kind in enumerate(kinds) if kind in XLSX_VALUES]
    if fixes:
        rows = map(partial(_fixed, fixes), rows)
    # A column that may hold a missing-data code is written cell by cell (the code as text).
    return name, [c.name for c in columns], rows, [None if c.missing_codes else XLSX_KINDS.get(c.type)
                                                   for c in columns]


def write_xlsx(archive, filename, columns, rows, *, sheet_name):
    xlsx.write_workbook(archive, filename, [xlsx_sheet(sheet_name, columns, rows)])


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


# Ordered scales: SPSS's "ordinal" (the other code lists and yes/no are "nominal", numbers and dates
# "scale", as the dictionary's types say). Their codes are listed in the scale's order, a "not
# assessable" code (GX, RX, NE) last: leave it out (or make it missing) before an ordinal analysis.
ORDINAL = frozenset({"grade", "margin", "clavien_dindo", "best_response", "ecog"})
SCALE_TYPES = ("int", "number", "float", "days", "date")


def spss_measure(column):
    """SPSS's measure level of an export column: nominal, ordinal or scale."""
    if column.name in ORDINAL:
        return "ordinal"
    return "scale" if column.type in SCALE_TYPES else "nominal"


def spss_format(column):
    """The SPSS display format of a numeric column: whole numbers show no decimals (F1.0 for the
    numbers of a code list, F8.0 for a count), a number its own decimals; None for text and dates
    (pyreadstat's A<width> and DATE11)."""
    if column.type == "code" and column.codes:
        return f"F{len(str(len(column.codes)))}.0"
    if column.type in ("bool", "flag"):
        return "F1.0"
    if column.type in ("int", "days"):
        return "F8.0"
    if column.type == "number":
        return f"F8.{2 if column.decimals is None else column.decimals}"
    if column.type == "float":
        return "F8.2"
    return None


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
                                 variable_value_labels=value_labels, version=STATA_VERSION, **codes)
    else:
        measures = {c.name: spss_measure(c) for c in columns}
        formats = {c.name: f for c in columns if (f := spss_format(c))}
        formats.update(missing.spss_formats(formats, columns, coded))

        def save(path):
            pyreadstat.write_sav(frame, path, file_label=file_label[:64], column_labels=labels,
                                 variable_value_labels=value_labels, variable_measure=measures,
                                 variable_format=formats, **codes)
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


class TableFiles:
    """The registry tables of one export added to its archive: a file per table (CSV, Stata, SPSS),
    or for Excel one workbook, WORKBOOK, with a sheet per table, named and headed as the import
    reads them, so it can be imported again as it is.

        with TableFiles(archive, file_format="xlsx") as tables:
            tables.add("patients", columns, rows, file_label=...)

    A workbook's sheets are written when the block ends (its rows are read then, in table order):
    a package names its sheets before their content.
    """

    def __init__(self, archive, *, file_format):
        if file_format not in FORMATS:
            raise ValueError(f"unknown format {file_format!r}: one of {', '.join(FORMATS)}")
        self.archive, self.file_format, self.sheets = archive, file_format, []

    def add(self, table, columns, rows, *, file_label=""):
        if self.file_format == "xlsx":
            self.sheets.append(xlsx_sheet(table, columns, rows))
        else:
            write_table(self.archive, table, columns, rows, file_format=self.file_format, file_label=file_label)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is None and self.sheets:
            xlsx.write_workbook(self.archive, WORKBOOK, self.sheets)
