"""The coordinators' audit export: clinical changes with each field before and after, reads,
refusals and security events in time order, filtered by patient, user name and dates, as CSV or
JSON; the download is itself recorded."""
import csv
import datetime
import io
import json

import pytest
from django.core.management import call_command
from django.test import Client

from registry import services
from registry.models import SecurityEvent
from tests import factories as f

pytestmark = pytest.mark.django_db
D = datetime.date


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def trail(case, nurse, other_nurse):
    """The case's therapy changed through the API by the nurse, the case read by her, refused to
    the nurse of another centre; a patient of HD changed by someone else."""
    therapy = case.systemic_therapies.get()
    therapy.end_date = D(2015, 9, 1)
    services.record_save(user=nurse, record=therapy, source="api")
    signed_in(nurse).get(f"/patients/{case.pk}/")
    signed_in(other_nurse).get(f"/patients/{case.pk}/")
    services.patient_create(user=f.user("hd_nurse", memberships=[("HD", "nurse")]), centre=f.centre("HD"),
                            source="web", **f.patient_values())
    return case


def download(client, **query):
    response = client.get("/security/audit/", {"format": "json", **query})
    assert response.status_code == 200, response.content[:500]
    return json.loads(b"".join(response.streaming_content))


def test_a_patients_trail_has_each_change_with_its_fields_before_and_after(trail, coordinator):
    data = download(signed_in(coordinator), patient_id=trail.pk)
    rows = data["rows"]
    assert {row["patient_id"] for row in rows} == {trail.pk}  # nothing of the HD patient
    change = next(row for row in rows if row["event"] == "changed")
    assert (change["kind"], change["user"], change["source"], change["centres"]) == ("change", "nurse", "api", "MUC")
    assert change["changes"] == [{"field": "end_date", "before": "2015-08-01", "after": "2015-09-01"}]
    created = [row for row in rows if row["event"] == "created"]
    assert len(created) == 5  # the patient and its four records, with every value they were given
    therapy_created = next(row for row in created if row["record"].startswith("systemic_therapies"))
    assert {"field": "end_date", "before": None, "after": "2015-08-01"} in therapy_created["changes"]
    assert [(row["kind"], row["user"]) for row in rows if row["kind"] in ("read", "refused")] == \
        [("read", "nurse"), ("refused", "other_nurse")]
    assert [row["at"] for row in rows] == sorted(row["at"] for row in rows)
    assert data["truncated"] is False


def test_a_patients_trail_includes_reads_of_lists_that_covered_its_centre_only(trail, nurse, coordinator):
    signed_in(nurse).get("/patients/", {"centre": "MUC"})
    signed_in(f.user("hd_reader", memberships=[("HD", "nurse")])).get("/patients/")
    rows = download(signed_in(coordinator), patient_id=trail.pk)["rows"]
    lists = [(row["user"], row["centres"]) for row in rows if row["what"] == "patient_list"]
    assert lists == [("nurse", "MUC")]


def test_the_trail_is_filtered_by_user_name_and_dates(trail, coordinator):
    client = signed_in(coordinator)
    rows = download(client, user="nurse")["rows"]
    assert rows and {row["user"] for row in rows} == {"nurse"}
    today = datetime.date.today()
    assert download(client, since=(today + datetime.timedelta(days=1)).isoformat())["rows"] == []
    assert download(client, until=(today - datetime.timedelta(days=1)).isoformat())["rows"] == []
    assert len(download(client, since=today.isoformat(), until=today.isoformat())["rows"]) > 10


def test_the_trail_shows_a_status_move_with_its_reason(case, coordinator):
    for status in ("complete", "verified", "locked"):
        services.record_status_set(user=coordinator, record=case, status=status, source="web")
    services.record_status_set(user=coordinator, record=case, status="verified", reason="ECOG re-read", source="api")
    rows = download(signed_in(coordinator), patient_id=case.pk)["rows"]
    unlock = [row for row in rows if row["event"] == "changed"][-1]
    assert unlock["changes"] == [{"field": "status", "before": "locked", "after": "verified"}]
    assert (unlock["user"], unlock["source"]) == ("coordinator", "api: ECOG re-read")


def test_the_csv_trail_shows_changes_as_old_and_new_and_says_when_it_was_cut(trail, coordinator, settings):
    response = signed_in(coordinator).get("/security/audit/", {"format": "csv", "patient_id": trail.pk})
    assert response["Content-Disposition"].startswith(f'attachment; filename="audit-{trail.pk}-')
    lines = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    change = next(line for line in lines if line["event"] == "changed")
    assert change["changes"] == "end_date: 2015-08-01 → 2015-09-01" and change["source"] == "api"
    settings.AUDIT_EXPORT_MAX_ROWS = 3
    response = signed_in(coordinator).get("/security/audit/", {"format": "csv"})
    lines = b"".join(response.streaming_content).decode("utf-8-sig").splitlines()
    assert len(lines) == 5 and "truncated: more than 3 rows match" in lines[-1]


def test_the_download_is_itself_recorded_with_the_rows_sent(trail, coordinator):
    rows = download(signed_in(coordinator), patient_id=trail.pk)["rows"]
    read = SecurityEvent.objects.filter(what="audit_export").get()
    assert (read.event, read.username, read.patient_id, read.centres, read.rows) == \
        (SecurityEvent.READ, "coordinator", trail.pk, "MUC", len(rows))


def test_a_malformed_filter_is_refused_with_the_form(coordinator):
    response = signed_in(coordinator).get("/security/audit/", {"format": "json", "patient_id": "not a pseudonym"})
    assert response.status_code == 400 and "MUC-7K3QZ9" in response.content.decode()


def test_the_command_writes_the_same_trail(trail, coordinator, tmp_path):
    path = tmp_path / "audit.json"
    call_command("audit_export", "--patient", trail.pk, "--format", "json", "--out", str(path))
    from_command = json.loads(path.read_text(encoding="utf-8"))["rows"]
    from_page = download(signed_in(coordinator), patient_id=trail.pk)["rows"]
    assert from_command == from_page[:len(from_command)]
    assert SecurityEvent.objects.filter(what="manage.py audit_export", username="").count() == 1
