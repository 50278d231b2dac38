"""The REST API's records: dictionary field names, the registry's rules, ETag / If-Match, filters,
pages, and the audit trail naming the API user."""
import datetime

import pytest

from registry import services
from registry.models import FollowUp, Metastasectomy, Patient, PrimaryTumour, SystemicTherapy
from tests import factories as f
from tests.problems import field_errors, problem_of
from tests.registry.api.test_api_helpers import api, client_for, fresh_throttles, patient_payload, record_payloads  # noqa: F401

pytestmark = pytest.mark.django_db

PATIENT_FIELDS = ["patient_id", "centre", "sex", "birth_year", "histology", "lung_mets_diagnosis_date",
                  "extrapulmonary_disease_at_pm", "ecog", "missing_codes", "version", "status", "created_at", "updated_at"]


def counts():
    return [model.objects.count() for model in (Patient, PrimaryTumour, Metastasectomy, SystemicTherapy, FollowUp)]


def test_patient_fields_are_the_dictionarys_columns(api, case):
    response = api.get(f"/api/v1/patients/{case.pk}/")
    assert response.status_code == 200
    assert list(response.json()) == PATIENT_FIELDS
    assert response.json()["centre"] == "MUC"
    assert response.json()["lung_mets_diagnosis_date"] == "2015-03-01"
    assert response["ETag"] == f'"{case.version}"'


def test_child_records_show_patient_id_and_numbers_as_numbers(api, case):
    pm = case.metastasectomies.get()
    body = api.get(f"/api/v1/metastasectomies/{pm.pk}/").json()
    assert list(body)[:3] == ["id", "patient_id", "surgery_date"]
    assert body["patient_id"] == case.pk
    assert body["max_lesion_diameter_mm"] == 15.0
    assert body["diameter_source"] is None  # unknown is null, never "" or 0


def test_list_and_detail_show_the_same_row(api, case):
    listed = api.get("/api/v1/follow-up/").json()["results"]
    assert listed == [api.get(f"/api/v1/follow-up/{listed[0]['id']}/").json()]


def test_nurse_creates_a_patient_and_the_registry_issues_the_pseudonym(api, nurse):
    response = api.post("/api/v1/patients/", patient_payload(), format="json")
    assert response.status_code == 201, response.json()
    patient = Patient.objects.get()
    assert response.json()["patient_id"] == patient.pk and patient.pk.startswith("MUC-")
    assert response["Location"].endswith(f"/api/v1/patients/{patient.pk}/")
    assert patient.history.get().history_user == nurse  # the audit trail names the API user


def test_create_records_of_every_child_table(api, case):
    bare = f.patient("MUC")
    for url, payload in record_payloads(case.pk).items():
        if url == "primary-tumours":
            payload["patient_id"] = bare.pk
        response = api.post(f"/api/v1/{url}/", payload, format="json")
        assert response.status_code == 201, (url, response.json())
        assert response.json()["version"] == 1
    therapy = SystemicTherapy.objects.get(regimen="other")
    assert therapy.regimen_other == "trial drug"
    assert therapy.history.get().history_user.username == "nurse"


def test_follow_up_before_the_first_pm_is_a_400_naming_event_date_and_nothing_is_written(api, case):
    before = counts()
    response = api.post("/api/v1/follow-up/", {"patient_id": case.pk, "event_date": "2015-01-01",
                                               "event": "contact"}, format="json")
    assert response.status_code == 400
    assert "event_date" in field_errors(response)
    assert "2015-04-01" in " ".join(field_errors(response)["event_date"])
    assert counts() == before


def test_a_single_record_rule_is_a_400_naming_the_field(api, case):
    response = api.post("/api/v1/systemic-therapies/", {"patient_id": case.pk, "start_date": "2016-01-01",
                                                        "regimen": "other", "intent": "palliative"}, format="json")
    assert response.status_code == 400
    assert list(field_errors(response)) == ["regimen_other"]


def test_unknown_codes_and_future_dates_are_refused_by_type_checks(api, case):
    tomorrow = (datetime.date.today() + datetime.timedelta(days=1)).isoformat()
    response = api.patch(f"/api/v1/patients/{case.pk}/", {"sex": "F", "lung_mets_diagnosis_date": tomorrow},
                         format="json", HTTP_IF_MATCH='"1"')
    assert response.status_code == 400
    assert set(field_errors(response)) == {"sex", "lung_mets_diagnosis_date"}


def test_a_second_primary_tumour_is_refused(api, case):
    response = api.post("/api/v1/primary-tumours/", record_payloads(case.pk)["primary-tumours"], format="json")
    assert response.status_code == 400
    assert "patient_id" in field_errors(response)


def test_a_record_of_an_unreadable_patient_looks_like_an_unknown_patient(case, other_nurse):
    api = client_for(other_nurse)
    response = api.post("/api/v1/follow-up/", {**record_payloads(case.pk)["follow-up"]}, format="json")
    assert response.status_code == 400
    assert field_errors(response) == {"patient_id": [f"There is no patient {case.pk}."]}


