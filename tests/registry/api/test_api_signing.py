"""Signatures and field verification through the REST API, with the web's rules."""
import pytest
from axes.models import AccessAttempt

from registry import services
from registry.models import FieldVerification, Metastasectomy, Patient, SecurityEvent, Signature
from registry.selectors import case_load
from tests.problems import field_errors
from tests.registry.api.test_api_helpers import client_for, fresh_throttles  # noqa: F401

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery"


def complete(nurse, patient):
    for record in case_load(Patient.objects.get(pk=patient.pk)).records():
        services.record_status_set(user=nurse, record=record, status="complete")


def test_a_pi_signs_through_the_api_and_the_list_shows_it_valid_then_invalid(case, nurse, pi):
    complete(nurse, case)
    api = client_for(pi)
    url = f"/api/v1/patients/{case.pk}/signatures/"
    response = api.post(url, {"password": PASSWORD}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["patient_id"], body["signer"], body["records"], body["source"]) == (case.pk, "pi", 5, "api")
    listed = api.get(url).json()
    assert listed["signatures"][0]["valid"] and listed["data_hash"] == body["data_hash"]
    pm = Metastasectomy.objects.get(patient=case)
    pm.lesions_resected = 4
    services.record_save(user=nurse, record=pm, reason="recounted")
    state = client_for(nurse).get(url).json()["signatures"][0]
    assert not state["valid"] and state["invalidated_by"]["user"] == "nurse"
    assert state["invalidated_by"]["action"] == "changed"


def test_a_wrong_password_through_the_api_is_a_400_recorded_and_counted(case, nurse, pi):
    complete(nurse, case)
    response = client_for(pi).post(f"/api/v1/patients/{case.pk}/signatures/", {"password": "guess"}, format="json")
    assert response.status_code == 400 and field_errors(response) == {"password": ["The password is not correct."]}
    assert SecurityEvent.objects.get(event=SecurityEvent.SIGNATURE_REFUSED).detail == "wrong password"
    assert AccessAttempt.objects.get(username="pi").failures_since_start == 1
    assert not Signature.objects.exists()


def test_the_api_asks_for_the_code_of_a_pi_with_an_authenticator(case, nurse, pi):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    complete(nurse, case)
    TOTPDevice.objects.create(user=pi, name="phone", confirmed=True)
    response = client_for(pi).post(f"/api/v1/patients/{case.pk}/signatures/", {"password": PASSWORD}, format="json")
    assert response.status_code == 400 and "otp" in field_errors(response)
    assert not Signature.objects.exists()


def test_a_monitor_verifies_fields_through_the_api_with_if_match(case, nurse, monitor):
    pm = services.record_status_set(user=nurse, record=Metastasectomy.objects.get(patient=case), status="complete")
    api = client_for(monitor)
    url = f"/api/v1/metastasectomies/{pm.pk}/verification/"
    before = api.get(url).json()
    assert (before["verified"], before["total"], before["status"]) == (0, 11, "complete")
    assert api.post(url, {"fields": ["side"]}, format="json").status_code == 428
    assert api.post(url, {"fields": ["side"]}, format="json", HTTP_IF_MATCH='"1"').status_code == 412
    response = api.post(url, {"fields": ["side", "max_lesion_diameter_mm"]}, format="json",
                        HTTP_IF_MATCH=f'"{pm.version}"')
    assert response.status_code == 200, response.json()
    fields = {row["field"]: row for row in response.json()["fields"]}
    assert fields["side"]["verified"] and fields["side"]["verified_by"] == "monitor"
    assert fields["max_lesion_diameter_mm"]["value"] == "15" and not fields["margin"]["verified"]
    response = api.post(url, {"fields": ["nonsense"]}, format="json", HTTP_IF_MATCH=f'"{pm.version}"')
    assert response.status_code == 400 and "fields" in field_errors(response)
    assert FieldVerification.objects.count() == 2


def test_verifying_the_last_field_through_the_api_answers_the_verified_record(case, nurse, monitor):
    pm = services.record_status_set(user=nurse, record=Metastasectomy.objects.get(patient=case), status="complete")
    names = [row["field"] for row in client_for(monitor).get(f"/api/v1/metastasectomies/{pm.pk}/verification/")
             .json()["fields"]]
    response = client_for(monitor).post(f"/api/v1/metastasectomies/{pm.pk}/verification/", {"fields": names},
                                        format="json", HTTP_IF_MATCH=f'"{pm.version}"')
    assert response.json()["status"] == "verified" and response["ETag"] == f'"{pm.version + 1}"'


def test_a_nurse_may_not_verify_and_a_locked_record_answers_409(case, nurse, coordinator):
    pm = Metastasectomy.objects.get(patient=case)
    url = f"/api/v1/metastasectomies/{pm.pk}/verification/"
    assert client_for(nurse).post(url, {"fields": ["side"]}, format="json",
                                  HTTP_IF_MATCH=f'"{pm.version}"').status_code == 403
    for status in ("complete", "verified", "locked"):
        pm = services.record_status_set(user=coordinator, record=pm, status=status)
    response = client_for(coordinator).post(url, {"fields": ["side"]}, format="json", HTTP_IF_MATCH=f'"{pm.version}"')
    assert response.status_code == 409 and response.json()["code"] == "record_locked"
