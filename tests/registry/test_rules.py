"""Each cross-record rule: one valid and one invalid case, checked through the services that
every write path uses; the invalid save is refused with a message naming the column, and the
database is left as it was."""
import datetime

import pytest
from django.core.exceptions import ValidationError

from registry import cases, rules, services
from registry.models import FollowUp, Metastasectomy, Patient, PrimaryTumour, SystemicTherapy
from tests import factories as f

pytestmark = pytest.mark.django_db
D = datetime.date


@pytest.fixture
def nurse():
    return f.user("nurse", memberships=[("MUC", "nurse")])


@pytest.fixture
def case(nurse):
    """A patient with a primary, a PM on 2015-04-01 and a contact on 2016-01-01."""
    patient = f.patient("MUC")
    for record in (f.primary_tumour(patient), f.metastasectomy(patient), f.follow_up(patient)):
        services.record_save(user=nurse, record=record)
    return patient


def table_counts():
    return [model.objects.count() for model in (Patient, PrimaryTumour, Metastasectomy, SystemicTherapy, FollowUp)]


def refused(nurse, record, column):
    """Save through the service; assert it is refused at `column` and nothing changed."""
    before = table_counts()
    with pytest.raises(ValidationError) as error:
        services.record_save(user=nurse, record=record)
    assert column in error.value.message_dict, error.value.message_dict
    assert table_counts() == before
    return " ".join(error.value.message_dict[column])


def test_follow_up_on_or_after_first_pm_is_accepted(nurse, case):
    services.record_save(user=nurse, record=f.follow_up(case, event_date=D(2015, 4, 1)))


def test_follow_up_before_first_pm_is_refused_at_event_date(nurse, case):
    message = refused(nurse, f.follow_up(case, event_date=D(2015, 3, 31)), "event_date")
    assert "before the first metastasectomy (2015-04-01)" in message


def test_follow_up_without_any_pm_is_refused(nurse):
    patient = f.patient("MUC")
    assert "metastasectomy first" in refused(nurse, f.follow_up(patient), "event_date")


def test_second_death_is_refused_at_event(nurse, case):
    services.record_save(user=nurse, record=f.follow_up(case, event="death", event_date=D(2017, 1, 1)))
    message = refused(nurse, f.follow_up(case, event="death", event_date=D(2017, 1, 1)), "event")
    assert "already has a death recorded on 2017-01-01" in message


def test_therapy_after_death_is_refused_and_before_death_accepted(nurse, case):
    services.record_save(user=nurse, record=f.follow_up(case, event="death", event_date=D(2017, 1, 1)))
    services.record_save(user=nurse, record=f.systemic_therapy(case, start_date=D(2016, 2, 1), end_date=D(2016, 12, 31)))
    message = refused(nurse, f.systemic_therapy(case, start_date=D(2017, 1, 2), end_date=None), "start_date")
    assert "after the patient's death (2017-01-01)" in message


def test_event_after_death_is_refused(nurse, case):
    services.record_save(user=nurse, record=f.follow_up(case, event="death", event_date=D(2017, 1, 1)))
    refused(nurse, f.follow_up(case, event="contact", event_date=D(2017, 3, 1)), "event_date")


def test_death_before_existing_records_is_refused_and_names_the_later_record(nurse, case):
    with pytest.raises(ValidationError) as error:
        services.record_save(user=nurse, record=f.follow_up(case, event="death", event_date=D(2015, 12, 1)))
    assert "follow-up event (contact (seen alive), 2016-01-01)" in " ".join(error.value.messages)


def test_future_dates_are_refused(nurse, case):
    tomorrow = datetime.date.today() + datetime.timedelta(days=1)
    refused(nurse, f.follow_up(case, event_date=tomorrow), "event_date")


def test_birth_year_after_primary_diagnosis_is_refused(nurse, case):
    patient = Patient.objects.get(pk=case.pk)
    patient.birth_year = 2013
    assert "before the year of birth 2013" in refused(nurse, patient, "birth_year")


