"""Missing-data codes through the import and the export: a cell UNK, ND or NA (any case) in an optional
column sets the record's code, in a required column it is an error at its cell; an unchanged file
stays unchanged; every export format writes each code the way that format keeps a reason for a
missing value, and reads back."""
import csv
import datetime
import io
import zipfile

import pytest

from registry import access
from registry.models import FollowUp, Metastasectomy, Patient, PrimaryTumour, SystemicTherapy
from registry.transfer.exporting import dataset_export
from registry.transfer.exporting.writers import WORKBOOK
from tests.registry.transfer.test_import_support import (
    centres,
    csv_bytes,
    pseudonymised,
    run,
    table_contents,
    workbook_bytes,
)

pytestmark = pytest.mark.django_db
D = datetime.date

CASE = {
    "patients": [{"local_id": "P1", "centre": "MUC", "sex": "female", "birth_year": 1960, "histology": "LMS",
                  "lung_mets_diagnosis_date": "2015-03-01", "extrapulmonary_disease_at_pm": "no", "ecog": "unk"}],
    "primary_tumours": [{"local_id": "P1", "diagnosis_date": "2012-05-01", "site": "extremity", "size_mm": "ND",
                         "depth": "deep", "grade": "UNK", "surgery_date": "2012-06-01", "margin": "R0",
                         "radiotherapy": "adjuvant", "radiotherapy_end_date": "UNK",
                         "local_recurrence_before_pm": "na"}],
    "metastasectomies": [{"local_id": "P1", "surgery_date": "2015-04-01", "side": "right", "approach": "vats",
                          "resection_type": "wedge", "lesions_resected": 1, "max_lesion_diameter_mm": 15,
                          "diameter_source": "UNK", "margin": "R0", "lymph_node_sampling": "ND",
                          "clavien_dindo": "none", "hospital_stay_days": "NA"}],
    "systemic_therapies": [{"local_id": "P1", "start_date": "2015-05-01", "end_date": "Unk", "regimen": "other",
                            "regimen_other": "UNK", "intent": "pm_adjuvant", "cycles": "ND", "best_response": "NA"}],
    "follow_up": [{"local_id": "P1", "event_date": "2016-01-01", "event": "contact", "recurrence_site": "NA",
                   "cause_of_death": "na"}],
}
CODES = {
    Patient: {"ecog": "UNK"},
    PrimaryTumour: {"size_mm": "ND", "grade": "UNK", "radiotherapy_end_date": "UNK", "local_recurrence_before_pm": "NA"},
    Metastasectomy: {"diameter_source": "UNK", "lymph_node_sampling": "ND", "hospital_stay_days": "NA"},
    SystemicTherapy: {"end_date": "UNK", "regimen_other": "UNK", "cycles": "ND", "best_response": "NA"},
    FollowUp: {"recurrence_site": "NA", "cause_of_death": "NA"},
}


def columns(key="local_id"):
    """The sheets' columns, naming the patient by its local_id (new) or patient_id (imported)."""
    return {table: [key, *list(rows[0])[1:]] for table, rows in CASE.items()}


@pytest.fixture
def imported(coordinator):
    """The case imported from a real workbook; returns the import report."""
    report = run(workbook_bytes(CASE, columns()), user=coordinator, filename="muc.xlsx")
    assert report.ok, report.errors
    return report


@pytest.fixture
def coordinator():
    from tests import factories as f

    centres()
    return f.user("coordinator", memberships=[("MUC", "coordinator"), ("HD", "coordinator")])


def stored_codes():
    return {model: model.objects.get().missing_codes for model in CODES}


def test_a_workbook_with_codes_in_optional_columns_stores_them_with_empty_values(imported):
    assert stored_codes() == CODES
    tumour = PrimaryTumour.objects.get()
    assert tumour.grade is None and tumour.size_mm is None and tumour.radiotherapy_end_date is None
    assert tumour.local_recurrence_before_pm is None and Patient.objects.get().ecog is None
    assert PrimaryTumour.history.get().missing_codes == CODES[PrimaryTumour]  # audited as imported


def test_the_same_file_again_is_unchanged_and_a_blank_clears_a_code(imported, coordinator):
    again = pseudonymised(CASE, imported)
    report = run(workbook_bytes(again, columns("patient_id")), user=coordinator, filename="muc.xlsx")
    assert report.ok and report.totals() == {"created": 0, "updated": 0, "unchanged": 5}

    again["patients"][0]["ecog"] = ""  # a blank is not "unknown": the code goes
    again["primary_tumours"][0]["grade"] = "G2"  # a value replaces the code
    report = run(workbook_bytes(again, columns("patient_id")), user=coordinator, filename="muc.xlsx")
    assert report.ok, report.errors
    assert report.counts["patients"]["updated"] == report.counts["primary_tumours"]["updated"] == 1
    assert Patient.objects.get().missing_codes == {} and Patient.objects.get().version == 2
    tumour = PrimaryTumour.objects.get()
    assert tumour.grade == "G2" and "grade" not in tumour.missing_codes and tumour.missing_code("size_mm") == "ND"


