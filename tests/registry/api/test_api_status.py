"""The record status through the API: POST .../status/ with the web's rules, a lock answered with
409 and a stable code on every write, and the reason a change of a complete record needs."""
import pytest

from registry import services
from registry.models import FollowUp, Metastasectomy, Patient
from tests.problems import field_errors, problem_of
from tests.registry.api.test_api_helpers import client_for, fresh_throttles  # noqa: F401

pytestmark = pytest.mark.django_db


def move(user, record, *statuses, reason=None):
    for status in statuses:
        record = services.record_status_set(user=user, record=record, status=status, reason=reason)
    return record


def patch(client, url, record, data):
    return client.patch(url, data, format="json", HTTP_IF_MATCH=f'"{record.version}"')


def test_the_cycle_through_the_api(case, nurse, monitor, coordinator):
    pm = case.metastasectomies.get()
    url = f"/api/v1/metastasectomies/{pm.pk}/status/"
    response = client_for(nurse).post(url, {"status": "complete"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "complete"
    assert response["ETag"] == '"2"'
    assert client_for(monitor).post(url, {"status": "verified"}, format="json").json()["status"] == "verified"
    assert client_for(monitor).post(url, {"status": "locked"}, format="json").status_code == 403
    assert client_for(coordinator).post(url, {"status": "locked"}, format="json").status_code == 200
    response = client_for(coordinator).post(url, {"status": "verified"}, format="json")
    assert response.status_code == 400 and "reason for unlocking" in field_errors(response)["reason"][0]
    response = client_for(coordinator).post(url, {"status": "verified", "reason": "margin re-read"}, format="json")
    assert response.status_code == 200
    latest = Metastasectomy.objects.get(pk=pm.pk).history.first()
    assert (latest.status, latest.history_user, latest.history_change_reason) == (
        "verified", coordinator, "api: margin re-read")


def test_a_status_outside_the_codes_or_the_cycle_is_a_400(case, coordinator):
    url = f"/api/v1/patients/{case.pk}/status/"
    assert "status" in field_errors(client_for(coordinator).post(url, {"status": "done"}, format="json"))
    response = client_for(coordinator).post(url, {"status": "locked"}, format="json")
    assert response.status_code == 400 and "cannot move from in progress to locked" in field_errors(response)["status"][0]
    assert Patient.objects.get(pk=case.pk).status == "in_progress"


def test_a_monitor_writes_no_record(case, monitor):
    pm = case.metastasectomies.get()
    response = patch(client_for(monitor), f"/api/v1/metastasectomies/{pm.pk}/", pm, {"margin": "R1"})
    assert response.status_code == 403
    assert Metastasectomy.objects.get(pk=pm.pk).margin == "R0"


def test_every_write_to_a_locked_record_is_a_409_with_a_stable_code(case, nurse, coordinator):
    pm = move(coordinator, case.metastasectomies.get(), "complete", "verified", "locked")
    api = client_for(nurse)
    url = f"/api/v1/metastasectomies/{pm.pk}/"
    response = patch(api, url, pm, {"margin": "R1", "reason": "x"})
    assert response.status_code == 409
    body = problem_of(response)
    assert body["code"] == "record_locked"
    assert "is locked" in body["detail"] and "Only a coordinator can unlock it" in body["detail"]
    assert api.delete(url + "?reason=duplicate", HTTP_IF_MATCH=f'"{pm.version}"').status_code == 409
    assert Metastasectomy.objects.get(pk=pm.pk).margin == "R0"


def test_a_new_record_of_a_locked_patient_is_a_409(case, nurse, coordinator):
    move(coordinator, case, "complete", "verified", "locked")
    response = client_for(nurse).post("/api/v1/follow-up/", {
        "patient_id": case.pk, "event_date": "2016-06-01", "event": "contact"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "record_locked"
    assert FollowUp.objects.filter(patient=case).count() == 1


def test_changing_a_complete_record_needs_a_reason(case, nurse):
    pm = move(nurse, case.metastasectomies.get(), "complete")
    api, url = client_for(nurse), f"/api/v1/metastasectomies/{pm.pk}/"
    response = patch(api, url, pm, {"margin": "R1"})
    assert response.status_code == 400 and "give a reason for the change" in field_errors(response)["reason"][0]
    response = patch(api, url, pm, {"margin": "R1", "reason": "pathology addendum"})
    assert response.status_code == 200 and "reason" not in response.json()
    latest = Metastasectomy.objects.get(pk=pm.pk).history.first()
    assert (latest.margin, latest.history_change_reason) == ("R1", "api: pathology addendum")


def test_a_read_only_token_moves_no_status(case, nurse):
    from rest_framework.test import APIClient

    from registry.api.models import ApiToken

    key = ApiToken.issue(user=nurse, kind="api", name="reader", read_only=True)[1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.post(f"/api/v1/patients/{case.pk}/status/", {"status": "complete"}, format="json").status_code == 403
    assert Patient.objects.get(pk=case.pk).status == "in_progress"
