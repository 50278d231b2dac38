"""Each database constraint refuses an invalid row written straight to the database,
and accepts a valid one: the last line of defence behind every write path."""
import datetime

import pytest
from django.db import IntegrityError, transaction

from tests import factories as f

pytestmark = pytest.mark.django_db
D = datetime.date


def saves(record):
    try:
        with transaction.atomic():
            record.save()
        return True
    except IntegrityError:
        return False


@pytest.fixture
def patient():
    return f.patient()


def test_valid_records_of_every_table_save(patient):
    assert saves(f.primary_tumour(patient))
    assert saves(f.metastasectomy(patient))
    assert saves(f.systemic_therapy(patient))
    assert saves(f.follow_up(patient))


@pytest.mark.parametrize("overrides", [
    {"sex": "unknown"}, {"histology": "lms"}, {"birth_year": 1899}, {"ecog": 5},
])
def test_patient_constraints_refuse_invalid_values(overrides):
    assert not saves(f.Patient(patient_id="MUC-ZZZZZZ", centre=f.centre(), **f.patient_values(**overrides)))


def test_patient_id_must_match_the_pseudonym_format():
    assert not saves(f.Patient(patient_id="muc-123", centre=f.centre(), **f.patient_values()))
    assert saves(f.Patient(patient_id="MUC-123ABC", centre=f.centre(), **f.patient_values()))


@pytest.mark.parametrize("overrides", [
    {"site": "lung"}, {"size_mm": 0}, {"size_mm": 501}, {"depth": "middle"}, {"grade": "G4"}, {"margin": "R3"},
    {"radiotherapy": "palliative"}, {"surgery_date": D(2012, 4, 1)},
    {"radiotherapy": "adjuvant", "radiotherapy_end_date": None},
    {"radiotherapy": "adjuvant", "radiotherapy_end_date": D(2011, 1, 1)},
])
def test_primary_tumour_constraints_refuse_invalid_values(patient, overrides):
    assert not saves(f.primary_tumour(patient, **overrides))


def test_second_primary_tumour_of_a_patient_is_refused(patient):
    assert saves(f.primary_tumour(patient))
    assert not saves(f.primary_tumour(patient))


@pytest.mark.parametrize("overrides", [
    {"side": "both"}, {"approach": "open"}, {"resection_type": "biopsy"}, {"lesions_resected": 0},
    {"lesions_resected": 101}, {"max_lesion_diameter_mm": 0}, {"max_lesion_diameter_mm": 201},
    {"diameter_source": "mri"}, {"margin": "RX"}, {"clavien_dindo": "III"}, {"hospital_stay_days": 366},
])
def test_metastasectomy_constraints_refuse_invalid_values(patient, overrides):
    assert not saves(f.metastasectomy(patient, **overrides))


def test_two_metastasectomies_on_one_date_are_refused(patient):
    assert saves(f.metastasectomy(patient))
    assert not saves(f.metastasectomy(patient))
    assert saves(f.metastasectomy(patient, surgery_date=D(2016, 4, 1)))


@pytest.mark.parametrize("overrides", [
    {"end_date": D(2015, 4, 1)}, {"regimen": "cisplatin"}, {"regimen": "other", "regimen_other": None},
    {"regimen": "other", "regimen_other": ""}, {"intent": "curative"}, {"cycles": 0}, {"cycles": 51},
    {"best_response": "MR"},
])
def test_systemic_therapy_constraints_refuse_invalid_values(patient, overrides):
    assert not saves(f.systemic_therapy(patient, **overrides))


def test_other_regimen_with_a_name_is_accepted(patient):
    assert saves(f.systemic_therapy(patient, regimen="other", regimen_other="cyclophosphamide"))


@pytest.mark.parametrize("overrides", [
    {"event": "relapse"}, {"event": "recurrence", "recurrence_site": None},
    {"event": "contact", "recurrence_site": "lung"}, {"event": "contact", "cause_of_death": "sarcoma"},
    {"event": "death", "cause_of_death": "old age"},
])
def test_follow_up_constraints_refuse_invalid_values(patient, overrides):
    assert not saves(f.follow_up(patient, **overrides))


def test_second_death_of_a_patient_is_refused_by_the_database(patient):
    assert saves(f.follow_up(patient, event="death", event_date=D(2017, 1, 1)))
    assert not saves(f.follow_up(patient, event="death", event_date=D(2017, 2, 1)))
    other = f.patient()
    assert saves(f.follow_up(other, event="death", event_date=D(2017, 1, 1)))
