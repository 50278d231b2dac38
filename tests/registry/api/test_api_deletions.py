"""Deletions through the REST API: DELETE needs ?reason=, the deleted records are listed to those who
may read them, and a coordinator restores one."""
import datetime

import pytest
import yaml
from django.test import Client

from registry import services
from registry.models import DeletedRecord, FollowUp, Metastasectomy, Patient, Restoration
from tests import factories as f
from tests.problems import field_errors
from tests.registry.api.test_api_helpers import api, client_for, fresh_throttles  # noqa: F401

pytestmark = pytest.mark.django_db
D = datetime.date


def test_a_delete_without_a_reason_is_a_400_naming_the_parameter_and_deletes_nothing(api, case):
    for url in (f"/api/v1/follow-up/{case.follow_ups.get().pk}/", f"/api/v1/patients/{case.pk}/"):
        for query in ("", "?reason=", "?reason=%20"):
            response = api.delete(url + query, HTTP_IF_MATCH='"1"')
            assert response.status_code == 400, (url, query)
            assert "Give a reason for deleting" in field_errors(response)["reason"][0]
    assert Patient.objects.exists() and FollowUp.objects.exists() and not DeletedRecord.objects.exists()


def test_a_delete_with_a_reason_keeps_it_in_the_history_and_the_tombstone(api, case, nurse):
    event = case.follow_ups.get()
    assert api.delete(f"/api/v1/follow-up/{event.pk}/?reason=seen%20twice", HTTP_IF_MATCH='"1"').status_code == 204
    assert FollowUp.history.filter(id=event.pk).first().history_change_reason == "api: seen twice"
    tombstone = DeletedRecord.objects.get()
    assert (tombstone.reason, tombstone.source, tombstone.deleted_by) == ("seen twice", "api", nurse)


def test_the_schema_documents_the_required_reason_of_a_delete_and_the_restore():
    schema = yaml.safe_load(Client().get("/api/schema/").content)
    delete = schema["paths"]["/api/v1/metastasectomies/{id}/"]["delete"]
    reason = next(p for p in delete["parameters"] if p["name"] == "reason")
    assert reason["in"] == "query" and reason["required"] is True
    assert "get" in schema["paths"]["/api/v1/deleted-records/"]
    restore = schema["paths"]["/api/v1/deleted-records/{id}/restore/"]["post"]
    assert restore["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/RestoreRequest")
    assert schema["components"]["schemas"]["RestoreRequest"]["required"] == ["reason"]


@pytest.fixture
def deletions(case, nurse, other_nurse):
    """A deleted follow-up event of MUC, and a deleted patient of BER."""
    services.record_delete(user=nurse, record=case.follow_ups.get(), reason="entered twice")
    berlin = services.patient_create(user=other_nurse, centre=f.centre("BER"), **f.patient_values())
    services.record_delete(user=other_nurse, record=berlin, reason="test entry")
    return case, berlin


def listed(user, query=""):
    response = client_for(user).get(f"/api/v1/deleted-records/{query}")
    assert response.status_code == 200
    return response.json()["results"]


def test_the_deleted_records_are_listed_to_those_who_may_read_their_centre(deletions, nurse, other_nurse, pi,
                                                                           coordinator):
    case, berlin = deletions
    assert [row["patient_id"] for row in listed(nurse)] == [case.pk]
    assert [row["patient_id"] for row in listed(pi)] == [case.pk]
    assert [row["patient_id"] for row in listed(other_nurse)] == [berlin.pk]
    assert [row["patient_id"] for row in listed(coordinator)] == [berlin.pk, case.pk]  # newest first
    assert [row["patient_id"] for row in listed(coordinator, "?centre=MUC")] == [case.pk]
    assert [row["patient_id"] for row in listed(coordinator, f"?patient_id={berlin.pk}")] == [berlin.pk]
    row = listed(nurse)[0]
    assert (row["table"], row["centre"], row["deleted_by"], row["source"], row["reason"], row["restored_at"]) == (
        "follow_up", "MUC", "nurse", "", "entered twice", None)
    assert row["values"]["follow_up"][0]["event_date"] == "2016-01-01"


