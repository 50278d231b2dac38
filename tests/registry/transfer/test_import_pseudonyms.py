"""Only the registry issues pseudonyms: a file names its new patients by local keys (local_id), the
import answers with the pseudonyms issued for them, and a pseudonym the registry never issued is
refused. The registry keeps no local key anywhere."""
import datetime
import io
import logging

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from registry import services
from registry.models import FollowUp, ImportRun, Metastasectomy, Patient
from registry.pseudonyms import ISSUED_PATTERN
from tests import factories as f
from tests.registry.transfer.test_import_support import (
    centres,
    cohort,
    csv_bytes,
    errors_of,
    new_cohort,
    new_patients,
    pseudonymised,
    run,
    workbook_bytes,
)

pytestmark = pytest.mark.django_db
D = datetime.date
PATIENT_HEADER = ["local_id", "centre", "sex", "birth_year", "histology", "lung_mets_diagnosis_date",
                  "extrapulmonary_disease_at_pm", "ecog"]
FOLLOW_UP_HEADER = ["patient_id", "local_id", "event_date", "event", "recurrence_site", "cause_of_death"]


@pytest.fixture
def coordinator():
    centres()
    return f.user("coordinator", memberships=[("MUC", "coordinator")])


def patient_row(local_id, **values):
    return {"local_id": local_id, "centre": "MUC", "sex": "female", "birth_year": 1960, "histology": "LMS",
            "lung_mets_diagnosis_date": D(2015, 3, 1), "extrapulmonary_disease_at_pm": False, "ecog": 1, **values}


def nothing_written():
    return not Patient.objects.exists() and not FollowUp.objects.exists() and not ImportRun.objects.exists()


def test_new_patients_get_pseudonyms_from_the_registry_and_the_report_maps_each_local_id(coordinator):
    generated = cohort(8)
    tables = new_patients(generated)

    report = run(workbook_bytes(tables), user=coordinator)

    assert report.ok, report.errors
    assert [(local_id, centre) for local_id, _pseudonym, centre in report.pseudonyms] == [
        (f"P{n}", row["centre"]) for n, row in enumerate(generated["patients"], start=1)]
    issued = {local_id: pseudonym for local_id, pseudonym, _centre in report.pseudonyms}
    assert all(ISSUED_PATTERN.match(pseudonym) for pseudonym in issued.values())
    assert sorted(Patient.objects.values_list("pk", flat=True)) == sorted(issued.values())
    assert not set(issued.values()) & {row["patient_id"] for row in generated["patients"]}
    for local_id, row in zip(issued, generated["patients"]):  # every record went to its own patient
        patient = Patient.objects.get(pk=issued[local_id])
        assert (patient.centre_id, patient.birth_year, patient.lung_mets_diagnosis_date) == (
            row["centre"], row["birth_year"], row["lung_mets_diagnosis_date"])
        assert sorted(patient.metastasectomies.values_list("surgery_date", flat=True)) == sorted(
            pm["surgery_date"] for pm in generated["metastasectomies"] if pm["patient_id"] == row["patient_id"])
    lines = report.mapping_csv().splitlines()
    assert lines[0] == "\ufefflocal_id,patient_id,centre"
    assert lines[1] == f"P1,{issued['P1']},{generated['patients'][0]['centre']}"


