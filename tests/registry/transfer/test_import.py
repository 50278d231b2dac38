"""Bulk import: all or nothing, every error named by sheet/row/column/value, upsert by natural keys;
new patients named by local keys, their pseudonyms issued by the registry."""
import datetime
import io

import pytest
from django.core.management import CommandError, call_command

from registry import synthetic
from registry.models import FollowUp, ImportRun, Metastasectomy, Patient, PrimaryTumour, SystemicTherapy
from tests import factories as f
from tests.registry.transfer.test_import_support import (
    centres,
    cohort,
    csv_bytes,
    errors_of,
    new_cohort,
    new_patients,
    pseudonym_of,
    pseudonymised,
    run,
    sheet_columns,
    workbook_bytes,
    zip_bytes,
)

pytestmark = pytest.mark.django_db
D = datetime.date
CLINICAL = (Patient, PrimaryTumour, Metastasectomy, SystemicTherapy, FollowUp)


@pytest.fixture
def coordinator():
    centres()
    return f.user("coordinator", memberships=[("MUC", "coordinator")])


@pytest.fixture
def nurse():
    centres()
    return f.user("nurse.muc", memberships=[("MUC", "nurse")])


def nothing_written():
    return not any(model.objects.exists() for model in CLINICAL) and not ImportRun.objects.exists()


def test_workbook_import_creates_every_row_audited_as_the_importing_user(coordinator):
    tables = new_cohort(30)
    report = run(workbook_bytes(tables), user=coordinator, filename="muc-2024.xlsx")

    assert report.ok, report.errors
    assert {t: c["created"] for t, c in report.counts.items()} == {t: len(rows) for t, rows in tables.items()}
    assert FollowUp.objects.count() == len(tables["follow_up"])
    history = FollowUp.history.all()
    assert history.count() == len(tables["follow_up"])
    assert {(h.history_type, h.history_user_id, h.history_change_reason) for h in history} == {
        ("+", coordinator.pk, "import muc-2024.xlsx")}
    run_ = ImportRun.objects.get()
    assert (run_.user, run_.file_name, run_.rows, run_.sha256) == (
        coordinator, "muc-2024.xlsx", report.rows, report.sha256)
    assert run_.counts["patients"] == {"created": 30, "updated": 0, "unchanged": 0}


def test_workbook_written_by_generate_cohort_imports_as_generated(coordinator, tmp_path):
    tables = cohort(15, seed=8)
    path = tmp_path / "cohort.xlsx"
    synthetic.write_workbook(tables, path)  # openpyxl, real Excel dates, as `generate_cohort --out`

    report = run(path.read_bytes(), user=coordinator)

    assert report.ok, report.errors
    stored = Patient.objects.get(pk=pseudonym_of(report, "P1"))
    assert stored.lung_mets_diagnosis_date == tables["patients"][0]["lung_mets_diagnosis_date"]
    assert stored.pk != tables["patients"][0]["patient_id"]  # the registry's pseudonym, not the generator's
    assert PrimaryTumour.objects.count() == 15


def test_import_with_one_bad_cell_among_1000_patients_writes_nothing_and_names_the_cell(coordinator):
    tables = new_cohort(1000, seed=3)
    tables["metastasectomies"][600]["side"] = "middle"

    report = run(workbook_bytes(tables), user=coordinator)

    assert errors_of(report) == [("metastasectomies", 602, "side", "middle")]
    assert "left, right, bilateral" in report.errors[0].message
    assert nothing_written()


def test_every_error_is_reported_at_once(coordinator):
    tables = new_cohort(20)
    tables["patients"][0]["birth_year"] = 1850
    tables["patients"][3]["sex"] = "m"
    tables["primary_tumours"][5]["size_mm"] = "big"
    tables["follow_up"][2]["event_date"] = "31.12.2019"

    report = run(workbook_bytes(tables), user=coordinator)

    assert errors_of(report) == [("patients", 2, "birth_year", "1850"), ("patients", 5, "sex", "m"),
                                 ("primary_tumours", 7, "size_mm", "big"), ("follow_up", 4, "event_date", "31.12.2019")]
    assert nothing_written()


