"""Pseudonyms are issued by the registry, in the documented format, unique and never changed."""
import re

import pytest
from django.core.exceptions import ValidationError

from registry import access, pseudonyms, selectors, services
from registry.models import Patient
from tests import factories as f

pytestmark = pytest.mark.django_db
FORMAT = re.compile(r"^MUC-[0-9A-HJKMNP-TV-Z]{6}$")


def test_issued_pseudonym_has_centre_prefix_and_six_crockford_characters():
    nurse = f.user(memberships=[("MUC", "nurse")])
    patient = services.patient_create(user=nurse, centre=f.centre("MUC"), **f.patient_values())
    assert FORMAT.match(patient.patient_id)
    assert pseudonyms.ISSUED_PATTERN.match(patient.patient_id)


def test_pseudonyms_are_unique_even_when_the_random_source_repeats(monkeypatch):
    nurse = f.user(memberships=[("MUC", "nurse")])
    draws = iter(["MUC-AAAAAA", "MUC-AAAAAA", "MUC-BBBBBB"])
    monkeypatch.setattr(pseudonyms, "new_pseudonym", lambda code: next(draws))
    first = services.patient_create(user=nurse, centre=f.centre("MUC"), **f.patient_values())
    second = services.patient_create(user=nurse, centre=f.centre("MUC"), **f.patient_values())
    assert (first.patient_id, second.patient_id) == ("MUC-AAAAAA", "MUC-BBBBBB")


def test_many_pseudonyms_are_nearly_always_distinct():
    """32**6 suffixes: among 5,000 draws a repeat happens about once in 90 runs (the birthday
    problem), which unique_pseudonym draws again; three or more would mean a broken source
    (chance about 3 in 10 million)."""
    issued = {pseudonyms.new_pseudonym("HD") for _ in range(5000)}
    assert len(issued) >= 4998


def test_many_at_once_are_distinct_and_never_one_in_use_or_of_a_deleted_patient(monkeypatch):
    """An import's new patients: one draw for all, drawn again where a pseudonym is taken, was
    issued to a patient since deleted (the audit trail remembers), or repeats within the batch."""
    f.patient("MUC", suffix="AAAAAA")
    deleted = services.patient_create(user=access.SYSTEM, centre=f.centre("MUC"), **f.patient_values())
    services.record_delete(user=access.SYSTEM, record=deleted, reason="entered in error")
    deleted_suffix = deleted.patient_id.removeprefix("MUC-")
    byte = {character: bytes([index]) for index, character in enumerate(pseudonyms.CROCKFORD_BASE32)}
    draws = iter(["AAAAAA" + deleted_suffix + "CCCCCC" + "CCCCCC", "DDDDDD" + "EEEEEE" + "FFFFFF"])
    monkeypatch.setattr(pseudonyms.secrets, "token_bytes",
                        lambda n: b"".join(byte[character] for character in next(draws)))

    issued = pseudonyms.unique_pseudonyms(["MUC", "MUC", "HD", "HD"], selectors.issued_patient_ids)

    assert issued == ["MUC-DDDDDD", "MUC-EEEEEE", "HD-CCCCCC", "HD-FFFFFF"]


def test_patient_cannot_move_to_another_centre():
    coordinator = f.user(memberships=[("MUC", "coordinator")])
    patient = services.patient_create(user=coordinator, centre=f.centre("MUC"), **f.patient_values())
    patient.centre = f.centre("HD")
    with pytest.raises(ValidationError):
        services.record_save(user=coordinator, record=patient)
    assert Patient.objects.get().centre_id == "MUC"


def test_no_model_has_a_field_for_a_direct_identifier():
    forbidden = re.compile(r"name|birth_date|date_of_birth|dob|mrn|hospital_number|record_number|address|"
                           r"street|zip|postcode|phone|email|insurance")
    from registry.models import CLINICAL_MODELS
    for model in CLINICAL_MODELS:
        for field in model._meta.get_fields():
            assert not forbidden.search(field.name), f"{model.__name__}.{field.name}"
