"""Sheets of raw cells → typed rows, checked cell by cell against the data dictionary.

Header: column names are matched case-insensitively ('Event Date' = event_date); unknown columns
are ignored with a warning; a missing required column is an error; a missing optional column is
a warning and leaves that column of existing records unchanged (new records get a blank).

Each row names its patient by `patient_id` (the pseudonym of a patient already in the registry)
or by `local_id` (the file's own key for a patient new in it): a sheet has one of the two columns
or both, and a row fills exactly one. The local key is kept on the Row, never among its values.
"""
from dataclasses import dataclass, field

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from registry import dictionary
from registry.dictionary import LOCAL_ID
from registry.transfer.importing.cells import CellError, converter, is_blank, missing_code, shown


@dataclass(frozen=True)
class Problem:
    """One finding, located as the user sees the file: sheet, row number, column, value."""

    sheet: str
    row: object
    column: str
    value: str
    message: str

    def as_list(self):
        return [self.sheet, self.row, self.column, self.value, self.message]


@dataclass
class Row:
    table: str
    sheet: str
    number: int
    values: dict              # attname -> typed value, for the columns present in the sheet
    ok: bool = True
    record: object = None     # the model instance the row became (new or stored)
    local_id: object = None   # the file's key of a patient new in it (never stored)

    @property
    def patient_id(self):
        return self.values.get("patient_id")


@dataclass
class ParsedSheet:
    sheet: str
    table: str
    rows: list = field(default_factory=list)
    columns: tuple = ()       # the dictionary columns present in the file
    complete: bool = True     # False when a required column is missing: no row can be merged


UNKNOWN_NAMED = 20  # unknown columns named in the one warning about them


def _header(sheet, errors, warnings):
    """[(index, Column)] for the recognised columns of the sheet's header row."""
    by_name = {c.name: c for c in dictionary.import_columns(sheet.table)}
    found, seen, unknown = [], {}, []
    for index, raw in enumerate(sheet.header):
        if is_blank(raw):
            continue
        name = dictionary.snake(shown(raw))
        column = by_name.get(name)
        if column is None:
            unknown.append(shown(raw))
            continue
        if name in seen:
            errors.append(Problem(sheet.name, 1, name, "", _("The column appears twice (columns %(a)s and %(b)s).")
                                  % {"a": seen[name] + 1, "b": index + 1}))
            continue
        seen[name] = index
        found.append((index, column))
    if unknown:  # one warning, however many columns
        more = len(unknown) - UNKNOWN_NAMED
        warnings.append(Problem(sheet.name, 1, ", ".join(unknown[:UNKNOWN_NAMED]) + (f" … (+{more})" if more > 0 else ""),
                                "", ngettext("Unknown column: ignored.", "Unknown columns: ignored.", len(unknown))))
    return found


def parse_sheet(sheet, *, centre_codes, errors, warnings):
    """Convert every cell of a sheet; problems are appended to `errors` / `warnings`."""
    parsed = ParsedSheet(sheet=sheet.name, table=sheet.table)
    if not sheet.header or all(is_blank(cell) for cell in sheet.header):
        errors.append(Problem(sheet.name, 1, "", "", _("The header row (column names) is missing.")))
        parsed.complete = False
        return parsed
    header = _header(sheet, errors, warnings)
    present = {column.name for _index, column in header}
    keys = present & {"patient_id", LOCAL_ID}
    if not keys:
        errors.append(Problem(sheet.name, 1, "patient_id", "", _(
            "The sheet needs a patient_id column (the pseudonyms of patients already in the registry) or a "
            "local_id column (your keys for patients new in this file), or both.")))
        parsed.complete = False
    for column in dictionary.columns(sheet.table):
        if column.name in present or column.name == "patient_id":
            continue
        if column.required:
            errors.append(Problem(sheet.name, 1, column.name, "", _("The required column %(column)s is missing.")
                                  % {"column": column.name}))
            parsed.complete = False
        else:
            warnings.append(Problem(sheet.name, 1, column.name, "",
                                    _("Column missing: left unchanged in existing records, blank in new ones.")))
    parsed.columns = tuple(column for _index, column in header)
    plan = [(index, column, column.attname, _memoised(converter(
        column, centre_codes=centre_codes, decimal_comma=sheet.decimal_comma), blank=_blank(column, keys),
        column=column)) for index, column in header]
    name, table, complete = sheet.name, sheet.table, parsed.complete
    rows = [(number, cells) for number, cells in sheet.rows if not _blank_line(cells)]
    numbers = [number for number, _cells in rows]
    need = max((index for index, *_rest in plan), default=-1) + 1
    grid = [cells if len(cells) >= need else list(cells) + [None] * (need - len(cells)) for _number, cells in rows]
    by_column = list(zip(*grid)) if grid else []
    ok = [complete] * len(rows)
    converted = []
    coded = []  # the attnames of the columns with a missing-data code in some cell
    # Column by column, each distinct value converted once (codes, dates and yes/no repeat a lot):
    # a dictionary lookup per cell instead of a conversion.
    for index, column, attname, convert in plan:
        raw_values = by_column[index] if by_column else ()
        if any(raw.__class__ is bool for raw in raw_values):  # True == 1 == 1.0: no shared lookup
            values = list(map(convert, raw_values))
            distinct = values
        else:
            lookup = {raw: convert(raw) for raw in set(raw_values)}
            values = list(map(lookup.__getitem__, raw_values))
            distinct = lookup.values()
        if any(value.__class__ is Coded for value in distinct):
            coded.append(attname)
        if distinct is not values and not any(value.__class__ is Invalid for value in distinct):
            converted.append(values)  # no cell failed: nothing to report cell by cell
            continue
        for position, value in enumerate(values):
            if value.__class__ is Invalid:
                raw = raw_values[position]
                errors.append(Problem(name, numbers[position], column.name, shown(raw), value.message))
                values[position] = raw
                ok[position] = False
        converted.append(values)
    attnames = [attname for _index, _column, attname, _convert in plan]
    parsed.rows = [Row(table, name, number, dict(zip(attnames, values)), ok=row_ok)
                   for number, values, row_ok in zip(numbers, zip(*converted) if converted else [()] * len(rows), ok)]
    _move_codes(parsed.rows, coded)
    if LOCAL_ID in keys:
        _local_ids(parsed.rows, both="patient_id" in keys, errors=errors)
    return parsed