def test_a_file_may_mix_stored_patients_by_pseudonym_and_new_ones_by_local_id(coordinator):
    stored = f.patient("MUC", suffix="STORED", ecog=0)
    services.record_save(user=coordinator, record=f.metastasectomy(stored))
    patients = [{**patient_row(None), "patient_id": stored.pk, "ecog": 2}, patient_row("new one")]
    follow_up = [{"patient_id": stored.pk, "event_date": D(2016, 1, 1), "event": "contact"},
                 {"local_id": "NEW ONE", "event_date": D(2016, 1, 1), "event": "contact"}]  # keys match in any case
    metastasectomies = [{"local_id": "new one", "surgery_date": D(2015, 4, 1), "side": "left", "approach": "vats",
                         "resection_type": "wedge", "lesions_resected": 1, "max_lesion_diameter_mm": 12,
                         "margin": "R0", "clavien_dindo": "none"}]

    report = run(workbook_bytes({"patients": patients, "metastasectomies": metastasectomies, "follow_up": follow_up}),
                 user=coordinator)

    assert report.ok, report.errors
    [(local_id, pseudonym, centre)] = report.pseudonyms
    assert (local_id, centre) == ("new one", "MUC") and ISSUED_PATTERN.match(pseudonym)
    assert report.counts["patients"] == {"created": 1, "updated": 1, "unchanged": 0}
    assert Patient.objects.get(pk=stored.pk).ecog == 2
    assert set(FollowUp.objects.values_list("patient_id", flat=True)) == {stored.pk, pseudonym}
    assert Metastasectomy.objects.get(patient_id=pseudonym).surgery_date == D(2015, 4, 1)


def test_a_pseudonym_the_registry_never_issued_is_refused_on_every_sheet(coordinator):
    invented = {**patient_row(None), "patient_id": "MUC-MUELLER0312"}
    report = run(workbook_bytes({"patients": [invented]}), user=coordinator)
    assert errors_of(report) == [("patients", 2, "patient_id", "MUC-MUELLER0312")]
    assert "There is no patient MUC-MUELLER0312 in the registry" in report.errors[0].message
    assert "local_id" in report.errors[0].message

    event = {"patient_id": "MUC-MUELLER0312", "event_date": D(2016, 1, 1), "event": "contact"}
    report = run(csv_bytes([event], FOLLOW_UP_HEADER), user=coordinator, filename="follow_up.csv")
    assert errors_of(report) == [("follow_up.csv", 2, "patient_id", "MUC-MUELLER0312")]
    assert nothing_written()


def test_the_pseudonym_of_a_deleted_patient_is_refused_and_the_message_says_when(coordinator):
    patient = services.patient_create(user=coordinator, centre=f.centre("MUC"), **f.patient_values())
    services.record_delete(user=coordinator, record=patient, reason="entered in error")
    again = {**patient_row(None), "patient_id": patient.pk}

    report = run(workbook_bytes({"patients": [again]}), user=coordinator)

    assert errors_of(report) == [("patients", 2, "patient_id", patient.pk)]
    today = datetime.date.today().isoformat()
    assert f"was deleted from the registry on {today}" in report.errors[0].message
    assert not Patient.objects.exists() and not ImportRun.objects.exists()


def test_a_pseudonym_of_a_centre_the_nurse_may_not_write_is_refused_for_the_centre_not_its_existence():
    centres()
    nurse = f.user("nurse.muc", memberships=[("MUC", "nurse")])
    event = {"patient_id": "HD-ABCDEF", "event_date": D(2016, 1, 1), "event": "contact"}
    report = run(csv_bytes([event], FOLLOW_UP_HEADER), user=nurse, filename="follow_up.csv")
    assert [e.message for e in report.errors] == ["You may not write patients of centre HD."]


@pytest.mark.parametrize("local_id", ["MUC-0001", "hd-abc12", " Muc-7K3QZ9 "])
def test_a_local_id_that_looks_like_a_pseudonym_is_refused(coordinator, local_id):
    report = run(csv_bytes([patient_row(local_id)], PATIENT_HEADER), user=coordinator, filename="patients.csv")
    assert errors_of(report) == [("patients.csv", 2, "local_id", local_id)]
    assert "Looks like a registry pseudonym" in report.errors[0].message
    assert nothing_written()


def test_a_local_id_twice_on_the_patients_sheet_is_refused_whatever_its_case(coordinator):
    rows = [patient_row("p7"), patient_row("x"), patient_row("P7", sex="male")]
    report = run(csv_bytes(rows, PATIENT_HEADER), user=coordinator, filename="patients.csv")
    assert errors_of(report) == [("patients.csv", 4, "local_id", "P7")]
    assert report.errors[0].message == "Duplicate: row 2 has the same local_id."
    assert nothing_written()


