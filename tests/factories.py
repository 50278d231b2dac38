"""Small factories for tests: valid records with sensible defaults, any field overridable."""
import datetime
import itertools

from django.contrib.auth import get_user_model

from registry.models import Centre, FollowUp, Membership, Metastasectomy, Patient, PrimaryTumour, SystemicTherapy

_serial = itertools.count(1)
D = datetime.date


def _instance():
    """A REDCap instance number no other record of the test has, for a record a test saves directly
    (the services give a record they save its patient's next number, whatever it carried)."""
    return next(_serial)


def centre(code="MUC", name=None):
    return Centre.objects.get_or_create(code=code, defaults={"name": name or f"Centre {code}"})[0]


def user(username=None, *, memberships=(), is_superuser=False, is_active=True, password="correct-horse-battery"):
    """memberships: iterable of (centre_code, role)."""
    username = username or f"user{next(_serial)}"
    account = get_user_model().objects.create_user(username, password=password, is_superuser=is_superuser,
                                                   is_staff=is_superuser, is_active=is_active)
    for code, role in memberships:
        Membership.objects.create(user=account, centre=centre(code), role=role)
    return account


def patient_values(**overrides):
    values = dict(sex="female", birth_year=1960, histology="LMS",
                  lung_mets_diagnosis_date=D(2015, 3, 1), extrapulmonary_disease_at_pm=False, ecog=0)
    values.update(overrides)
    return values


def patient(centre_code="MUC", suffix=None, **overrides):
    """A saved patient (bypassing services: a fixture, not a write path under test)."""
    pid = f"{centre_code}-{suffix or format(next(_serial), '06d').replace('0', 'A')}"
    return Patient.objects.create(patient_id=pid, centre=centre(centre_code), **patient_values(**overrides))


def primary_tumour(patient, **overrides):
    values = dict(diagnosis_date=D(2012, 5, 1), site="extremity", size_mm=80, grade="G3",
                  surgery_date=D(2012, 6, 1), margin="R0", radiotherapy="none")
    values.update(overrides)
    return PrimaryTumour(patient=patient, **values)


def metastasectomy(patient, **overrides):
    values = dict(surgery_date=D(2015, 4, 1), side="right", approach="vats", resection_type="wedge",
                  lesions_resected=1, max_lesion_diameter_mm=15, margin="R0", clavien_dindo="none",
                  redcap_instance=_instance())
    values.update(overrides)
    return Metastasectomy(patient=patient, **values)


def systemic_therapy(patient, **overrides):
    values = dict(start_date=D(2015, 5, 1), end_date=D(2015, 8, 1), regimen="doxorubicin", intent="pm_adjuvant",
                  redcap_instance=_instance())
    values.update(overrides)
    return SystemicTherapy(patient=patient, **values)


def follow_up(patient, **overrides):
    values = dict(event_date=D(2016, 1, 1), event="contact", redcap_instance=_instance())
    values.update(overrides)
    return FollowUp(patient=patient, **values)
