"""Builders shared by the import and export tests (this module holds no tests itself)."""
import copy
import csv
import functools
import io
import zipfile

from registry import access, synthetic
from registry.dictionary import TABLE_MODELS, TABLES
from registry.transfer.exporting import xlsx
from registry.transfer.importing import file_import
from tests import factories as f

# Ids and REDCap instances are never given twice: a record deleted and imported again gets new ones.
BOOKKEEPING = ("id", "version", "created_at", "updated_at", "redcap_instance")


@functools.lru_cache(maxsize=8)
def _cohort(patients, seed):
    return synthetic.generate_cohort(patients=patients, centres=2, seed=seed)  # centres MUC and HD


def cohort(patients=30, seed=5):
    """A synthetic cohort (a private copy, free to change): {table: [row dict]}, each patient with a
    pseudonym (to load with cohort_load, or to filter by centre before `new_patients`)."""
    return copy.deepcopy(_cohort(patients, seed))


def new_patients(tables):
    """The tables as a centre writes patients new to the registry: named by local keys (local_id
    P1, P2, …, in the order of the patients sheet) instead of pseudonyms."""
    return synthetic.local_keys(tables)


def new_cohort(patients=30, seed=5):
    """A synthetic cohort of new patients, named by local keys (a private copy, free to change)."""
    return new_patients(cohort(patients, seed))


def pseudonym_of(report, local_id):
    """The pseudonym the import issued for a local key."""
    return next(pseudonym for key, pseudonym, _centre in report.pseudonyms if key == local_id)


def pseudonymised(tables, report):
    """The tables as the centre writes them once it has the import's mapping: the patients the
    import created named by their pseudonyms (a private copy, free to change)."""
    issued = {key: pseudonym for key, pseudonym, _centre in report.pseudonyms}
    return {table: [{"patient_id": issued[row["local_id"]], **{k: v for k, v in row.items() if k != "local_id"}}
                     if row.get("local_id") in issued else dict(row) for row in rows]
            for table, rows in tables.items()}


def sheet_columns(table, rows):
    """The sheet's columns: the dictionary's, naming patients by patient_id, local_id or both (as
    the rows do)."""
    keys = [key for key in ("patient_id", "local_id") if any(row.get(key) is not None for row in rows)]
    columns = list(synthetic.COLUMNS[table])
    columns[0:1] = keys or ["patient_id"]
    return columns


def centres():
    return f.centre("MUC"), f.centre("HD")


def cell(value):
    return ("yes" if value else "no") if isinstance(value, bool) else value


def workbook_bytes(tables, columns=None, *, boolean_cells=False):
    """An import workbook (one sheet per table), written fast by the export's xlsx writer.
    Booleans are written as yes/no text, or as Excel's TRUE/FALSE cells with `boolean_cells`."""
    buffer = io.BytesIO()
    sheets = []
    convert = (lambda value: value) if boolean_cells else cell
    for table, rows in tables.items():
        names = (columns or {}).get(table) or sheet_columns(table, rows)
        sheets.append((table, names, [[convert(row.get(c)) for c in names] for row in rows]))
    xlsx.write_package(buffer, sheets)
    return buffer.getvalue()


def csv_bytes(rows, header, *, delimiter=",", encoding="utf-8"):
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else cell(row.get(c)) for c in header])
    return buffer.getvalue().encode(encoding)


def zip_bytes(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def run(data, *, user=access.SYSTEM, filename="centre.xlsx", **options):
    return file_import(user=user, data=data, filename=filename, **options)


def table_contents():
    """Every clinical table as sorted tuples of its dictionary columns (no bookkeeping)."""
    contents = {}
    for table in TABLES:
        model = TABLE_MODELS[table]
        names = [field.attname for field in model._meta.concrete_fields if field.name not in BOOKKEEPING]
        contents[table] = sorted(model.objects.values_list(*names), key=repr)
    return contents


def errors_of(report):
    return [(e.sheet, e.row, e.column, e.value) for e in report.errors]