def test_dry_run_writes_nothing_and_counts_what_would_change(coordinator):
    tables = new_cohort(12)
    report = run(workbook_bytes(tables), user=coordinator, dry_run=True)
    assert report.ok and not report.written
    assert report.counts["metastasectomies"] == {
        "created": len(tables["metastasectomies"]), "updated": 0, "unchanged": 0}
    assert nothing_written()


def test_reimport_with_the_issued_pseudonyms_reports_everything_unchanged(coordinator):
    tables = new_cohort(12)
    first = run(workbook_bytes(tables), user=coordinator)
    audit_rows = Patient.history.count() + FollowUp.history.count()

    report = run(workbook_bytes(pseudonymised(tables, first)), user=coordinator)

    assert report.ok
    assert report.totals() == {"created": 0, "updated": 0, "unchanged": report.rows}
    assert Patient.history.count() + FollowUp.history.count() == audit_rows
    assert set(Patient.objects.values_list("version", flat=True)) == {1}


def test_changing_one_cell_updates_one_row_version_and_audit(coordinator):
    tables = new_cohort(12)
    tables = pseudonymised(tables, run(workbook_bytes(tables), user=coordinator))
    pm = tables["metastasectomies"][4]
    pm["max_lesion_diameter_mm"] = 33.5

    report = run(workbook_bytes(tables), user=coordinator, filename="corrected.xlsx")

    assert report.totals() == {"created": 0, "updated": 1, "unchanged": report.rows - 1}
    assert report.counts["metastasectomies"]["updated"] == 1
    stored = Metastasectomy.objects.get(patient_id=pm["patient_id"], surgery_date=pm["surgery_date"])
    assert (stored.max_lesion_diameter_mm, stored.version) == (pytest.approx(33.5), 2)
    created, updated = Metastasectomy.history.filter(id=stored.pk).order_by("history_id")
    assert (updated.history_type, updated.history_user, updated.history_change_reason) == (
        "~", coordinator, "import corrected.xlsx")
    [change] = updated.diff_against(created, excluded_fields=["version", "updated_at"]).changes
    assert change.field == "max_lesion_diameter_mm"


def test_a_file_may_add_records_to_stored_patients(coordinator):
    tables = new_cohort(6)
    tables = pseudonymised(tables, run(workbook_bytes(tables), user=coordinator))
    pid = tables["patients"][0]["patient_id"]
    first_pm = min(pm["surgery_date"] for pm in tables["metastasectomies"] if pm["patient_id"] == pid)
    new_event = {"patient_id": pid, "event_date": first_pm + datetime.timedelta(days=1), "event": "contact"}
    header = ["patient_id", "event_date", "event", "recurrence_site", "cause_of_death"]
    last_known = max(fu["event_date"] for fu in tables["follow_up"] if fu["patient_id"] == pid)
    assert new_event["event_date"] <= last_known  # a death (if any) is later

    report = run(csv_bytes([new_event], header), user=coordinator, filename="follow_up.csv")

    assert report.ok, report.errors
    assert report.counts["follow_up"] == {"created": 1, "updated": 0, "unchanged": 0}


def test_cross_record_rules_run_on_the_merged_state_of_database_and_file(coordinator):
    tables = new_cohort(8)
    tables = pseudonymised(tables, run(workbook_bytes(tables), user=coordinator))
    pid = tables["patients"][2]["patient_id"]
    first_pm = min(pm["surgery_date"] for pm in tables["metastasectomies"] if pm["patient_id"] == pid)
    header = ["patient_id", "event_date", "event", "recurrence_site", "cause_of_death"]
    too_early = {"patient_id": pid, "event_date": first_pm - datetime.timedelta(days=10), "event": "contact"}

    report = run(csv_bytes([too_early], header), user=coordinator, filename="follow_up.csv")

    assert errors_of(report) == [("follow_up.csv", 2, "event_date", too_early["event_date"].isoformat())]
    assert "before the first metastasectomy" in report.errors[0].message
    assert "already in the registry" in report.errors[0].message  # the stored operation is named