def _move_codes(rows, attnames):
    """A cell holding a missing-data code leaves its column empty and the code in the row's
    `missing_codes` ({column: code}), as the record keeps it."""
    for row in rows:
        for attname in attnames:
            value = row.values[attname]
            if value.__class__ is Coded:
                row.values[attname] = None
                row.values.setdefault("missing_codes", {})[attname] = value.code


def _blank(column, keys):
    """The problem of a blank cell of `column` (None: blank is allowed), given the patient key
    columns of the sheet: with both, a row fills one of them (checked by _local_ids)."""
    if column.name == "patient_id" and LOCAL_ID not in keys:
        return _("A value is required: the pseudonym of a patient already in the registry. A patient new in "
                 "this file is named by a local_id instead (add a local_id column).")
    if column.name == LOCAL_ID and "patient_id" not in keys:
        return _("A value is required: your key for a patient new in this file. A patient already in the "
                 "registry is named by its pseudonym instead (add a patient_id column).")
    if column.name in ("patient_id", LOCAL_ID):
        return None
    return _("A value is required.") if column.required else None


def _local_ids(rows, *, both, errors):
    """Move each row's local key out of its values; with both key columns, a row fills exactly one."""
    for row in rows:
        row.local_id = local_id = row.values.pop(LOCAL_ID)
        if not both:
            continue
        patient_id = row.values["patient_id"]
        if patient_id is None and local_id is None:
            errors.append(Problem(row.sheet, row.number, "patient_id", "", _(
                "Fill patient_id (a patient already in the registry) or local_id (a patient new in this file).")))
            row.ok = False
        elif patient_id is not None and local_id is not None:
            errors.append(Problem(row.sheet, row.number, LOCAL_ID, shown(local_id), _(
                "Fill either patient_id or local_id, not both: patient_id names a patient already in the "
                "registry, local_id a patient new in this file.")))
            row.ok = False


def _blank_line(cells):
    for cell in cells:
        if not (cell is None or cell == "" or (cell.__class__ is str and cell.isspace())):
            return False
    return True


class Invalid:
    """A cell that failed its column's check (a value of the lookup like any other)."""

    __slots__ = ("message",)

    def __init__(self, message):
        self.message = message


class Coded:
    """A cell holding a missing-data code (UNK, ND, NA) in an optional column."""

    __slots__ = ("code",)

    def __init__(self, code):
        self.code = code


def _memoised(convert, *, blank, column):
    """convert() with blank handling (`blank`: the problem of a blank cell, or None) and missing-data
    codes (Coded in an optional column, Invalid in a required one), returning Invalid instead of
    raising (so it can be looked up)."""
    required = Invalid(blank) if blank else None

    def checked(raw):
        if is_blank(raw):
            return required
        code = missing_code(column, raw)
        if code is not None:
            if column.missing_codes:
                return Coded(code)
            return Invalid(_("%(code)s is a missing-data code, and %(column)s is required: it needs a value (the "
                             "codes UNK, ND and NA are only for optional columns).")
                           % {"code": code, "column": column.name})
        try:
            return convert(raw)
        except CellError as error:
            return Invalid(str(error))
    return checked
