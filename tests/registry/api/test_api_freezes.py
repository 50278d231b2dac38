"""/api/v1/freezes/: listing and making data freezes, and what changed since one, with the access
rules of the analysis (metadata for everyone, freezing for coordinators, the diff's patients only
of the centres one may read)."""
import datetime

import pytest
from rest_framework.test import APIClient

from registry import services
from registry.api.models import ApiToken
from registry.models import Freeze, Metastasectomy, SecurityEvent
from tests import factories as f
from tests.problems import field_errors
from tests.registry.api.test_api_helpers import client_for, fresh_throttles  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def berlin(coordinator):
    patient = f.patient("BER")
    services.record_save(user=coordinator, record=f.metastasectomy(patient))
    return patient


def test_a_coordinator_freezes_the_registry_through_the_api_and_everyone_signed_in_sees_it(
        case, berlin, coordinator, nurse):
    response = client_for(coordinator).post("/api/v1/freezes/", {"name": "q3-2026", "rule": "all"}, format="json")
    assert response.status_code == 201
    freeze = Freeze.objects.get()
    body = response.json()
    assert body == {"name": "q3-2026", "frozen_at": freeze.created_at.isoformat(), "rule": "all",
                    "content_hash": freeze.content_hash, "dictionary_version": freeze.dictionary_version,
                    "live_data_version": freeze.data_version, "frozen_by": "coordinator",
                    "counts": {"patients": 2, "primary_tumours": 1, "metastasectomies": 2, "systemic_therapies": 1,
                               "follow_up": 1}}
    assert client_for(coordinator).get("/api/v1/freezes/").json() == [body]
    # A nurse sees the freeze, counted over her own centre (whose aggregates she may see).
    assert client_for(nurse).get("/api/v1/freezes/").json()[0]["counts"]["patients"] == 1


def test_freezing_through_the_api_needs_a_coordinator_a_writing_token_and_a_new_valid_name(case, coordinator, pi):
    assert client_for(pi).post("/api/v1/freezes/", {"name": "mine"}, format="json").status_code == 403
    read_only = ApiToken.issue(user=coordinator, kind="api", name="reader", read_only=True)[1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {read_only}")
    assert client.post("/api/v1/freezes/", {"name": "mine"}, format="json").status_code == 403
    api = client_for(coordinator)
    assert api.post("/api/v1/freezes/", {"name": "mine"}, format="json").status_code == 201  # rule: all
    for name in ("mine", "live", "no spaces"):
        response = api.post("/api/v1/freezes/", {"name": name}, format="json")
        assert response.status_code == 400 and "name" in field_errors(response), name
    assert api.post("/api/v1/freezes/", {"name": "other", "rule": "some"}, format="json").status_code == 400
    assert list(Freeze.objects.values_list("name", flat=True)) == ["mine"]


def test_the_diff_says_what_changed_since_a_freeze_per_centre_and_table_for_the_centres_one_may_read(
        case, berlin, coordinator, nurse, pi):
    services.freeze_create(user=coordinator, name="before")
    pm = Metastasectomy.objects.get(patient=case)
    pm.max_lesion_diameter_mm = 40
    services.record_save(user=coordinator, record=pm)
    services.record_save(user=coordinator, record=f.follow_up(berlin, event_date=datetime.date(2016, 2, 1)))
    services.freeze_create(user=coordinator, name="after")

    body = client_for(coordinator).get("/api/v1/freezes/before/diff/").json()  # against the live data
    assert body["against"] == "live" and body["freeze"]["name"] == "before"
    assert body["summary"] == [
        {"centre": "BER", "table": "follow_up", "added": 1, "changed": 0, "removed": 0},
        {"centre": "MUC", "table": "metastasectomies", "added": 0, "changed": 1, "removed": 0}]
    assert {"centre": "MUC", "table": "metastasectomies", "change": "changed", "patient_id": case.pk,
            "record_id": pm.pk, "fields": ["max_lesion_diameter_mm"]} in body["changes"]
    against_freeze = client_for(coordinator).get("/api/v1/freezes/before/diff/", {"against": "after"}).json()
    assert against_freeze["changes"] == body["changes"] and against_freeze["against"]["name"] == "after"
    for user in (nurse, pi):  # row-level: their own centre's records only
        assert [row["centre"] for row in client_for(user).get("/api/v1/freezes/before/diff/").json()["changes"]] \
            == ["MUC"]
    read = SecurityEvent.objects.filter(event=SecurityEvent.READ, what="api:freezes-diff", username="nurse").get()
    assert (read.centres, read.patient_id, read.rows) == ("MUC", case.pk, 1)


def test_the_diff_of_an_unknown_freeze_is_404_and_against_an_unknown_one_400(case, coordinator):
    services.freeze_create(user=coordinator, name="before")
    api = client_for(coordinator)
    assert api.get("/api/v1/freezes/nope/diff/").status_code == 404
    response = api.get("/api/v1/freezes/before/diff/", {"against": "nope"})
    assert response.status_code == 400 and "against" in field_errors(response)