def test_a_record_twice_for_one_new_patient_is_a_duplicate_named_by_its_local_id(coordinator):
    tables = new_cohort(3)
    tables["primary_tumours"].append(dict(tables["primary_tumours"][0]))
    report = run(workbook_bytes(tables), user=coordinator)
    last = len(tables["primary_tumours"]) + 1
    assert errors_of(report) == [("primary_tumours", last, "local_id", tables["primary_tumours"][0]["local_id"])]
    assert report.errors[0].message == "Duplicate: row 2 has the same local_id."


def test_a_local_id_that_no_row_of_the_patients_sheet_defines_is_refused(coordinator):
    tables = new_cohort(3)
    tables["follow_up"].append({"local_id": "P99", "event_date": D(2020, 1, 1), "event": "contact"})
    report = run(workbook_bytes(tables), user=coordinator)
    assert errors_of(report) == [("follow_up", len(tables["follow_up"]) + 1, "local_id", "P99")]
    assert "No row of the patients sheet has this local_id" in report.errors[0].message

    # A single CSV has no patients sheet: its local_ids name no one.
    report = run(csv_bytes(tables["follow_up"][:1], FOLLOW_UP_HEADER), user=coordinator, filename="follow_up.csv")
    assert errors_of(report) == [("follow_up.csv", 2, "local_id", tables["follow_up"][0]["local_id"])]
    assert nothing_written()


def test_a_row_names_its_patient_by_exactly_one_of_patient_id_and_local_id(coordinator):
    stored = f.patient("MUC", suffix="STORED")
    events = [{"patient_id": stored.pk, "local_id": "P1", "event_date": D(2016, 1, 1), "event": "contact"},
              {"event_date": D(2016, 1, 1), "event": "contact"}]
    report = run(csv_bytes(events, FOLLOW_UP_HEADER), user=coordinator, filename="follow_up.csv")
    assert errors_of(report) == [("follow_up.csv", 2, "local_id", "P1"), ("follow_up.csv", 3, "patient_id", "")]
    assert "not both" in report.errors[0].message and "or local_id" in report.errors[1].message

    header = [c for c in FOLLOW_UP_HEADER if c not in ("patient_id", "local_id")]
    report = run(csv_bytes(events[1:], header), user=coordinator, filename="follow_up.csv")
    assert errors_of(report) == [("follow_up.csv", 1, "patient_id", "")]
    assert "needs a patient_id column" in report.errors[0].message
    assert not FollowUp.objects.exists()


def test_a_nurse_may_not_create_patients_of_another_centre_by_local_id():
    centres()
    nurse = f.user("nurse.muc", memberships=[("MUC", "nurse")])
    tables = new_cohort(10)
    hd = next(row for row in tables["patients"] if row["centre"] == "HD")
    hd_follow_up = next(n for n, row in enumerate(tables["follow_up"]) if row["local_id"] == hd["local_id"])

    report = run(workbook_bytes(tables), user=nurse)

    assert ("patients", tables["patients"].index(hd) + 2, "centre", "HD") in errors_of(report)
    assert ("follow_up", hd_follow_up + 2, "local_id", hd["local_id"]) in errors_of(report)
    assert all(e.message.startswith("You may not write patients of centre HD.") for e in report.errors)
    assert nothing_written()


def test_a_dry_run_counts_the_new_patients_but_promises_no_pseudonym(coordinator):
    report = run(workbook_bytes(new_cohort(4)), user=coordinator, dry_run=True)
    assert report.ok and not report.written
    assert [pseudonym for _local_id, pseudonym, _centre in report.pseudonyms] == [None] * 4
    assert any("cannot name them" in w.message for w in report.warnings)
    assert report.mapping_csv().splitlines()[1].split(",")[:2] == ["P1", ""]
    assert nothing_written()


def test_the_mapping_csv_keeps_a_local_id_that_starts_like_a_formula_inert(coordinator):
    report = run(csv_bytes([patient_row("=1+1"), patient_row("-7")], PATIENT_HEADER), user=coordinator,
                 filename="patients.csv")
    assert report.ok, report.errors
    first, second = report.mapping_csv().removeprefix("\ufeff").splitlines()[1:]
    assert first.startswith("'=1+1,MUC-") and second.startswith("'-7,MUC-")