def test_second_death_in_the_file_is_refused(coordinator):
    tables = new_cohort(30)
    death = next(fu for fu in tables["follow_up"] if fu["event"] == "death")
    tables["follow_up"].append({**death, "event_date": death["event_date"] - datetime.timedelta(days=1),
                                "cause_of_death": "other"})
    report = run(workbook_bytes(tables), user=coordinator)
    assert any(e.sheet == "follow_up" and e.column == "event" and "already has a death" in e.message
               for e in report.errors)
    assert nothing_written()


def test_conditional_requirements_of_the_models_are_checked(coordinator):
    tables = new_cohort(10)
    tumour = next(t for t in tables["primary_tumours"] if t["radiotherapy"] in ("adjuvant", "neoadjuvant"))
    tumour["radiotherapy_end_date"] = None
    index = tables["primary_tumours"].index(tumour)

    report = run(workbook_bytes(tables), user=coordinator)

    assert errors_of(report) == [("primary_tumours", index + 2, "radiotherapy_end_date", "")]
    assert "end date of the radiotherapy" in report.errors[0].message


@pytest.mark.parametrize("table, column, value, words", [
    ("primary_tumours", "surgery_date", "before diagnosis", "The surgery date is before the diagnosis date"),
    ("systemic_therapies", "start_date", "future", "is in the future"),
])
def test_one_error_in_a_file_is_one_message(coordinator, table, column, value, words):
    """A rule lives once (the model's, or a cross-record rule's), so the import reports it once."""
    tables = new_cohort(10)
    row = next(r for r in tables[table] if table != "primary_tumours" or r["surgery_date"])
    row[column] = (row["diagnosis_date"] - datetime.timedelta(days=10) if value == "before diagnosis"
                   else datetime.date.today() + datetime.timedelta(days=30))
    report = run(workbook_bytes(tables), user=coordinator)
    assert errors_of(report) == [(table, tables[table].index(row) + 2, column, row[column].isoformat())], report.errors
    assert words in report.errors[0].message
    assert nothing_written()


def test_nurse_of_centre_a_importing_a_centre_b_patient_is_refused(nurse):
    tables = new_cohort(10)
    hd_row = next(i for i, p in enumerate(tables["patients"]) if p["centre"] == "HD")

    report = run(workbook_bytes(tables), user=nurse)

    assert not report.ok and nothing_written()
    assert ("patients", hd_row + 2, "centre", "HD") in errors_of(report)
    assert all("centre HD" in e.message for e in report.errors)


def test_a_nurse_uploading_the_pooled_workbook_reads_one_refusal_per_sheet_not_one_per_row(nurse):
    tables = new_cohort(60)
    hd_rows = {table: [row for row in rows if row.get("centre") == "HD" or row.get("local_id") in
                       {p["local_id"] for p in tables["patients"] if p["centre"] == "HD"}]
               for table, rows in tables.items()}

    report = run(workbook_bytes(tables), user=nurse)

    refused = [e for e in report.errors if "centre HD" in e.message]
    assert len(refused) == len([t for t, rows in hd_rows.items() if rows]) == len(report.errors)
    patients = next(e for e in refused if e.sheet == "patients")
    assert f"This row and {len(hd_rows['patients']) - 1} more rows of this sheet concern them" in patients.message
    assert nothing_written()


def test_nurse_imports_her_own_centre(nurse):
    tables = cohort(10)
    own = new_patients({t: [r for r in rows if r["patient_id"].startswith("MUC-")] for t, rows in tables.items()})
    report = run(workbook_bytes(own), user=nurse)
    assert report.ok, report.errors
    assert set(Patient.objects.values_list("centre", flat=True)) == {"MUC"}


def test_pi_may_not_import(coordinator):
    pi = f.user("pi", memberships=[("MUC", "pi")])
    report = run(workbook_bytes(new_cohort(3)), user=pi)
    assert "may not import" in report.errors[0].message
    assert nothing_written()