def test_a_nurse_cannot_create_a_patient_for_another_centre(api):
    f.centre("BER")
    assert api.post("/api/v1/patients/", patient_payload(centre="BER"), format="json").status_code == 403
    assert not Patient.objects.exists()


def test_patients_cannot_move_centre_nor_records_patient(api, case):
    other = f.patient("MUC")
    response = api.patch(f"/api/v1/patients/{case.pk}/", {"centre": "BER"}, format="json", HTTP_IF_MATCH='"1"')
    assert response.status_code == 400 and "centre" in field_errors(response)
    pm = case.metastasectomies.get()
    response = api.patch(f"/api/v1/metastasectomies/{pm.pk}/", {"patient_id": other.pk}, format="json",
                         HTTP_IF_MATCH='"1"')
    assert response.status_code == 400 and "patient_id" in field_errors(response)


def test_put_replaces_and_patch_changes_and_both_bump_the_version(api, case):
    url = f"/api/v1/follow-up/{case.follow_ups.get().pk}/"
    response = api.put(url, {"patient_id": case.pk, "event_date": "2016-02-01", "event": "contact"}, format="json",
                       HTTP_IF_MATCH='"1"')
    assert response.status_code == 200, response.json()
    assert response.json()["version"] == 2 and response["ETag"] == '"2"'
    response = api.patch(url, {"event_date": "2016-03-01"}, format="json", HTTP_IF_MATCH=response["ETag"])
    assert response.json()["event_date"] == "2016-03-01" and response.json()["version"] == 3


def test_put_needs_every_required_field(api, case):
    url = f"/api/v1/follow-up/{case.follow_ups.get().pk}/"
    response = api.put(url, {"event_date": "2016-02-01"}, format="json", HTTP_IF_MATCH='"1"')
    assert response.status_code == 400
    assert set(field_errors(response)) == {"patient_id", "event"}


def test_a_stale_if_match_is_a_412_and_changes_nothing(api, case):
    url = f"/api/v1/patients/{case.pk}/"
    etag = api.get(url)["ETag"]
    assert api.patch(url, {"ecog": 1}, format="json", HTTP_IF_MATCH=etag).status_code == 200
    response = api.patch(url, {"ecog": 2}, format="json", HTTP_IF_MATCH=etag)  # someone saved in between
    assert response.status_code == 412
    assert response.json()["current_version"] == 2
    assert Patient.objects.get().ecog == 1
    assert api.delete(url + "?reason=duplicate", HTTP_IF_MATCH=etag).status_code == 412
    assert Patient.objects.exists()


def test_a_change_without_if_match_is_a_428_and_cannot_overwrite_a_web_save(api, case, nurse):
    """A client PUTting a body read at version 1 silently overwrote a save made at version 2."""
    url = f"/api/v1/patients/{case.pk}/"
    body = api.get(url).json()
    stored = Patient.objects.get()
    stored.ecog = 3
    services.record_save(user=nurse, record=stored)  # a nurse saves in the web app meanwhile
    response = api.put(url, {**body, "ecog": 1}, format="json")
    assert response.status_code == 428 and response["ETag"] == '"2"'
    assert "If-Match" in response.json()["detail"]
    assert api.delete(url + "?reason=duplicate").status_code == 428
    assert Patient.objects.get().ecog == 3 and Patient.objects.get().version == 2


def test_if_match_may_be_made_optional_by_setting(api, case, settings):
    settings.API_REQUIRE_IF_MATCH = False
    assert api.patch(f"/api/v1/patients/{case.pk}/", {"ecog": 1}, format="json").status_code == 200


def test_a_current_if_match_is_accepted_also_weak_or_star(api, case):
    url = f"/api/v1/patients/{case.pk}/"
    assert api.patch(url, {"ecog": 1}, format="json", HTTP_IF_MATCH='W/"1"').status_code == 200
    assert api.patch(url, {"ecog": 2}, format="json", HTTP_IF_MATCH="*").status_code == 200
    assert api.patch(url, {"ecog": 3}, format="json", HTTP_IF_MATCH='"1", "3"').status_code == 200


def test_a_concurrent_save_between_read_and_write_is_a_412(api, case, nurse, monkeypatch):
    from registry import services
    from registry.services import StaleRecordError

    def stale(**kwargs):
        raise StaleRecordError(kwargs["record"], [("ecog", 4)])
    monkeypatch.setattr(services, "record_save", stale)
    response = api.patch(f"/api/v1/patients/{case.pk}/", {"ecog": 1}, format="json", HTTP_IF_MATCH='"1"')
    assert response.status_code == 412
    assert "ecog" in response.json()["detail"]


def test_deleting_a_patient_deletes_the_case_and_audits_the_api_user(api, case, nurse):
    assert api.delete(f"/api/v1/patients/{case.pk}/?reason=duplicate", HTTP_IF_MATCH='"1"').status_code == 204
    assert counts() == [0, 0, 0, 0, 0]
    assert Patient.history.filter(history_type="-").get().history_user == nurse