def test_a_sheet_without_a_column_keeps_that_columns_code(imported, coordinator):
    rows = pseudonymised(CASE, imported)["primary_tumours"]
    header = [c for c in columns()["primary_tumours"] if c not in ("local_id", "grade")]
    report = run(csv_bytes(rows, ["patient_id", *header]), user=coordinator, filename="primary_tumours.csv")
    assert report.ok and report.counts["primary_tumours"]["unchanged"] == 1
    assert PrimaryTumour.objects.get().missing_codes == CODES[PrimaryTumour]


def test_a_code_in_a_required_column_is_an_error_naming_row_column_and_problem(coordinator):
    rows = [dict(CASE["patients"][0]), {**CASE["patients"][0], "local_id": "P2", "birth_year": "UNK", "sex": "nd"}]
    report = run(csv_bytes(rows, list(rows[0])), user=coordinator, filename="patients.csv")
    assert not report.written and not Patient.objects.exists()
    found = {(e.sheet, e.row, e.column, e.value): e.message for e in report.errors}
    assert set(found) == {("patients.csv", 3, "birth_year", "UNK"), ("patients.csv", 3, "sex", "nd")}
    assert found[("patients.csv", 3, "birth_year", "UNK")] == (
        "UNK is a missing-data code, and birth_year is required: it needs a value (the codes UNK, ND and NA are "
        "only for optional columns).")


def test_no_code_stands_in_for_the_site_of_a_recurrence_on_import(coordinator):
    tables = {**CASE, "follow_up": [{**CASE["follow_up"][0], "event": "recurrence", "recurrence_site": "UNK",
                                     "cause_of_death": ""}]}
    report = run(workbook_bytes(tables, columns()), user=coordinator, filename="muc.xlsx")
    assert [(e.column, e.value) for e in report.errors] == [("recurrence_site", "")]
    assert "The site of a recurrence is required" in report.errors[0].message


# --- export ------------------------------------------------------------------------------------------

def export(tmp_path, file_format, **options):
    path = tmp_path / f"export-{file_format}.zip"
    with path.open("wb") as handle:
        dataset_export(user=access.SYSTEM, out=handle, file_format=file_format, **options)
    return zipfile.ZipFile(path)


def read_csv(archive, member):
    return list(csv.DictReader(io.TextIOWrapper(archive.open(member), encoding="utf-8", newline="")))


def test_csv_export_writes_the_codes_and_imports_back_unchanged(imported, tmp_path):
    archive = export(tmp_path, "csv")
    patient = read_csv(archive, "patients.csv")[0]
    tumour = read_csv(archive, "primary_tumours.csv")[0]
    therapy = read_csv(archive, "systemic_therapies.csv")[0]
    assert patient["ecog"] == "UNK"
    assert (tumour["grade"], tumour["size_mm"], tumour["radiotherapy_end_date"],
            tumour["local_recurrence_before_pm"]) == ("UNK", "ND", "UNK", "NA")
    assert (therapy["end_date"], therapy["regimen_other"], therapy["cycles"]) == ("UNK", "UNK", "ND")
    assert tumour["diagnosis_date"] == "2012-05-01"  # the values around them as always
    dictionary = {(r["table"], r["variable"]): r for r in read_csv(archive, "data_dictionary.csv")}
    assert dictionary[("patients", "ecog")]["missing_codes"] == "UNK=Unknown | ND=Not done | NA=Not applicable"
    assert "Missing-data codes: an optional cell may hold UNK" in archive.read("README.txt").decode()

    before = table_contents()
    report = run(open(archive.filename, "rb").read(), filename="export.zip")
    assert report.ok, report.errors
    assert report.totals() == {"created": 0, "updated": 0, "unchanged": 5}
    assert table_contents() == before


def test_intervals_export_keeps_the_code_of_a_date(imported, tmp_path, settings):
    therapy = read_csv(export(tmp_path, "csv", deidentify="intervals"), "systemic_therapies.csv")[0]
    assert therapy["end_date_days"] == "UNK" and therapy["start_date_days"] == "30"