def test_codes_are_case_insensitive_and_stored_as_listed(coordinator):
    row = {"local_id": "case 1", "centre": "muc", "sex": "FEMALE", "birth_year": "1961", "histology": "lms",
           "lung_mets_diagnosis_date": "2015-03-01", "extrapulmonary_disease_at_pm": "No", "ecog": ""}
    report = run(csv_bytes([row], list(row)), user=coordinator, filename="patients.csv")
    assert report.ok, report.errors
    patient = Patient.objects.get()
    assert (patient.centre_id, patient.sex, patient.histology, patient.ecog) == ("MUC", "female", "LMS", None)
    assert patient.extrapulmonary_disease_at_pm is False


def test_german_excel_csv_in_windows_1252_with_semicolons_and_decimal_commas(coordinator):
    f.patient("MUC", suffix="GER001", lung_mets_diagnosis_date=D(2015, 3, 1))
    header = ["patient_id", "diagnosis_date", "site", "size_mm", "depth", "grade", "surgery_date", "margin",
              "radiotherapy", "radiotherapy_end_date", "local_recurrence_before_pm"]
    row = {"patient_id": "MUC-GER001", "diagnosis_date": "2012-05-01", "site": "Extremity", "size_mm": "80,5",
           "surgery_date": "2012-06-01", "radiotherapy": "none", "local_recurrence_before_pm": "ja"}
    data = csv_bytes([row], header, delimiter=";", encoding="cp1252")
    report = run(data.replace(b"ja", b"\xe4"), user=coordinator, filename="Primärtumoren.csv",
                 table="primary_tumours")
    assert errors_of(report) == [("Primärtumoren.csv", 2, "local_recurrence_before_pm", "ä")]  # cp1252 decoded
    report = run(data.replace(b"ja", b"0"), user=coordinator, filename="primary_tumours.csv")
    assert report.ok, report.errors
    assert float(PrimaryTumour.objects.get().size_mm) == 80.5


def test_utf8_csv_with_bom_and_excel_serial_and_iso_dates(coordinator):
    header = ["local_id", "centre", "sex", "birth_year", "histology", "lung_mets_diagnosis_date",
              "extrapulmonary_disease_at_pm", "ecog"]
    rows = [{"local_id": "serial", "centre": "MUC", "sex": "male", "birth_year": 1970, "histology": "UPS",
             "lung_mets_diagnosis_date": "42064", "extrapulmonary_disease_at_pm": "false", "ecog": "1"},
            {"local_id": "iso", "centre": "MUC", "sex": "diverse", "birth_year": 1980, "histology": "SyS",
             "lung_mets_diagnosis_date": "2015-03-01", "extrapulmonary_disease_at_pm": "1", "ecog": "0"}]
    report = run(b"\xef\xbb\xbf" + csv_bytes(rows, header), user=coordinator, filename="patients.csv")
    assert report.ok, report.errors
    assert set(Patient.objects.values_list("lung_mets_diagnosis_date", flat=True)) == {D(2015, 3, 1)}


def test_duplicate_keys_within_the_file_are_refused(coordinator):
    tables = new_cohort(5)
    tables["metastasectomies"].append(dict(tables["metastasectomies"][0]))
    report = run(workbook_bytes(tables), user=coordinator)
    last_row = len(tables["metastasectomies"]) + 1
    assert errors_of(report) == [("metastasectomies", last_row, "surgery_date",
                                  tables["metastasectomies"][0]["surgery_date"].isoformat())]
    assert "Duplicate: row 2" in report.errors[0].message
    assert nothing_written()


def test_unknown_centre_and_unknown_patient_are_refused(coordinator):
    tables = new_cohort(4)
    tables["patients"][1]["centre"] = "XYZ"
    tables["follow_up"].append({"patient_id": "MUC-NOBODY", "event_date": D(2020, 1, 1), "event": "contact"})
    report = run(workbook_bytes(tables), user=coordinator)
    assert ("patients", 3, "centre", "XYZ") in errors_of(report)
    assert ("follow_up", len(tables["follow_up"]) + 1, "patient_id", "MUC-NOBODY") in errors_of(report)
    assert nothing_written()