def test_deleting_the_only_pm_with_follow_up_left_is_a_400(api, case):
    pm = case.metastasectomies.get()
    response = api.delete(f"/api/v1/metastasectomies/{pm.pk}/?reason=duplicate", HTTP_IF_MATCH='"1"')
    assert response.status_code == 400
    assert Metastasectomy.objects.filter(pk=pm.pk).exists()


def test_filters_patient_id_centre_and_updated_since(case, coordinator):
    api = client_for(coordinator)
    berlin = f.patient("BER")
    f.metastasectomy(berlin).save()
    assert {r["patient_id"] for r in api.get("/api/v1/metastasectomies/").json()["results"]} == {case.pk, berlin.pk}
    assert [r["patient_id"] for r in api.get(f"/api/v1/metastasectomies/?patient_id={berlin.pk}").json()["results"]] \
        == [berlin.pk]
    assert [r["patient_id"] for r in api.get("/api/v1/patients/?centre=BER").json()["results"]] == [berlin.pk]
    assert len(api.get("/api/v1/patients/?centre=BER,MUC").json()["results"]) == 2
    Patient.objects.filter(pk=berlin.pk).update(updated_at=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
    assert [r["patient_id"] for r in api.get("/api/v1/patients/?updated_since=2021-01-01").json()["results"]] \
        == [case.pk]
    since = api.get("/api/v1/patients/", {"updated_since": "2019-12-31T23:00:00+00:00"}).json()["results"]
    assert len(since) == 2
    response = api.get("/api/v1/patients/?updated_since=yesterday")
    assert response.status_code == 400 and "updated_since" in field_errors(response)


def test_pages_follow_next_until_every_row_is_listed(api):
    ids = sorted(f.patient("MUC").pk for _ in range(7))
    seen, url, pages = [], "/api/v1/patients/?page_size=3", 0
    while url:
        body = api.get(url).json()
        seen += [row["patient_id"] for row in body["results"]]
        url, pages = body["next"], pages + 1
    assert seen == ids and pages == 3


def test_page_size_is_capped(api, monkeypatch):
    from registry.api.views import RecordPagination
    monkeypatch.setattr(RecordPagination, "max_page_size", 2)
    for _ in range(3):
        f.patient("MUC")
    assert len(api.get("/api/v1/patients/?page_size=2").json()["results"]) == 2
    assert "page_size" in field_errors(api.get("/api/v1/patients/?page_size=3"))  # over the cap: said, not cut


def test_a_bad_cursor_is_a_400_naming_it(api):
    assert "cursor" in field_errors(api.get("/api/v1/patients/?cursor=garbage"))


def test_listing_is_a_fixed_number_of_queries(api, case, django_assert_max_num_queries):
    for _ in range(20):
        f.patient("MUC")
    with django_assert_max_num_queries(5):  # token, memberships, page, the read recorded (+ last_used_at once a minute)
        assert len(api.get("/api/v1/patients/").json()["results"]) == 21


def test_centres_lists_only_readable_centres(case, other_nurse, coordinator):
    assert client_for(other_nurse).get("/api/v1/centres/").json() == [{"code": "BER", "name": "Centre BER"}]
    assert [c["code"] for c in client_for(coordinator).get("/api/v1/centres/").json()] == ["BER", "MUC"]
    assert client_for(other_nurse).get("/api/v1/centres/MUC/").status_code == 404


def test_session_authentication_needs_csrf_for_writes(client, nurse, case):
    from django.test import Client
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(nurse)
    assert browser.get(f"/api/v1/patients/{case.pk}/").status_code == 200
    response = browser.patch(f"/api/v1/patients/{case.pk}/", {"ecog": 1}, content_type="application/json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]


@pytest.mark.parametrize("url", ["/api/v1/follow-up/abc/", "/api/v1/follow-up/99999999999999999999999/",
                                 "/api/v1/centres/%C2%84/", "/api/v1/patients/a.b/", "/api/v1/nothing/here/"])
def test_unknown_urls_under_v1_are_json_404s(api, url):
    response = api.get(url)
    assert response.status_code == 404 and problem_of(response)["code"] == "not_found"


def test_a_patch_that_changes_nothing_keeps_the_version_and_writes_no_history(api, case):
    url, audit_rows = f"/api/v1/patients/{case.pk}/", Patient.history.count()
    response = api.patch(url, {"ecog": case.ecog}, format="json", HTTP_IF_MATCH='"1"')
    assert response.status_code == 200 and response["ETag"] == '"1"'
    assert Patient.history.count() == audit_rows


def test_a_create_retried_with_the_same_idempotency_key_stores_one_record(api, case):
    payload = record_payloads(case.pk)["follow-up"]
    payload["event_date"] = "2016-06-01"
    first = api.post("/api/v1/follow-up/", payload, format="json", HTTP_IDEMPOTENCY_KEY="retry-1")
    second = api.post("/api/v1/follow-up/", payload, format="json", HTTP_IDEMPOTENCY_KEY="retry-1")
    assert first.status_code == second.status_code == 201 and first.json()["id"] == second.json()["id"]
    assert FollowUp.objects.filter(patient=case).count() == 2  # the case's own contact and this one
