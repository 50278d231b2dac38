"""Reading an uploaded file into sheets of raw cells, refusing hostile or broken files early.

Accepted: an .xlsx workbook with one sheet per table, a .zip of CSV files named after the tables,
or one CSV file for one table. The file type is told by its content (magic bytes), not trusted
from its name. Every limit comes from settings (IMPORT_*), so nothing is decompressed or parsed
beyond them: the zip directory is checked before any member is read, and members are read with a
byte budget, so a zip bomb stops at the limit instead of filling the memory.

Formulas in a workbook are refused (with the cells named): a formula's cached value may be stale
or absent, and a registry value must be what the centre typed, not what Excel last computed.
"""
import csv
import io
import re
import threading
import zipfile
import zlib
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from xml.etree import ElementTree

from django.conf import settings
from django.utils.translation import gettext as _

from registry.dictionary import TABLES, snake

# A formula is an <f> element (any namespace prefix). Four substring tests (a few ms each) rule it
# out before the regular expression (~40 ms per sheet) has to confirm it.
FORMULA_MARKS = (b"<f", b":f>", b":f ", b":f/")
XLSX_FORMULA = re.compile(rb"<(?:\w+:)?f[\s>/]")
FORMULA_CELLS_NAMED = 20  # the refusal names at most this many cells per sheet
IGNORED_MEMBERS = re.compile(r"(^|/)(__MACOSX/|\.)|^(readme|data_dictionary|analysis_frame)\b", re.IGNORECASE)
DELIMITERS = (",", ";", "\t")


class FileRefused(Exception):
    """The file cannot be imported at all; the message says why in plain words."""


@dataclass
class Sheet:
    """One table's raw content: the header and (row number, cells) pairs as in the file."""

    name: str          # as in the file (sheet name or member name)
    table: str | None  # the registry table it maps to, or None
    header: list
    rows: list         # [(row_number, [cell, ...]), ...]
    decimal_comma: bool = False  # a ';'-separated CSV from German Excel writes 17,5
    pending: Future | None = None  # a workbook sheet still being parsed: (header, rows) or FileRefused

    def load(self):
        """Wait for a sheet that is still being parsed (raises FileRefused as reading would)."""
        if self.pending is not None:
            self.header, self.rows = self.pending.result()
            self.pending = None
        return self


@dataclass
class Source:
    kind: str = "csv"  # xlsx, zip or csv
    sheets: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


# The workbook of the registry's Excel export (registry/transfer/exporting/writers.py WORKBOOK).
EXPORT_WORKBOOK = "registry.xlsx"


def limit(name):
    return getattr(settings, name)