def test_zip_of_csv_files_imports_like_a_workbook(coordinator):
    tables = new_cohort(8)
    members = {f"export/{t}.csv": csv_bytes(rows, sheet_columns(t, rows)) for t, rows in tables.items()}
    members["README.txt"] = b"ignored"
    report = run(zip_bytes(members), user=coordinator, filename="centre.zip")
    assert report.ok, report.errors
    assert report.totals()["created"] == sum(len(rows) for rows in tables.values())


def test_command_imports_and_reports_counts(coordinator, tmp_path):
    path = tmp_path / "centre.xlsx"
    path.write_bytes(workbook_bytes(new_cohort(5)))
    out = io.StringIO()
    call_command("import_registry", str(path), dry_run=True, stdout=out)
    assert "Dry run: nothing written" in out.getvalue() and nothing_written()
    out = io.StringIO()
    call_command("import_registry", str(path), user="coordinator", stdout=out)
    assert "Imported as import #" in out.getvalue()
    assert ImportRun.objects.get().user == coordinator


def test_command_exits_non_zero_on_any_error_and_can_write_the_errors(coordinator, tmp_path):
    tables = new_cohort(5)
    tables["patients"][0]["ecog"] = 7
    path = tmp_path / "centre.xlsx"
    path.write_bytes(workbook_bytes(tables))
    errors = tmp_path / "errors.csv"
    with pytest.raises(CommandError, match="1 error"):
        call_command("import_registry", str(path), errors_csv=str(errors), stdout=io.StringIO(), stderr=io.StringIO())
    assert errors.read_text(encoding="utf-8-sig").splitlines() == [
        "sheet,row,column,value,message", "patients,2,ecog,7,Out of range: ECOG must be between 0 and 4."]
    assert nothing_written()


def test_free_text_with_tabs_newlines_and_backslashes_is_stored_exactly(coordinator):
    tables = new_cohort(12)
    therapy = tables["systemic_therapies"][0]
    therapy.update(regimen="other", regimen_other='trial\tarm "B"\\2\nweekly')
    members = {f"{t}.csv": csv_bytes(rows, sheet_columns(t, rows)) for t, rows in tables.items()}
    report = run(zip_bytes(members), user=coordinator, filename="centre.zip")
    assert report.ok, report.errors
    stored = SystemicTherapy.objects.get(patient_id=pseudonym_of(report, therapy["local_id"]),
                                         start_date=therapy["start_date"])
    assert stored.regimen_other == 'trial\tarm "B"\\2\nweekly'
    assert SystemicTherapy.history.get(id=stored.pk).regimen_other == stored.regimen_other


def test_workbook_dates_may_be_excel_serial_numbers_or_iso_text(coordinator):
    tables = new_cohort(3)
    tables["patients"][0]["lung_mets_diagnosis_date"] = 42064          # a number cell: 2015-03-01
    tables["patients"][1]["lung_mets_diagnosis_date"] = "2015-03-01"   # a text cell
    changed = {tables["patients"][i]["local_id"] for i in (0, 1)}
    for pm in tables["metastasectomies"]:  # keep the first PM after the (earlier) lung diagnosis
        if pm["local_id"] in changed:
            pm["surgery_date"] = max(pm["surgery_date"], D(2015, 3, 2))
    report = run(workbook_bytes(tables), user=coordinator)
    assert report.ok, report.errors
    expected = {pseudonym_of(report, local_id): D(2015, 3, 1) for local_id in changed}
    stored = dict(Patient.objects.filter(pk__in=expected).values_list("patient_id", "lung_mets_diagnosis_date"))
    assert stored == expected


def test_excel_boolean_cells_are_yes_no_and_never_numbers(coordinator):
    tables = new_cohort(3)
    tables["patients"][0]["extrapulmonary_disease_at_pm"] = True
    tables["patients"][1]["ecog"] = True
    patients = {"patients": tables["patients"]}
    report = run(workbook_bytes(patients, boolean_cells=True), user=coordinator)
    assert errors_of(report) == [("patients", 3, "ecog", "True")]
    tables["patients"][1]["ecog"] = 1
    report = run(workbook_bytes(patients, boolean_cells=True), user=coordinator)
    assert report.ok, report.errors
    assert Patient.objects.get(pk=pseudonym_of(report, "P1")).extrapulmonary_disease_at_pm is True
