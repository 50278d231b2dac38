"""A centre's script works the query cycle through the REST API: the same services and rules as the
web pages, errors as the rest of the API gives them, every step with who, when and from where."""
import datetime

import pytest

from registry import services
from registry.api.models import ApiToken
from registry.models import Metastasectomy, Query, SecurityEvent
from registry.services import queries
from tests import factories as f
from tests.problems import field_errors
from tests.registry.api.test_api_helpers import client_for, fresh_throttles  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def query(case, monitor):
    pm = Metastasectomy.objects.get(patient=case)
    return queries.query_raise(user=monitor, record=pm, field="max_lesion_diameter_mm", text="15 mm, really?")


def manual(response):
    return [row for row in response.json()["results"] if row["origin"] == "manual"]


def test_a_monitor_raises_a_query_and_reads_it_back_with_its_thread(case, monitor):
    pm = Metastasectomy.objects.get(patient=case)
    response = client_for(monitor).post("/api/v1/queries/", {
        "table": "metastasectomies", "record_id": str(pm.pk), "field": "margin", "text": "R0 per the report?"},
        format="json", REMOTE_ADDR="10.4.4.4")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["patient_id"], body["centre"], body["record_id"], body["field"], body["state"], body["origin"]) == (
        case.pk, "MUC", str(pm.pk), "margin", "open", "manual")
    [message] = body["messages"]
    assert (message["action"], message["author"], message["text"], message["value"]) == (
        "raise", "monitor", "R0 per the report?", "R0")
    assert Query.objects.get(pk=body["id"]).messages.get().ip_address == "10.4.4.4"
    assert client_for(monitor).get(f"/api/v1/queries/{body['id']}/").json() == body


def test_a_query_on_the_patient_names_the_record_by_its_pseudonym(case, coordinator):
    response = client_for(coordinator).post("/api/v1/queries/", {
        "table": "patients", "record_id": case.pk, "field": "ecog", "text": "ECOG?"}, format="json")
    assert response.status_code == 201 and response.json()["record_id"] == case.pk


def test_a_nurse_may_not_raise_and_another_centre_s_record_does_not_exist(case, nurse, other_nurse):
    pm = Metastasectomy.objects.get(patient=case)
    payload = {"table": "metastasectomies", "record_id": str(pm.pk), "field": "margin", "text": "?"}
    refused = client_for(nurse).post("/api/v1/queries/", payload, format="json")
    assert refused.status_code == 403 and "monitor" in refused.json()["detail"]
    hidden = client_for(other_nurse).post("/api/v1/queries/", payload, format="json")
    assert hidden.status_code == 400 and field_errors(hidden) == {"record_id": ["There is no such record."]}
    assert SecurityEvent.objects.filter(event="denied", patient_id=case.pk, status=404).exists()
    assert not Query.objects.filter(origin="manual").exists()


def test_a_query_on_a_field_the_table_does_not_have_is_a_400_naming_it(case, monitor):
    pm = Metastasectomy.objects.get(patient=case)
    response = client_for(monitor).post("/api/v1/queries/", {
        "table": "metastasectomies", "record_id": str(pm.pk), "field": "colour", "text": "?"}, format="json")
    assert response.status_code == 400 and "colour" in field_errors(response)["field"][0]


def test_the_list_holds_the_user_s_centres_only_and_filters(case, query, nurse, other_nurse, coordinator):
    berlin = f.patient("BER")
    f.metastasectomy(berlin).save()
    queries.query_raise(user=coordinator, record=Metastasectomy.objects.get(patient=berlin), field="side", text="?")
    assert [row["id"] for row in manual(client_for(nurse).get("/api/v1/queries/"))] == [query.pk]
    assert {row["centre"] for row in client_for(other_nurse).get("/api/v1/queries/").json()["results"]} == {"BER"}
    assert client_for(other_nurse).get(f"/api/v1/queries/{query.pk}/").status_code == 404
    api = client_for(coordinator)
    assert len(manual(api.get("/api/v1/queries/"))) == 2
    assert [row["centre"] for row in manual(api.get("/api/v1/queries/?centre=BER"))] == ["BER"]
    assert [row["id"] for row in api.get(f"/api/v1/queries/?patient_id={case.pk}&state=open").json()["results"]
            if row["origin"] == "manual"] == [query.pk]
    assert api.get("/api/v1/queries/?state=closed,answered").json()["results"] == []


def test_every_list_page_and_every_query_read_is_recorded(case, query, nurse):
    api = client_for(nurse)
    api.get("/api/v1/queries/")
    api.get(f"/api/v1/queries/{query.pk}/")
    reads = SecurityEvent.objects.filter(event="read", username="nurse").order_by("at")
    assert [(read.what, read.patient_id) for read in reads] == [
        ("api:queries-list", case.pk), ("api:queries-detail", case.pk)]


