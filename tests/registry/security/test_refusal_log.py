"""Every refused request is recorded (401, 403, 429; a 404 for another centre's patient), each
invalid API token once, and every refused import with who, which file and how many errors."""
import hashlib

import pytest
from django.test import Client

from registry.models import SecurityEvent
from registry.transfer.importing import file_import
from tests.registry.api.test_api_helpers import client_for, fresh_throttles  # noqa: F401

pytestmark = pytest.mark.django_db


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


def the_event():
    """The one event recorded (fails if there are none or several)."""
    return SecurityEvent.objects.get()


def test_a_forbidden_page_is_recorded_with_its_status_and_user(nurse):
    assert signed_in(nurse).get("/security/").status_code == 403
    event = the_event()
    assert (event.event, event.status, event.username, event.what, event.detail) == \
        (SecurityEvent.DENIED, 403, "nurse", "security_log", "GET /security/")


def test_an_anonymous_api_request_is_recorded_as_refused(db):
    assert Client().get("/api/v1/patients/").status_code == 401
    event = the_event()
    assert (event.event, event.status, event.username, event.user) == (SecurityEvent.DENIED, 401, "", None)


def test_a_write_the_role_may_not_make_is_recorded(case, pi):
    response = client_for(pi).patch(f"/api/v1/patients/{case.pk}/", {"ecog": 1}, format="json")
    assert response.status_code == 403
    event = the_event()
    assert (event.event, event.status, event.username) == (SecurityEvent.DENIED, 403, "pi")


def test_a_throttled_request_is_recorded(settings, case, nurse):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"anon": "60/minute", "user": "1/minute", "token": "60/minute"}}
    api = client_for(nurse)
    assert api.get("/api/v1/centres/").status_code == 200
    assert api.get("/api/v1/centres/").status_code == 429
    event = the_event()
    assert (event.event, event.status, event.username) == (SecurityEvent.THROTTLED, 429, "nurse")


def test_an_invalid_api_token_is_recorded_once(db):
    response = Client().get("/api/v1/patients/", HTTP_AUTHORIZATION="Token not-a-token")
    assert response.status_code == 401
    event = the_event()
    assert (event.event, event.detail) == (SecurityEvent.TOKEN_INVALID, "GET /api/v1/patients/")


def test_an_invalid_redcap_token_is_recorded_once(db):
    response = Client().post("/redcap/api/", {"token": "0" * 32, "content": "record", "format": "json"})
    assert response.status_code == 403
    assert the_event().event == SecurityEvent.TOKEN_INVALID


def test_another_centres_patient_is_a_recorded_404_and_a_missing_one_is_not(case, other_nurse):
    client = signed_in(other_nurse)
    assert client.get(f"/patients/{case.pk}/").status_code == 404
    assert client.get("/patients/MUC-NOSUCH/").status_code == 404
    event = the_event()
    assert (event.event, event.status, event.patient_id, event.centres, event.username) == \
        (SecurityEvent.DENIED, 404, case.pk, "MUC", "other_nurse")


def test_another_centres_record_through_the_api_is_a_recorded_404(case, other_nurse):
    operation = case.metastasectomies.get()
    api = client_for(other_nurse)
    assert api.get(f"/api/v1/metastasectomies/{operation.pk}/").status_code == 404
    assert api.get("/api/v1/metastasectomies/999999/").status_code == 404
    event = the_event()
    assert (event.status, event.patient_id, event.what) == (404, case.pk, "api:metastasectomies-detail")


def test_a_refused_import_is_recorded_with_the_file_its_hash_and_its_errors(case, nurse):
    accepted = f"patient_id,event_date,event,recurrence_site,cause_of_death\n{case.pk},2016-06-01,contact,,\n"
    assert file_import(user=nurse, data=accepted.encode(), filename="follow_up.csv").written  # no refusal
    data = b"patient_id,event_date,event,recurrence_site,cause_of_death\nMUC-NOSUCH,2016-06-01,contact,,\n"
    report = file_import(user=nurse, data=data, filename="follow_up.csv")
    assert not report.ok
    event = the_event()
    assert (event.event, event.username, event.rows) == (SecurityEvent.IMPORT_REFUSED, "nurse", 1)
    assert event.detail == (f"follow_up.csv, sha256 {hashlib.sha256(data).hexdigest()}, "
                            f"{len(report.errors)} errors")
