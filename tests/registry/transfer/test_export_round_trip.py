"""Every export format read back: the registry tables as exported are the registry tables as stored.

CSV and the Excel workbook are also imported again (import_registry): into the registry they came
from, and into an empty one, which issues new pseudonyms (only the registry issues pseudonyms, so
the file names its patients by local keys there, as the import's refusal tells the user to).
"""
import csv
import datetime
import io
import math
import re
import zipfile
from decimal import Decimal

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from registry import access, dictionary
from registry.dictionary import TABLE_MODELS, TABLES
from registry.management.commands.generate_cohort import cohort_load
from registry.models import FollowUp, Metastasectomy, PrimaryTumour, SystemicTherapy
from registry.transfer.exporting import dataset_export
from registry.transfer.exporting.writers import WORKBOOK
from tests.registry.transfer.test_import_support import centres, cohort, table_contents

pytestmark = pytest.mark.django_db
CHILDREN = (FollowUp, SystemicTherapy, Metastasectomy, PrimaryTumour)


@pytest.fixture
def loaded():
    """A 30-patient synthetic registry in two centres (MUC, HD)."""
    centres()
    cohort_load(cohort(30, seed=8))


def export(tmp_path, file_format, name="export.zip"):
    path = tmp_path / name
    with path.open("wb") as handle:
        dataset_export(user=access.SYSTEM, out=handle, file_format=file_format)
    return zipfile.ZipFile(path)


def workbook_of(archive, tmp_path, name=WORKBOOK):
    """The Excel export's workbook, unpacked as a data manager would."""
    path = tmp_path / name
    path.write_bytes(archive.read(WORKBOOK))
    return path


def stored(table):
    """The table as stored: one tuple of the dictionary's columns per record, in a fixed order."""
    names = [column.attname for column in dictionary.columns(table)]
    return sorted(TABLE_MODELS[table].objects.values_list(*names), key=repr)


# --- reading each format back as the dictionary's values --------------------------------------

def _number(value):
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


def from_text(column, text):
    """A CSV cell (or a workbook's text cell) as the stored value."""
    if text is None or text == "":
        return None
    if column.type == "date":
        return datetime.date.fromisoformat(text)
    if column.type == "bool":
        return {"yes": True, "no": False}[text]
    if column.type == "int":
        return int(text)
    if column.type == "number":
        return _number(text)
    return text


def from_cell(column, value):
    """An openpyxl cell value as the stored value."""
    if isinstance(value, datetime.datetime):
        assert column.type == "date" and value.time() == datetime.time(0)
        return value.date()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        assert column.type in ("int", "number"), (column.name, value)
        return int(value) if column.type == "int" else _number(value)
    return from_text(column, value)


def from_statistics(column, value):
    """A Stata/SPSS value (codes numbered 1…n, yes/no 1/0, dates as dates) as the stored value."""
    if isinstance(value, str):
        return value or None  # Stata and SPSS strings have no missing value: blank is unknown
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if column.type == "code" and column.name != "centre":
        return column.code_values[int(value) - 1]
    if column.type == "bool":
        return bool(value)
    if column.type == "date":
        return value.date() if isinstance(value, datetime.datetime) else value
    if column.type == "int":
        return int(value)
    return _number(value)


def read_csv(archive, table):
    with archive.open(f"{table}.csv") as handle:
        reader = csv.reader(io.TextIOWrapper(handle, encoding="utf-8", newline=""))
        return next(reader), [[None if cell == "" else cell for cell in row] for row in reader], from_text


def read_xlsx(archive, table):
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(archive.read(WORKBOOK)), read_only=True)
    header, *rows = book[table].iter_rows(values_only=True)
    # The streamed sheet declares no dimension, so a row ends at its last filled cell.
    return list(header), [list(row) + [None] * (len(header) - len(row)) for row in rows], from_cell


def read_dta(archive, table):
    with archive.open(f"{table}.dta") as handle:
        frame = pd.read_stata(io.BytesIO(handle.read()), convert_categoricals=False)
    return list(frame.columns), frame.astype(object).values.tolist(), from_statistics


