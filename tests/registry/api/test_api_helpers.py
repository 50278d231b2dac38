"""Fixtures and helpers shared by the API and REDCap tests (this module holds no tests).

Import what a test module needs from here; `fresh_throttles` is autouse in every module that
imports it, so request counts of one test never throttle the next.
"""
import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from registry.api.models import API, REDCAP, ApiToken


@pytest.fixture(autouse=True)
def fresh_throttles():
    cache.clear()
    yield
    cache.clear()


def token_for(user, kind=API, name="test script"):
    return ApiToken.issue(user=user, kind=kind, name=name)[1]


def client_for(user):
    """An API client authenticated with a fresh REST API token of `user` (None: anonymous)."""
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


def redcap_token_for(user):
    return token_for(user, REDCAP, "REDCap script")


@pytest.fixture
def api(nurse):
    """The MUC nurse's API client."""
    return client_for(nurse)


def patient_payload(**overrides):
    payload = {"centre": "MUC", "sex": "female", "birth_year": 1960, "histology": "LMS",
               "lung_mets_diagnosis_date": "2015-03-01", "extrapulmonary_disease_at_pm": False, "ecog": 0}
    payload.update(overrides)
    return payload


def record_payloads(patient_id):
    """A valid new record of each child table for the `case` fixture's patient (no clash with it)."""
    return {
        "primary-tumours": {"patient_id": patient_id, "diagnosis_date": "2012-05-01", "site": "trunk",
                            "radiotherapy": "none"},
        "metastasectomies": {"patient_id": patient_id, "surgery_date": "2017-02-01", "side": "left",
                             "approach": "thoracotomy", "resection_type": "wedge", "lesions_resected": 2,
                             "max_lesion_diameter_mm": 22.5, "margin": "R0", "clavien_dindo": "none"},
        "systemic-therapies": {"patient_id": patient_id, "start_date": "2017-03-01", "regimen": "other",
                               "regimen_other": "trial drug", "intent": "pm_adjuvant"},
        "follow-up": {"patient_id": patient_id, "event_date": "2018-01-01", "event": "recurrence",
                      "recurrence_site": "lung"},
    }


def verify_two_factor(client, user):
    """Sign `client` in as `user` with two factors passed (a confirmed TOTP device in the session)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client.force_login(user)
    session = client.session
    session["otp_device_id"] = device.persistent_id
    session.save()
    return client