def test_a_coordinator_restores_a_deleted_record_and_the_list_says_so(deletions, coordinator):
    case, _berlin = deletions
    tombstone = DeletedRecord.objects.get(patient_id=case.pk)
    response = client_for(coordinator).post(f"/api/v1/deleted-records/{tombstone.pk}/restore/",
                                            {"reason": "a real visit"}, format="json")
    assert response.status_code == 200
    assert (response.json()["restored_by"], response.json()["restore_reason"]) == ("coordinator", "a real visit")
    assert FollowUp.objects.get(patient=case).history.first().history_change_reason == "api: a real visit"
    assert listed(coordinator, "?state=deleted")[0]["patient_id"] != case.pk
    assert listed(coordinator, "?state=restored")[0]["patient_id"] == case.pk


def test_a_restore_without_a_reason_or_by_another_role_is_refused(deletions, nurse, other_nurse, pi, monitor,
                                                                 coordinator):
    case, _berlin = deletions
    url = f"/api/v1/deleted-records/{DeletedRecord.objects.get(patient_id=case.pk).pk}/restore/"
    response = client_for(coordinator).post(url, {}, format="json")
    assert response.status_code == 400 and "reason" in field_errors(response)
    for user, status in [(nurse, 403), (pi, 403), (monitor, 403), (other_nurse, 404)]:
        assert client_for(user).post(url, {"reason": "back"}, format="json").status_code == status, user
    assert client_for(coordinator).post("/api/v1/deleted-records/99999/restore/", {"reason": "x"},
                                        format="json").status_code == 404
    assert not FollowUp.objects.filter(patient=case).exists() and not Restoration.objects.exists()


def test_a_restore_that_would_break_a_rule_is_a_400_with_the_rules_message(case, nurse, coordinator):
    pm = services.record_save(user=nurse, record=f.metastasectomy(case, surgery_date=D(2016, 6, 1)))
    services.record_delete(user=nurse, record=pm, reason="wrong date")
    services.record_save(user=nurse, record=f.metastasectomy(case, surgery_date=D(2016, 6, 1)))
    response = client_for(coordinator).post(f"/api/v1/deleted-records/{DeletedRecord.objects.get().pk}/restore/",
                                            {"reason": "back"}, format="json")
    assert response.status_code == 400
    assert "Another metastasectomy of this patient is already dated 2016-06-01." in str(response.json())
    assert Metastasectomy.objects.count() == 2


def test_updated_since_on_the_tables_and_the_deletions_is_a_feed_of_every_change(api, case, nurse):
    """A mirror that read at `start` learns from the two lists what changed and what was deleted since."""
    from django.utils import timezone

    start = timezone.now()
    pm = case.metastasectomies.get()
    pm.hospital_stay_days = 12
    services.record_save(user=nurse, record=pm)
    event = case.follow_ups.get()
    services.record_delete(user=nurse, record=event, reason="entered twice")
    since = {"updated_since": start.isoformat()}
    changed = api.get("/api/v1/metastasectomies/", since).json()["results"]
    assert [row["id"] for row in changed] == [pm.pk]
    assert api.get("/api/v1/follow-up/", since).json()["results"] == []
    deleted = api.get("/api/v1/deleted-records/", since).json()["results"]
    assert [(row["table"], row["record_id"]) for row in deleted] == [("follow_up", str(event.pk))]
    later = {"updated_since": timezone.now().isoformat()}
    assert api.get("/api/v1/deleted-records/", later).json()["results"] == []
    assert api.get("/api/v1/deleted-records/", {"updated_since": "yesterday"}).status_code == 400


def test_a_record_id_of_unicode_digits_is_a_404_not_a_server_error(api, case):
    for path in ("/api/v1/primary-tumours/%C2%B3/", "/api/v1/queries/%C2%B3/", "/api/v1/deleted-records/%C2%B3/restore/"):
        response = api.patch(path, {}, content_type="application/json", HTTP_IF_MATCH='"1"') if "tumours" in path \
            else api.post(path, {}, content_type="application/json") if "restore" in path else api.get(path)
        assert response.status_code == 404, path
