"""The data freezes page (/freezes/): a coordinator freezes the registry, sees the freezes, and what
changed between two of them or since one, as a page and as CSV."""
import csv
import io

import pytest

from registry import services
from registry.models import Freeze, Metastasectomy, SecurityEvent
from tests import factories as f

pytestmark = pytest.mark.django_db


def test_a_coordinator_freezes_the_registry_from_the_page_and_sees_it_listed(client, coordinator, case):
    client.force_login(coordinator)
    response = client.post("/freezes/", {"name": "interim-2026", "rule": "verified"}, follow=True)
    freeze = Freeze.objects.get()
    assert (freeze.name, freeze.rule, freeze.username) == ("interim-2026", "verified", "coordinator")
    html = response.content.decode()
    assert "Froze the registry as “interim-2026”." in html
    assert "interim-2026" in html and freeze.content_hash[:16] in html and freeze.dictionary_version in html
    assert "/analysis/?freeze=interim-2026" in html
    assert 'href="/freezes/"' in client.get("/patients/").content.decode()  # in the navigation


def test_a_bad_or_taken_name_is_shown_at_the_field_and_nothing_is_frozen(client, coordinator, case):
    client.force_login(coordinator)
    client.post("/freezes/", {"name": "first", "rule": "all"})
    for name, message in (("first", "exists already"), ("live", "reserved"), ("two words", "Use letters")):
        response = client.post("/freezes/", {"name": name, "rule": "all"})
        assert response.status_code == 400 and message in response.content.decode(), name
    assert Freeze.objects.count() == 1


def test_the_diff_page_and_its_csv_say_what_changed_per_centre_and_table(client, coordinator, case):
    services.freeze_create(user=coordinator, name="before")
    pm = Metastasectomy.objects.get(patient=case)
    pm.margin = "R1"
    services.record_save(user=coordinator, record=pm)
    other = f.patient("BER")
    client.force_login(coordinator)
    page = client.get("/freezes/diff/", {"freeze": "before", "against": "live"})
    html = page.content.decode()
    assert page.status_code == 200 and 'id="diff-summary"' in html
    assert f"<td>{case.pk}</td><td>{pm.pk}</td><td>margin</td>" in html.replace("\n", "")
    response = client.get("/freezes/diff.csv", {"freeze": "before", "against": "live"})
    assert response["Content-Disposition"].startswith('attachment; filename="freeze-diff-before-live-')
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows == [["centre", "table", "change", "patient_id", "record_id", "fields"],
                    *sorted([["BER", "patients", "added", other.pk, "", ""],
                             ["MUC", "metastasectomies", "changed", case.pk, str(pm.pk), "margin"]],
                            key=lambda row: row[3])]
    assert SecurityEvent.objects.filter(event=SecurityEvent.READ, what="freeze_diff_csv", rows=2).exists()
    services.freeze_create(user=coordinator, name="after")
    same = client.get("/freezes/diff/", {"freeze": "after", "against": "live"})
    assert "Nothing changed." in same.content.decode()
    assert client.get("/freezes/diff/", {"freeze": "nope", "against": "live"}).status_code == 400
