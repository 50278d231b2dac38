"""Every change of clinical data leaves an audit row: who, when, what before, what after."""
import datetime

import pytest
from django.core.exceptions import ValidationError

from registry import cases, selectors, services
from registry.models import FollowUp, Metastasectomy, Patient, PrimaryTumour
from tests import factories as f

pytestmark = pytest.mark.django_db
D = datetime.date


@pytest.fixture
def nurse():
    return f.user("nurse", memberships=[("MUC", "nurse")])


def test_create_update_delete_are_audited_with_user_and_values(nurse):
    patient = services.patient_create(user=nurse, centre=f.centre("MUC"), **f.patient_values())
    pm = services.record_save(user=nurse, record=f.metastasectomy(patient))
    pm.max_lesion_diameter_mm = 25
    services.record_save(user=nurse, record=pm)
    services.record_delete(user=nurse, record=pm, reason="entered in error")

    created, updated, deleted = Metastasectomy.history.filter(id=pm.id).order_by("history_id")
    assert [h.history_type for h in (created, updated, deleted)] == ["+", "~", "-"]
    assert {h.history_user for h in (created, updated, deleted)} == {nurse}
    [change] = updated.diff_against(created).changes
    assert (change.field, change.old, change.new) == ("max_lesion_diameter_mm", 15, 25)
    assert deleted.max_lesion_diameter_mm == 25  # what was deleted stays readable
    assert created.history_date <= updated.history_date <= deleted.history_date


def test_updates_increment_the_version(nurse):
    patient = services.patient_create(user=nurse, centre=f.centre("MUC"), **f.patient_values())
    patient.ecog = 1
    services.record_save(user=nurse, record=patient)
    assert Patient.objects.get().version == 2


def test_stale_save_is_refused_and_names_the_changed_column(nurse):
    services.patient_create(user=nurse, centre=f.centre("MUC"), **f.patient_values())
    mine, theirs = Patient.objects.get(), Patient.objects.get()
    theirs.ecog = 2
    services.record_save(user=nurse, record=theirs)
    mine.birth_year = 1961
    with pytest.raises(services.StaleRecordError) as error:
        services.record_save(user=nurse, record=mine)
    assert ("ecog", 2) in error.value.changes
    assert Patient.objects.get().birth_year == 1960


def test_deleting_a_patient_audits_every_record_of_the_case(nurse):
    patient = services.patient_create(user=nurse, centre=f.centre("MUC"), **f.patient_values())
    services.record_save(user=nurse, record=f.primary_tumour(patient))
    services.record_save(user=nurse, record=f.metastasectomy(patient))
    services.record_save(user=nurse, record=f.follow_up(patient))
    services.record_delete(user=nurse, record=patient, reason="entered in error")
    for model in (Patient, PrimaryTumour, Metastasectomy, FollowUp):
        assert not model.objects.exists()
        assert model.history.filter(history_type="-", history_user=nurse).count() == 1


def test_bulk_writes_are_audited_row_by_row(nurse):
    patients = [f.Patient(patient_id=f"MUC-BULK{i:02d}", centre=f.centre("MUC"), **f.patient_values())
                for i in range(3)]
    new = [cases.Case(patient=p, primary_tumour=f.primary_tumour(p), metastasectomies=[f.metastasectomy(p)],
                      follow_ups=[f.follow_up(p)]) for p in patients]
    services.cases_create(user=nurse, cases=new)
    for model in (Patient, PrimaryTumour, Metastasectomy, FollowUp):
        assert model.objects.count() == 3
        assert model.history.filter(history_type="+", history_user=nurse).count() == 3


def test_bulk_write_with_one_invalid_case_writes_nothing(nurse):
    good, bad = (f.Patient(patient_id=f"MUC-CASE0{i}", centre=f.centre("MUC"), **f.patient_values()) for i in (1, 2))
    both = [cases.Case(patient=good, metastasectomies=[f.metastasectomy(good)]),
            cases.Case(patient=bad, metastasectomies=[f.metastasectomy(bad)],
                       follow_ups=[f.follow_up(bad, event_date=D(2015, 1, 1))])]
    with pytest.raises(ValidationError) as error:
        services.cases_create(user=nurse, cases=both)
    assert "follow-up event (contact (seen alive), 2015-01-01), event_date" in str(error.value)
    assert not Patient.objects.exists() and not Patient.history.exists()


def test_data_version_changes_with_every_clinical_change(nurse):
    before = selectors.data_version()
    patient = services.patient_create(user=nurse, centre=f.centre("MUC"), **f.patient_values())
    after_create = selectors.data_version()
    patient.ecog = 3
    services.record_save(user=nurse, record=patient)
    after_update = selectors.data_version()
    services.record_delete(user=nurse, record=patient, reason="entered in error")
    assert len({before, after_create, after_update, selectors.data_version()}) == 4


def test_saving_a_record_unchanged_writes_no_version_no_audit_row_and_keeps_the_data_version(nurse, case):
    pm = Metastasectomy.objects.get(patient=case)
    audit_rows, version = Metastasectomy.history.count(), selectors.data_version()
    services.record_save(user=nurse, record=Metastasectomy.objects.get(pk=pm.pk))
    assert Metastasectomy.objects.get().version == 1
    assert Metastasectomy.history.count() == audit_rows and selectors.data_version() == version


def test_saving_or_deleting_a_patient_deleted_meanwhile_says_it_is_gone(nurse):
    patient = services.patient_create(user=nurse, centre=f.centre("MUC"), **f.patient_values())
    mine = Patient.objects.get(pk=patient.pk)
    services.record_delete(user=nurse, record=Patient.objects.get(pk=patient.pk), reason="entered in error")
    mine.ecog = 2
    with pytest.raises(Patient.DoesNotExist):
        services.record_save(user=nurse, record=mine)
    with pytest.raises(Patient.DoesNotExist):
        services.record_delete(user=nurse, record=mine, reason="entered in error")