def read_sav(archive, table, tmp_path):
    import pyreadstat

    path = tmp_path / f"{table}.sav"
    path.write_bytes(archive.read(f"{table}.sav"))
    frame, _meta = pyreadstat.read_sav(str(path))
    return list(frame.columns), frame.astype(object).values.tolist(), from_statistics


@pytest.mark.parametrize("file_format", ["csv", "xlsx", "dta", "sav"])
def test_every_format_reads_back_as_the_stored_tables(loaded, tmp_path, file_format):
    archive = export(tmp_path, file_format)
    for table in TABLES:
        if file_format == "sav":
            header, rows, convert = read_sav(archive, table, tmp_path)
        else:
            header, rows, convert = {"csv": read_csv, "xlsx": read_xlsx, "dta": read_dta}[file_format](archive, table)
        columns = dictionary.columns(table)
        assert header == [column.name for column in columns]
        values = sorted((tuple(convert(c, v) for c, v in zip(columns, row)) for row in rows), key=repr)
        assert values == stored(table), (file_format, table)


# --- Excel: one workbook in the import's format -----------------------------------------------

def test_the_excel_export_is_one_workbook_with_a_sheet_per_table_beside_the_frame_and_dictionary(loaded, tmp_path):
    import openpyxl

    archive = export(tmp_path, "xlsx")
    assert sorted(archive.namelist()) == sorted(
        [WORKBOOK, "analysis_frame.xlsx", "data_dictionary.xlsx", "README.txt"])
    book = openpyxl.load_workbook(io.BytesIO(archive.read(WORKBOOK)), read_only=True)
    assert book.sheetnames == list(TABLES)
    for table in TABLES:  # the header the import reads: the dictionary's own column names
        header = next(book[table].iter_rows(max_row=1, values_only=True))
        assert list(header) == [column.name for column in dictionary.columns(table)]
    readme = archive.read("README.txt").decode()
    assert f"{WORKBOOK}, a sheet per table:" in readme and "imports back into this registry as it is" in readme