def read_source(data, *, filename, table=None):
    """Bytes of an uploaded file → Source (sheets with raw cells), or FileRefused."""
    if not data:
        raise FileRefused(_("The file is empty."))
    if len(data) > limit("IMPORT_MAX_UPLOAD_BYTES"):
        raise FileRefused(_("The file is larger than the limit of %(mb)s MB.")
                          % {"mb": limit("IMPORT_MAX_UPLOAD_BYTES") // 2**20})
    suffix = PurePosixPath(filename or "").suffix.lower()
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        archive = _open_zip(data)
        if "xl/workbook.xml" in archive.namelist():
            if table:
                raise FileRefused(_("A workbook holds every table as its own sheet: do not choose a table."))
            return _read_workbook(data, archive)
        if any(name.endswith(("word/document.xml", "content.xml")) for name in archive.namelist()):
            raise FileRefused(_("This is not an Excel workbook (.xlsx) or a zip of CSV files."))
        if EXPORT_WORKBOOK in archive.namelist():  # the registry's own Excel export, uploaded as it came
            source = read_source(_read_member(archive, archive.getinfo(EXPORT_WORKBOOK)), filename=EXPORT_WORKBOOK,
                                 table=table)
            source.warnings.append(("", "", "", EXPORT_WORKBOOK, _(
                "Read the workbook %(name)s of the registry's export; the other files of the zip were ignored.")
                % {"name": EXPORT_WORKBOOK}))
            return source
        return _read_zip_of_csv(archive)
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise FileRefused(_("This is an old Excel file (.xls) or a password-protected workbook. "
                            "Save it as an unprotected Excel workbook (.xlsx) or as CSV."))
    if suffix in (".xlsx", ".xlsm", ".zip"):
        raise FileRefused(_("The file is not a valid %(type)s file: it may be truncated or damaged.")
                          % {"type": suffix})
    if suffix not in ("", ".csv", ".txt"):
        raise FileRefused(_("Unsupported file type %(type)s: upload an Excel workbook (.xlsx), "
                            "a zip of CSV files or one CSV file.") % {"type": suffix})
    name = PurePosixPath(filename or "upload.csv").name
    sheet_table = table or table_from_name(name)
    if not sheet_table:
        raise FileRefused(_("Cannot tell which table the CSV file %(name)s holds: name it after the "
                            "table (%(tables)s) or choose the table.")
                          % {"name": name, "tables": ", ".join(TABLES)})
    if sheet_table not in TABLES:
        raise FileRefused(_("There is no table %(table)s.") % {"table": sheet_table})
    return Source(kind="csv", sheets=[_read_csv(data, name=name, table=sheet_table)])


def table_from_name(name):
    """'patients.csv', 'Follow-up 2024.csv', 'patients (1).csv' → the table the name starts with, or None."""
    stem = snake(PurePosixPath(name).stem)
    for table in sorted(TABLES, key=len, reverse=True):
        if stem == table or stem.startswith(table + "_") or stem.startswith(table + "("):
            return table
    return None


# --- zip containers --------------------------------------------------------------------------

def _open_zip(data):
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as error:  # e.g. "zip file version 10.0"
        raise FileRefused(_("The file is damaged or truncated (not a readable zip/xlsx container).")) from error
    members = archive.infolist()
    if len(members) > limit("IMPORT_MAX_ZIP_MEMBERS"):
        raise FileRefused(_("The archive has too many files (%(n)s).") % {"n": len(members)})
    total = 0
    for member in members:
        if member.flag_bits & 0x1:
            raise FileRefused(_("The file is encrypted: save it without a password."))
        total += member.file_size
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > 2**20 and ratio > limit("IMPORT_MAX_COMPRESSION_RATIO"):
            raise FileRefused(_("The file %(member)s expands %(ratio)d-fold when unpacked: refused as a "
                                "possible zip bomb.") % {"member": member.filename, "ratio": ratio})
    if total > limit("IMPORT_MAX_UNPACKED_BYTES"):
        raise FileRefused(_("The file unpacks to %(mb)d MB, more than the limit of %(limit)d MB.")
                          % {"mb": total // 2**20, "limit": limit("IMPORT_MAX_UNPACKED_BYTES") // 2**20})
    return archive


def _read_member(archive, info):
    """A member's bytes, never more than it declares (a lying header cannot inflate it)."""
    budget = min(info.file_size, limit("IMPORT_MAX_UNPACKED_BYTES"))
    try:
        with archive.open(info) as handle:
            data = handle.read(budget + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError) as error:
        raise FileRefused(_("The file is damaged or truncated (%(member)s cannot be unpacked).")
                          % {"member": info.filename}) from error
    if len(data) > budget:
        raise FileRefused(_("%(member)s is larger than declared: refused.") % {"member": info.filename})
    return data


def _read_zip_of_csv(archive):
    source = Source(kind="zip")
    seen = {}
    for info in archive.infolist():
        if info.is_dir():
            continue
        name = PurePosixPath(info.filename).name
        if IGNORED_MEMBERS.search(info.filename) or IGNORED_MEMBERS.search(name):
            continue
        if not name.lower().endswith(".csv"):
            source.warnings.append(("", "", "", info.filename, _("Ignored: not a CSV file.")))
            continue
        table = table_from_name(name)
        if table is None:
            source.warnings.append(("", "", "", info.filename,
                                    _("Ignored: the file name names no table (%(tables)s).")
                                    % {"tables": ", ".join(TABLES)}))
            continue
        if table in seen:
            raise FileRefused(_("Two files hold the table %(table)s: %(a)s and %(b)s.")
                              % {"table": table, "a": seen[table], "b": info.filename})
        seen[table] = info.filename
        source.sheets.append(_read_csv(_read_member(archive, info), name=name, table=table))
    if not source.sheets:
        raise FileRefused(_("The zip file holds no CSV file named after a table (%(tables)s).")
                          % {"tables": ", ".join(TABLES)})
    return source


# --- CSV -------------------------------------------------------------------------------------

def decode_text(data, name):
    """UTF-8 (with or without BOM), UTF-16 with BOM, or Windows-1252, in that order."""
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise FileRefused(_("%(name)s is not a text (CSV) file.") % {"name": name})
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    elif data.startswith(b"\xef\xbb\xbf"):
        encoding = "utf-8-sig"
    else:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "cp1252"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise FileRefused(_("%(name)s is neither UTF-8 nor Windows-1252 text.") % {"name": name}) from error


def _delimiter(first_line):
    """The separator that splits the header into the most known column names (',' on a tie)."""
    from registry.dictionary import IMPORT_COLUMNS
    known = {c.name for cols in IMPORT_COLUMNS.values() for c in cols}

    def score(delimiter):
        cells = [snake(c.strip().strip('"')) for c in first_line.split(delimiter)]
        return (sum(c in known for c in cells), len(cells))
    return max(DELIMITERS, key=score)


def _too_wide(name, columns):
    return FileRefused(_("%(name)s has %(n)s columns, more than the limit of %(limit)s: it is not a table of "
                         "the registry.") % {"name": name, "n": columns, "limit": limit("IMPORT_MAX_COLUMNS")})


def _too_many_cells(name):
    return FileRefused(_("%(name)s has more than the limit of %(limit)s cells.")
                       % {"name": name, "limit": limit("IMPORT_MAX_CELLS")})


def _read_csv(data, *, name, table):
    text = decode_text(data, name)
    first_line = text.split("\n", 1)[0]
    # Counted before anything is split: a header of millions of columns is refused at once.
    widest = 1 + max(first_line.count(d) for d in DELIMITERS)
    if widest > limit("IMPORT_MAX_COLUMNS"):
        raise _too_wide(name, widest)
    delimiter = _delimiter(first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None:
            raise FileRefused(_("%(name)s is empty.") % {"name": name})
        rows, total = [], len(header)
        for cells in reader:
            rows.append((reader.line_num, cells))
            total += len(cells)
            if len(cells) > limit("IMPORT_MAX_COLUMNS"):
                raise _too_wide(f"{name}, line {reader.line_num},", len(cells))
            if total > limit("IMPORT_MAX_CELLS"):
                raise _too_many_cells(name)
            if len(rows) > limit("IMPORT_MAX_ROWS"):
                raise FileRefused(_("%(name)s has more than the limit of %(limit)s rows.")
                                  % {"name": name, "limit": limit("IMPORT_MAX_ROWS")})
    except csv.Error as error:
        raise FileRefused(_("%(name)s cannot be read as CSV (line %(line)s): %(error)s")
                          % {"name": name, "line": reader.line_num, "error": error}) from error
    return Sheet(name=name, table=table, header=header, rows=rows, decimal_comma=delimiter == ";")


# --- xlsx ------------------------------------------------------------------------------------

def _sheet_members(archive):
    return [info for info in archive.infolist()
            if info.filename.startswith("xl/worksheets/") and info.filename.endswith(".xml")]


def _formula_cells(archive):
    """[(member, 'B7'), ...] of cells holding a formula, by a scan of the sheet XML."""
    found = []
    for info in _sheet_members(archive):
        data = _read_member(archive, info)
        if any(mark in data for mark in FORMULA_MARKS) and XLSX_FORMULA.search(data):
            found.append((info.filename, _cells_with_formulas(data) or ["?"]))
    return found


def _cells_with_formulas(data):
    """The references of the first cells that hold an <f> element, by one streaming pass over the
    XML (linear in its size: a regular expression for "a cell ... its formula" backtracked on
    crafted input, 1 s for 9 KB and minutes for 45 KB)."""
    cells, cell = [], None
    try:
        for event, element in ElementTree.iterparse(io.BytesIO(data), events=("start", "end")):
            name = element.tag.rpartition("}")[2]
            if event == "start" and name == "c":
                cell = element.get("r") or "?"
            elif event == "start" and name == "f" and cell is not None:
                if not cells or cells[-1] != cell:
                    cells.append(cell)
                if len(cells) == FORMULA_CELLS_NAMED:
                    break
            elif event == "end":
                if name == "c":
                    cell = None
                element.clear()  # memory stays flat whatever the sheet's size
    except ElementTree.ParseError:
        pass  # a damaged sheet: the cells found so far (or "?") are named
    return cells


def _sheet_file_names(archive):
    """{'xl/worksheets/sheet1.xml': 'patients', ...} from the workbook's relationships."""
    try:
        workbook = _read_member(archive, archive.getinfo("xl/workbook.xml")).decode("utf-8", "replace")
        rels = _read_member(archive, archive.getinfo("xl/_rels/workbook.xml.rels")).decode("utf-8", "replace")
    except KeyError:
        return {}
    targets = dict(re.findall(r'<Relationship\b[^>]*?Id="([^"]+)"[^>]*?Target="([^"]+)"', rels))
    targets.update({rid: target for target, rid in
                    re.findall(r'<Relationship\b[^>]*?Target="([^"]+)"[^>]*?Id="([^"]+)"', rels)})
    names = {}
    for name, rid in re.findall(r'<sheet\b[^>]*?name="([^"]+)"[^>]*?r:id="([^"]+)"', workbook):
        target = targets.get(rid, "")
        target = target.lstrip("/") if target.startswith("/") else "xl/" + target
        names[target] = name
    return names


def _read_workbook(data, archive):
    formulas = _formula_cells(archive)
    if formulas:
        names = _sheet_file_names(archive)
        where = "; ".join(f"{names.get(member, member)}: {', '.join(cells)}" for member, cells in formulas)
        raise FileRefused(_("The workbook contains formulas, which the import refuses (a formula's "
                            "value can be stale). Replace them by their values (copy, paste as values) "
                            "and upload again. Formula cells: %(where)s") % {"where": where})
    import python_calamine

    try:
        names = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data)).sheet_names
    except Exception as error:  # calamine raises its own error types for every kind of damage
        raise FileRefused(_("The workbook cannot be read: it may be truncated or damaged (%(error)s).")
                          % {"error": type(error).__name__}) from error
    source = Source(kind="xlsx")
    seen = {}
    for name in names:
        table = snake(name)
        if table not in TABLES:
            source.warnings.append((name, "", "", "", _("Ignored: the sheet name names no table (%(tables)s).")
                                    % {"tables": ", ".join(TABLES)}))
            continue
        if table in seen:
            raise FileRefused(_("Two sheets hold the table %(table)s: %(a)s and %(b)s.")
                              % {"table": table, "a": seen[table], "b": name})
        seen[table] = name
        source.sheets.append(Sheet(name=name, table=table, header=[], rows=[], pending=Future()))
    if not source.sheets:
        raise FileRefused(_("The workbook has no sheet named after a table (%(tables)s); its sheets are %(names)s.")
                          % {"tables": ", ".join(TABLES), "names": ", ".join(names) or "—"})
    # calamine parses a sheet without holding the GIL: parse the next sheet in a thread while the
    # caller checks the cells of the one before.
    threading.Thread(target=_parse_sheets, args=(data, source.sheets), name="import-xlsx", daemon=True).start()
    return source


def _parse_sheets(data, sheets):
    """Fill each sheet's `pending` future with (header, [(row number, cells), ...]) or FileRefused."""
    import python_calamine

    max_rows = limit("IMPORT_MAX_ROWS")
    try:
        workbook = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    except Exception as error:
        for sheet in sheets:
            sheet.pending.set_exception(FileRefused(_("The workbook cannot be read (%(error)s).")
                                                    % {"error": type(error).__name__}))
        return
    for sheet in sheets:
        try:
            parsed = workbook.get_sheet_by_name(sheet.name)
            if parsed.height > max_rows + 1:
                raise FileRefused(_("The sheet %(sheet)s has %(n)s rows, more than the limit of %(limit)s.")
                                  % {"sheet": sheet.name, "n": parsed.height, "limit": max_rows})
            if parsed.width > limit("IMPORT_MAX_COLUMNS"):
                raise _too_wide(sheet.name, parsed.width)
            if parsed.width * parsed.height > limit("IMPORT_MAX_CELLS"):
                raise _too_many_cells(sheet.name)
            cells = parsed.to_python(skip_empty_area=False)
            sheet.pending.set_result((cells[0] if cells else [], list(enumerate(cells[1:], start=2))))
        except FileRefused as refusal:
            sheet.pending.set_exception(refusal)
        except Exception as error:
            sheet.pending.set_exception(FileRefused(
                _("The sheet %(sheet)s cannot be read: the workbook may be damaged (%(error)s).")
                % {"sheet": sheet.name, "error": type(error).__name__}))