def test_xlsx_export_writes_the_codes_as_text_beside_real_numbers_and_dates(imported, tmp_path):
    import openpyxl

    archive = export(tmp_path, "xlsx")
    book = openpyxl.load_workbook(io.BytesIO(archive.read(WORKBOOK)), read_only=True)
    sheet = book["primary_tumours"]
    header, row = list(sheet.iter_rows(max_row=2, values_only=True))
    cells = dict(zip(header, row))
    assert (cells["grade"], cells["size_mm"], cells["radiotherapy_end_date"]) == ("UNK", "ND", "UNK")
    assert cells["local_recurrence_before_pm"] == "NA"
    assert isinstance(cells["diagnosis_date"], datetime.datetime) and isinstance(cells["surgery_date"], datetime.datetime)
    sheet = book["metastasectomies"]
    header, row = list(sheet.iter_rows(max_row=2, values_only=True))
    cells = dict(zip(header, row))
    assert cells["hospital_stay_days"] == "NA" and cells["lesions_resected"] == 1


def test_stata_export_writes_extended_missing_values_with_value_labels(imported, tmp_path):
    import pyreadstat

    archive = export(tmp_path, "dta")
    archive.extractall(tmp_path / "out")
    path = str(tmp_path / "out" / "primary_tumours.dta")
    frame, meta = pyreadstat.read_dta(path, user_missing=True)
    row = frame.iloc[0]
    assert (row["grade"], row["size_mm"], row["radiotherapy_end_date"], row["local_recurrence_before_pm"]) == (
        "a", "b", "a", "c")  # .a UNK, .b ND, .c NA
    assert meta.variable_value_labels["grade"]["a"] == "UNK: Unknown"
    assert meta.variable_value_labels["grade"][3] == "G3"  # the column's own labels stay
    assert meta.variable_value_labels["size_mm"] == {"a": "UNK: Unknown", "b": "ND: Not done", "c": "NA: Not applicable"}
    assert meta.original_variable_types["radiotherapy_end_date"] == "%td"  # still a date column
    assert row["diagnosis_date"] == D(2012, 5, 1)
    plain, _meta = pyreadstat.read_dta(path)  # without asking for them, Stata's missing values are missing
    assert plain[["grade", "size_mm", "radiotherapy_end_date"]].isna().all(axis=None)
    therapies, _meta = pyreadstat.read_dta(str(tmp_path / "out" / "systemic_therapies.dta"), user_missing=True)
    assert therapies.iloc[0]["regimen_other"] == "UNK"  # a text column holds the code itself


@pytest.mark.parametrize("file_format, unknown", [("dta", "a"), ("sav", 99997.0)])
def test_a_coded_cell_stays_apart_from_blanks_and_values_of_its_column(imported, tmp_path, file_format, unknown):
    import pyreadstat

    from tests import factories as f

    blank, valued = f.patient("MUC", suffix="ZBLANK", ecog=None), f.patient("MUC", suffix="ZVALUE", ecog=2)
    export(tmp_path, file_format).extractall(tmp_path / "out")
    read = pyreadstat.read_dta if file_format == "dta" else pyreadstat.read_sav
    frame, _meta = read(str(tmp_path / "out" / f"patients.{file_format}"), user_missing=True)
    ecog = dict(zip(frame["patient_id"], frame["ecog"]))
    coded = Patient.objects.exclude(pk__in=[blank.pk, valued.pk]).get().pk
    assert ecog[coded] == unknown and ecog[valued.pk] == 2 and ecog[blank.pk] != ecog[blank.pk]  # NaN


def test_spss_export_writes_user_missing_values_with_value_labels(imported, tmp_path):
    import pyreadstat

    archive = export(tmp_path, "sav")
    archive.extractall(tmp_path / "out")
    path = str(tmp_path / "out" / "systemic_therapies.sav")
    frame, meta = pyreadstat.read_sav(path, user_missing=True)
    row = frame.iloc[0]
    assert (row["cycles"], row["best_response"], row["end_date"], row["regimen_other"]) == (
        99998.0, 99999.0, D(1582, 10, 15), "UNK")
    assert meta.missing_ranges["cycles"] == [{"lo": v, "hi": v} for v in (99997.0, 99998.0, 99999.0)]
    assert meta.missing_ranges["end_date"][0] == {"lo": D(1582, 10, 15), "hi": D(1582, 10, 15)}
    assert [r["lo"] for r in meta.missing_ranges["regimen_other"]] == ["UNK", "ND", "NA"]
    assert meta.variable_value_labels["best_response"][99999.0] == "NA: Not applicable"
    assert meta.variable_value_labels["best_response"][1] == "CR"
    assert meta.original_variable_types["cycles"] == "F8.0"  # a count: wide enough for 99998 already
    assert meta.original_variable_types["best_response"] == "F5.0"  # a code list's F1.0 widened
    assert row["start_date"] == D(2015, 5, 1)
    plain, _meta = pyreadstat.read_sav(path)  # SPSS leaves user-missing values out
    assert plain[["cycles", "best_response", "end_date", "regimen_other"]].isna().all(axis=None)