def test_the_same_file_imported_a_second_time_is_refused_when_it_created_patients(coordinator):
    tables = new_cohort(5)
    data = workbook_bytes(tables)
    first = run(data, user=coordinator)
    assert first.written

    again = run(data, user=coordinator)

    assert not again.ok and "Importing it again would create them a second time" in again.errors[0].message
    assert f"import #{first.run.pk}" in again.errors[0].message
    assert Patient.objects.count() == 5 and ImportRun.objects.count() == 1
    assert run(workbook_bytes(pseudonymised(tables, first)), user=coordinator).ok  # with the pseudonyms: fine


def test_the_registry_keeps_no_local_id_in_any_table_or_log(coordinator, caplog):
    caplog.set_level(logging.DEBUG)
    stored = f.patient("MUC", suffix="STORED")
    services.record_save(user=coordinator, record=f.metastasectomy(stored))
    key = "Kiwi 7731 local"
    tables = new_cohort(3)
    for rows in tables.values():
        for row in rows:
            row["local_id"] = key if row["local_id"] == "P1" else row["local_id"]
    tables["patients"].append({**patient_row(None), "patient_id": stored.pk, "ecog": 3})
    tables["follow_up"].append({"patient_id": stored.pk, "event_date": D(2016, 1, 1), "event": "contact"})
    unknown = {"local_id": "kiwi 7731 LOCAL!", "event_date": D(2016, 1, 1), "event": "contact"}
    refused = run(workbook_bytes({**tables, "follow_up": [*tables["follow_up"], unknown]}), user=coordinator)

    report = run(workbook_bytes(tables), user=coordinator)

    assert not refused.ok and report.ok, report.errors
    assert report.pseudonyms[0][0] == key and Patient.objects.filter(pk=report.pseudonyms[0][1]).exists()
    assert Patient.objects.count() == 4 and ImportRun.objects.count() == 1
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            found += [table for row in cursor.fetchall() if "kiwi 7731" in repr(row).lower()]
    assert found == []
    assert caplog.records and "kiwi 7731" not in caplog.text.lower()
    assert not any("kiwi 7731" in repr(record.args).lower() for record in caplog.records)


def test_the_command_writes_the_mapping_only_when_the_import_wrote(coordinator, tmp_path):
    path, mapping = tmp_path / "centre.xlsx", tmp_path / "mapping.csv"
    tables = new_cohort(3)
    tables["patients"][0]["sex"] = "x"
    path.write_bytes(workbook_bytes(tables))
    with pytest.raises(CommandError):
        call_command("import_registry", str(path), mapping_out=str(mapping), stdout=io.StringIO(),
                     stderr=io.StringIO())
    assert not mapping.exists()

    tables["patients"][0]["sex"] = "female"
    path.write_bytes(workbook_bytes(tables))
    call_command("import_registry", str(path), dry_run=True, mapping_out=str(mapping), stdout=io.StringIO(),
                 stderr=io.StringIO())
    assert not mapping.exists()

    out = io.StringIO()
    call_command("import_registry", str(path), user="coordinator", mapping_out=str(mapping), stdout=out)
    lines = mapping.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "local_id,patient_id,centre" and len(lines) == 4
    assert {line.split(",")[1] for line in lines[1:]} == set(Patient.objects.values_list("pk", flat=True))
    assert "The pseudonyms of 3 new patient(s) are in" in out.getvalue()


def test_the_command_without_mapping_out_prints_the_mapping(coordinator, tmp_path):
    path = tmp_path / "centre.xlsx"
    path.write_bytes(workbook_bytes(new_cohort(2)))
    out = io.StringIO()
    call_command("import_registry", str(path), stdout=out)
    for pseudonym in Patient.objects.values_list("pk", flat=True):
        assert f"→ {pseudonym}," in out.getvalue()