def test_a_date_before_the_year_of_birth_is_refused(nurse):
    patient = Patient.objects.get(pk=f.patient("MUC").pk)
    patient.lung_mets_diagnosis_date = D(777, 2, 20)
    assert "before the year of birth 1960" in refused(nurse, patient, "lung_mets_diagnosis_date")


def test_primary_diagnosis_in_birth_year_is_accepted(nurse):
    patient = f.patient("MUC", birth_year=2012)
    services.record_save(user=nurse, record=f.primary_tumour(patient))


def test_primary_surgery_before_diagnosis_is_refused(nurse):
    patient = f.patient("MUC")
    refused(nurse, f.primary_tumour(patient, surgery_date=D(2012, 4, 1)), "surgery_date")


def test_an_end_date_of_radiotherapy_that_was_not_given_is_refused(nurse):
    patient = f.patient("MUC")
    message = refused(nurse, f.primary_tumour(patient, radiotherapy="none", radiotherapy_end_date=D(2012, 9, 15)),
                      "radiotherapy_end_date")
    assert "No radiotherapy was given" in message


def test_lung_metastases_diagnosed_after_first_pm_is_refused(nurse, case):
    patient = Patient.objects.get(pk=case.pk)
    patient.lung_mets_diagnosis_date = D(2015, 4, 2)
    assert "before the diagnosis of lung metastases" in refused(nurse, patient, "lung_mets_diagnosis_date")


def test_first_pm_before_lung_metastases_is_refused_but_a_later_pm_is_accepted(nurse, case):
    refused(nurse, f.metastasectomy(case, surgery_date=D(2015, 2, 1)), "surgery_date")
    services.record_save(user=nurse, record=f.metastasectomy(case, surgery_date=D(2015, 9, 1)))


def test_second_pm_on_the_same_date_is_refused(nurse, case):
    assert "already dated 2015-04-01" in refused(nurse, f.metastasectomy(case), "surgery_date")


def test_moving_the_first_pm_after_a_follow_up_is_refused(nurse, case):
    pm = Metastasectomy.objects.get(patient=case)
    pm.surgery_date = D(2016, 6, 1)
    with pytest.raises(ValidationError) as error:
        services.record_save(user=nurse, record=pm)
    assert "follow-up event (contact (seen alive), 2016-01-01)" in " ".join(error.value.messages)
    assert Metastasectomy.objects.get(patient=case).surgery_date == D(2015, 4, 1)


def test_deleting_the_only_pm_under_follow_up_is_refused(nurse, case):
    with pytest.raises(ValidationError):
        services.record_delete(user=nurse, record=Metastasectomy.objects.get(patient=case), reason="entered in error")
    assert Metastasectomy.objects.filter(patient=case).exists()


def test_check_case_works_on_unsaved_records():
    patient = Patient(patient_id="MUC-ABCDEF", birth_year=1960, lung_mets_diagnosis_date=D(2015, 3, 1))
    case = cases.Case(patient=patient, metastasectomies=[Metastasectomy(surgery_date=D(2015, 4, 1))],
                      follow_ups=[FollowUp(event="contact", event_date=D(2015, 1, 1))])
    [violation] = rules.check_case(case)
    assert violation.column == "event_date"
    assert str(violation).startswith("follow-up event (contact (seen alive), 2015-01-01), event_date:")


def test_a_record_is_described_with_the_labels_of_its_codes_in_the_active_language():
    from django.utils import translation

    event = FollowUp(patient_id="MUC-7K3QZ9", event="death", event_date=D(2018, 3, 1))
    therapy = SystemicTherapy(patient_id="MUC-7K3QZ9", regimen="doxorubicin_ifosfamide", start_date=D(2017, 1, 1))
    with translation.override("de"):
        described = rules.describe(event) + " " + rules.describe(therapy)
        assert event.get_event_display() in described and therapy.get_regimen_display() in described
    assert "death," not in described and "doxorubicin_ifosfamide" not in described
