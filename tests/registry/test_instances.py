"""REDCap repeat instances are the records' own numbers: given by the services when a record is
created (the next of its patient and table), never changed, assigned set-based by the bulk writer,
and filled in for the records stored before (migration 0019) in date order."""
import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from registry import access, services
from registry.cases import Case
from registry.models import FollowUp, Metastasectomy, Patient, SystemicTherapy
from tests import factories as f
from tests.registry.transfer.test_import_support import run, workbook_bytes

D = datetime.date


def numbers(model, patient):
    return dict(model.objects.filter(patient=patient).values_list(model._meta.ordering[1], "redcap_instance"))


@pytest.mark.django_db
def test_a_new_record_gets_the_next_number_of_its_patient_and_table_whatever_its_date(case, nurse):
    assert numbers(Metastasectomy, case) == {D(2015, 4, 1): 1}
    services.record_save(user=nurse, record=f.metastasectomy(case, surgery_date=D(2017, 1, 10)))
    services.record_save(user=nurse, record=f.metastasectomy(case, surgery_date=D(2015, 3, 20)))  # an earlier one
    assert numbers(Metastasectomy, case) == {D(2015, 4, 1): 1, D(2017, 1, 10): 2, D(2015, 3, 20): 3}
    assert numbers(SystemicTherapy, case) == {D(2015, 5, 1): 1}  # each table counts on its own
    other = f.patient("MUC")
    assert services.record_save(user=nurse, record=f.metastasectomy(other)).redcap_instance == 1


@pytest.mark.django_db
def test_a_number_never_changes_when_its_record_does(case, nurse):
    services.record_save(user=nurse, record=f.follow_up(case, event_date=D(2016, 6, 1)))
    contact = FollowUp.objects.get(patient=case, event_date=D(2016, 1, 1))
    contact.event_date = D(2016, 9, 1)  # now the later of the two
    services.record_save(user=nurse, record=contact, expected_version=contact.version)
    assert numbers(FollowUp, case) == {D(2016, 9, 1): 1, D(2016, 6, 1): 2}


@pytest.mark.django_db
def test_a_deleted_records_number_is_not_given_to_another(case, nurse):
    later = services.record_save(user=nurse, record=f.metastasectomy(case, surgery_date=D(2017, 1, 10)))
    services.record_delete(user=nurse, record=later, reason="entered twice")
    again = services.record_save(user=nurse, record=f.metastasectomy(case, surgery_date=D(2017, 2, 10)))
    assert (later.redcap_instance, again.redcap_instance) == (2, 3)
    # The bulk writer counts the audit trail too.
    therapy = services.record_save(user=nurse, record=f.systemic_therapy(case, start_date=D(2016, 1, 1),
                                                                        end_date=None))
    services.record_delete(user=nurse, record=therapy, reason="entered twice")
    report = run(workbook_bytes({"systemic_therapies": [{"patient_id": case.pk, "start_date": D(2016, 3, 1),
                                                          "regimen": "ifosfamide", "intent": "palliative"}]}),
                 user=access.SYSTEM)
    assert report.ok, report.errors
    assert numbers(SystemicTherapy, case) == {D(2015, 5, 1): 1, D(2016, 3, 1): 3}


@pytest.mark.django_db
def test_a_number_asked_for_is_given_if_free_and_refused_if_taken(case, nurse):
    pm = services.record_save(user=nurse, record=f.metastasectomy(case, surgery_date=D(2017, 1, 10)),
                              redcap_instance=7)
    assert pm.redcap_instance == 7
    with pytest.raises(ValidationError, match="instance 7 of this patient is taken"):
        services.record_save(user=nurse, record=f.metastasectomy(case, surgery_date=D(2018, 1, 10)),
                             redcap_instance=7)


@pytest.mark.django_db
def test_whole_cases_loaded_in_bulk_are_numbered_in_date_order(nurse):
    patient = Patient(patient_id="MUC-BULK01", centre=f.centre("MUC"), **f.patient_values())
    # Factory numbers are placeholders the services replace; the records come in file order.
    pms = [f.metastasectomy(patient, surgery_date=day) for day in (D(2018, 1, 1), D(2015, 4, 1), D(2016, 1, 1))]
    services.cases_create(user=access.SYSTEM, cases=[Case(patient=patient, metastasectomies=pms)])
    assert numbers(Metastasectomy, patient) == {D(2015, 4, 1): 1, D(2016, 1, 1): 2, D(2018, 1, 1): 3}


@pytest.mark.django_db
def test_an_import_numbers_its_new_records_after_those_stored(case, coordinator):
    therapy = {"patient_id": case.pk, "start_date": D(2014, 1, 1), "end_date": D(2014, 3, 1), "regimen": "ifosfamide",
               "intent": "palliative"}
    report = run(workbook_bytes({"systemic_therapies": [therapy]}), user=coordinator)
    assert report.ok, report.errors
    assert numbers(SystemicTherapy, case) == {D(2015, 5, 1): 1, D(2014, 1, 1): 2}


@pytest.mark.django_db(transaction=True)
def test_the_migration_numbers_the_stored_records_in_date_order():
    before, after = [("registry", "0016_missing_data_codes")], [("registry", "0017_redcap_instances")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    centre = apps.get_model("registry", "Centre").objects.create(code="MUC", name="Centre MUC")
    old = apps.get_model("registry", "Patient")
    pm = apps.get_model("registry", "Metastasectomy")
    for pid in ("MUC-OLD001", "MUC-OLD002"):
        patient = old.objects.create(patient_id=pid, centre=centre, **f.patient_values())
        for day in (D(2017, 1, 1), D(2015, 4, 1), D(2016, 1, 1)):  # entered out of date order
            pm.objects.create(patient=patient, surgery_date=day, side="left", approach="vats", resection_type="wedge",
                              lesions_resected=1, max_lesion_diameter_mm=10, margin="R0", clavien_dindo="none")
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        rows = executor.loader.project_state(after).apps.get_model("registry", "Metastasectomy").objects.order_by("patient_id", "redcap_instance")
        assert [(r.patient_id, r.surgery_date, r.redcap_instance, r.version) for r in rows] == [
            (pid, day, number, 1) for pid in ("MUC-OLD001", "MUC-OLD002")
            for number, day in enumerate((D(2015, 4, 1), D(2016, 1, 1), D(2017, 1, 1)), start=1)]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