def import_command(path, **options):
    out = io.StringIO()
    call_command("import_registry", str(path), stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def counts(output):
    """{table: (created, updated, unchanged)} from import_registry's report."""
    return {m[1]: tuple(map(int, m.groups()[1:]))
            for m in re.finditer(r"^(\w+)\s+(\d+) created\s+(\d+) updated\s+(\d+) unchanged$", output, re.M)}


def test_the_excel_workbook_imports_back_unchanged_and_restores_records_deleted_since(loaded, tmp_path):
    before = table_contents()
    path = workbook_of(export(tmp_path, "xlsx"), tmp_path)

    report = counts(import_command(path))

    assert report == {table: (0, 0, TABLE_MODELS[table].objects.count()) for table in TABLES}
    for model in CHILDREN:  # every record but the patients themselves
        model.objects.all().delete()
    report = counts(import_command(path))
    assert [report[table][0] for table in TABLES] == [0] + [len(before[table]) for table in TABLES[1:]]
    assert table_contents() == before


def test_the_excel_export_zip_imports_as_it_came_reading_its_workbook(loaded, tmp_path):
    export(tmp_path, "xlsx")
    output = import_command(tmp_path / "export.zip")
    assert counts(output) == {table: (0, 0, TABLE_MODELS[table].objects.count()) for table in TABLES}


def local_keys(path, tmp_path):
    """The workbook as a centre names patients new to a registry: patient_id → local_id P1, P2, …
    (a copy; returns its path and {pseudonym: local key})."""
    import openpyxl

    book = openpyxl.load_workbook(path)
    keys = {row[0]: f"P{n}" for n, row in enumerate(book["patients"].iter_rows(min_row=2, values_only=True), 1)}
    for sheet in book.worksheets:
        assert sheet.cell(1, 1).value == "patient_id"
        sheet.cell(1, 1).value = "local_id"
        for (cell,) in sheet.iter_rows(min_row=2, max_col=1):
            cell.value = keys[cell.value]
    copy = tmp_path / "new-patients.xlsx"
    book.save(copy)
    return copy, keys


def test_into_an_empty_registry_the_workbook_recreates_every_record_under_new_pseudonyms(tmp_path):
    with transaction.atomic():  # a registry that is exported, then gone
        centres()
        cohort_load(cohort(20, seed=3))
        path = workbook_of(export(tmp_path, "xlsx"), tmp_path)
        before = {table: stored(table) for table in TABLES}
        transaction.set_rollback(True)
    centres()

    # As it is, the workbook names patients by pseudonyms this registry never issued.
    with pytest.raises(CommandError, match="error"):
        import_command(path)
    assert not any(TABLE_MODELS[table].objects.exists() for table in TABLES)

    new_patients, keys = local_keys(path, tmp_path)
    mapping = tmp_path / "mapping.csv"
    import_command(new_patients, mapping_out=str(mapping))

    issued = {row["local_id"]: row["patient_id"]
              for row in csv.DictReader(io.StringIO(mapping.read_text(encoding="utf-8-sig")))}
    renamed = {old: issued[key] for old, key in keys.items()}
    assert not set(renamed) & set(renamed.values())  # new pseudonyms, not the old ones
    for table in TABLES:
        expected = sorted(((renamed[row[0]], *row[1:]) for row in before[table]), key=repr)
        assert stored(table) == expected, table
    # The new registry's own export imports back unchanged.
    again = workbook_of(export(tmp_path, "xlsx", name="again.zip"), tmp_path, name="again.xlsx")
    assert all(created == updated == 0 for created, updated, _same in counts(import_command(again)).values())


def test_formula_like_text_is_exported_as_it_is_in_the_workbook_and_never_as_a_formula(tmp_path):
    import openpyxl

    from tests import factories as f

    centres()
    patient = f.patient("MUC", suffix="FORMULA", lung_mets_diagnosis_date=datetime.date(2015, 3, 1))
    f.primary_tumour(patient, diagnosis_date=datetime.date(2015, 6, 1), surgery_date=datetime.date(2015, 7, 1)).save()
    f.metastasectomy(patient, surgery_date=datetime.date(2015, 8, 1)).save()
    texts = ['=HYPERLINK("http://x","click")', "-1+2", "@SUM(A1)", "+49 89 1234"]
    for month, text in enumerate(texts, start=9):
        f.systemic_therapy(patient, start_date=datetime.date(2015, month, 1), end_date=None, regimen="other",
                           regimen_other=text).save()

    archive = export(tmp_path, "xlsx")
    data = archive.read(WORKBOOK)
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        sheets = b"".join(package.read(name) for name in package.namelist() if name.startswith("xl/worksheets/"))
        styles = package.read("xl/styles.xml").decode()
    assert not re.search(rb"<(\w+:)?f[\s>/]", sheets)  # no formula anywhere
    book = openpyxl.load_workbook(io.BytesIO(data))
    cells = [row[4] for row in book["systemic_therapies"].iter_rows(min_row=2)]
    assert [cell.value for cell in cells] == texts  # no apostrophe added
    # Excel's own mark of text typed as 'text: editing the cell keeps it text.
    assert all(cell.data_type == "s" and cell.quotePrefix for cell in cells)
    assert 'quotePrefix="1"' in styles
    plain = next(row[3] for row in book["systemic_therapies"].iter_rows(min_row=2))
    assert plain.value == "other" and not plain.quotePrefix

    SystemicTherapy.objects.all().delete()
    import_command(workbook_of(archive, tmp_path))
    assert sorted(SystemicTherapy.objects.values_list("regimen_other", flat=True)) == sorted(texts)


# --- Stata and SPSS -------------------------------------------------------------------------

def test_stata_files_are_format_118_which_stata_14_opens_as_the_readme_says(loaded, tmp_path):
    archive = export(tmp_path, "dta")
    for name in archive.namelist():
        if name.endswith(".dta"):
            assert archive.read(name)[:50].startswith(b"<stata_dta><header><release>118</release>"), name
    assert "Stata .dta format 118 (Stata 14 and later)" in archive.read("README.txt").decode()
    data = archive.read("metastasectomies.dta")
    with pd.io.stata.StataReader(io.BytesIO(data)) as reader:
        labels, value_labels = reader.variable_labels(), reader.value_labels()
    assert labels["max_lesion_diameter_mm"] == "largest lesion (mm)"
    clavien = next(labelled for name, labelled in value_labels.items() if name.startswith("clavien_dindo"))
    assert clavien == {1: "none: no complication", 2: "I", 3: "II", 4: "IIIa", 5: "IIIb", 6: "IVa", 7: "IVb",
                       8: "V: V (death)"}
    labelled = pd.read_stata(io.BytesIO(data))  # the value labels applied, as Stata shows them
    exported = [str(label).split(":")[0] for label in labelled["clavien_dindo"]]
    assert exported == list(Metastasectomy.objects.order_by("patient_id", "surgery_date", "pk")
                            .values_list("clavien_dindo", flat=True))


def test_spss_variables_carry_measure_levels_and_formats_without_spurious_decimals(loaded, tmp_path):
    import pyreadstat

    archive = export(tmp_path, "sav")
    archive.extractall(tmp_path / "out")
    meta = {}
    for table in ("patients", "primary_tumours", "metastasectomies", "systemic_therapies", "analysis_frame"):
        _frame, meta[table] = pyreadstat.read_sav(str(tmp_path / "out" / f"{table}.sav"), metadataonly=True)

    def described(table, name):
        return meta[table].variable_measure[name], meta[table].original_variable_types[name]

    assert described("patients", "histology") == ("nominal", "F1.0")
    assert described("patients", "extrapulmonary_disease_at_pm") == ("nominal", "F1.0")
    assert described("patients", "ecog") == ("ordinal", "F8.0")
    assert described("patients", "birth_year") == ("scale", "F8.0")
    assert described("patients", "lung_mets_diagnosis_date") == ("scale", "DATE11")
    assert described("patients", "patient_id")[0] == "nominal"
    assert described("primary_tumours", "grade") == ("ordinal", "F1.0")
    assert described("primary_tumours", "size_mm") == ("scale", "F8.1")
    assert described("metastasectomies", "clavien_dindo") == ("ordinal", "F1.0")
    assert described("metastasectomies", "lesions_resected") == ("scale", "F8.0")
    assert described("systemic_therapies", "regimen") == ("nominal", "F2.0")  # 12 codes
    assert described("systemic_therapies", "best_response") == ("ordinal", "F1.0")
    assert described("analysis_frame", "os_months") == ("scale", "F8.2")
    assert described("analysis_frame", "size_gt_2cm") == ("nominal", "F1.0")
    assert all(level != "unknown" for m in meta.values() for level in m.variable_measure.values())
    assert meta["primary_tumours"].variable_value_labels["grade"] == {1: "G1", 2: "G2", 3: "G3",
                                                                     4: "GX: GX (not assessable)"}


@pytest.mark.parametrize("file_format", ["dta", "sav"])
def test_variable_labels_name_each_unit_once(loaded, tmp_path, file_format):
    import pyreadstat

    archive = export(tmp_path, file_format)
    archive.extractall(tmp_path / "out")
    read = pyreadstat.read_dta if file_format == "dta" else pyreadstat.read_sav
    labels = {}
    for table in TABLES:
        _frame, meta = read(str(tmp_path / "out" / f"{table}.{file_format}"), metadataonly=True)
        labels.update(zip(meta.column_names, meta.column_labels))
    assert labels["max_lesion_diameter_mm"] == "largest lesion (mm)"
    assert labels["size_mm"] == "size (mm)"
    assert labels["hospital_stay_days"] == "hospital stay (days)"
    assert labels["birth_year"] == "year of birth"
    assert not [label for label in labels.values() if re.search(r"\((\w+)\).*\(\1\)", label)]


def test_every_dictionary_label_names_its_unit_so_the_export_adds_none():
    """The export's variable label is the dictionary's label: a column with a unit must say it there."""
    for table in TABLES:
        for column in dictionary.columns(table):
            if column.unit and column.type != "date":
                assert re.search(rf"\b{re.escape(column.unit)}\b", column.label), (table, column.name, column.label)