def test_the_nurse_answers_the_monitor_reopens_and_closes_through_the_api(case, query, nurse, monitor):
    url = f"/api/v1/queries/{query.pk}/"
    answered = client_for(nurse).post(url + "answer/", {"text": "Checked: 15 mm."}, format="json",
                                      REMOTE_ADDR="10.5.5.5")
    assert answered.status_code == 200 and answered.json()["state"] == "answered"
    reopened = client_for(monitor).post(url + "reopen/", {"text": "The report says 18 mm."}, format="json")
    assert reopened.json()["state"] == "reopened"
    closed = client_for(monitor).post(url + "close/", {}, format="json")
    assert closed.json()["state"] == "closed"
    assert [(m["action"], m["author"]) for m in closed.json()["messages"]] == [
        ("raise", "monitor"), ("answer", "nurse"), ("reopen", "monitor"), ("close", "monitor")]
    assert query.messages.get(action="answer").ip_address == "10.5.5.5"


def test_a_move_the_role_may_not_make_is_a_403_and_one_the_state_forbids_a_400(query, nurse, monitor, pi):
    url = f"/api/v1/queries/{query.pk}/"
    assert client_for(nurse).post(url + "close/", {}, format="json").status_code == 403
    assert client_for(pi).post(url + "answer/", {"text": "x"}, format="json").status_code == 403
    assert client_for(monitor).post(url + "answer/", {"text": "x"}, format="json").status_code == 403
    wrong_state = client_for(monitor).post(url + "reopen/", {"text": "x"}, format="json")
    assert wrong_state.status_code == 400 and "cannot be reopened" in field_errors(wrong_state)["state"][0]
    no_text = client_for(nurse).post(url + "answer/", {}, format="json")
    assert no_text.status_code == 400 and field_errors(no_text) == {"text": ["Write a message."]}
    assert Query.objects.get(pk=query.pk).state == "open" and query.messages.count() == 1


def test_a_script_corrects_the_record_and_answers_with_the_version_its_change_created(case, query, nurse):
    api = client_for(nurse)
    pm = Metastasectomy.objects.get(patient=case)
    patched = api.patch(f"/api/v1/metastasectomies/{pm.pk}/", {"max_lesion_diameter_mm": 18}, format="json",
                        HTTP_IF_MATCH=f'"{pm.version}"')
    version = int(patched["ETag"].strip('"'))
    wrong = api.post(f"/api/v1/queries/{query.pk}/answer/", {"record_version": version - 1}, format="json")
    assert wrong.status_code == 400 and "record_version" in field_errors(wrong)
    answered = api.post(f"/api/v1/queries/{query.pk}/answer/", {"record_version": version}, format="json")
    assert answered.status_code == 200
    answer = answered.json()["messages"][-1]
    assert (answer["action"], answer["record_version"], answer["value"]) == ("answer", version, "18")


def test_a_read_only_token_reads_queries_but_makes_no_move(query, nurse):
    token, key = ApiToken.issue(user=nurse, kind="api", name="reader", read_only=True)
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get(f"/api/v1/queries/{query.pk}/").status_code == 200
    assert api.post(f"/api/v1/queries/{query.pk}/answer/", {"text": "x"}, format="json").status_code == 403
    assert Query.objects.get(pk=query.pk).state == "open"


def test_the_soft_checks_raise_queries_on_a_record_written_through_the_api(case, nurse):
    api = client_for(nurse)
    pm = Metastasectomy.objects.get(patient=case)
    api.patch(f"/api/v1/metastasectomies/{pm.pk}/", {"hospital_stay_days": 80}, format="json",
              HTTP_IF_MATCH=f'"{pm.version}"')
    found = api.get(f"/api/v1/queries/?patient_id={case.pk}").json()["results"]
    stay = next(row for row in found if row["check"] == "hospital_stay")
    assert (stay["origin"], stay["field"], stay["messages"][0]["author"], stay["messages"][0]["value"]) == (
        "soft_check", "hospital_stay_days", None, "80")


def test_an_unknown_query_is_a_404_in_json(nurse):
    for url in ("/api/v1/queries/999/", "/api/v1/queries/abc/", "/api/v1/queries/99999999999999999999/"):
        response = client_for(nurse).get(url)
        assert response.status_code == 404 and response.json()["detail"]


def test_a_query_about_a_deleted_record_is_closed_and_takes_no_answer(case, nurse, monitor):
    later = services.record_save(user=nurse, record=f.metastasectomy(case, surgery_date=datetime.date(2016, 2, 1)))
    doomed = queries.query_raise(user=monitor, record=later, field="side", text="Left or right?")
    services.record_delete(user=nurse, record=later, reason="entered twice")
    response = client_for(nurse).post(f"/api/v1/queries/{doomed.pk}/answer/", {"text": "x"}, format="json")
    assert response.status_code == 400 and "closed" in field_errors(response)["state"][0]
    assert client_for(nurse).get(f"/api/v1/queries/{doomed.pk}/").json()["messages"][-1]["system_note"] == \
        "record_deleted"
