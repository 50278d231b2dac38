"""The study-progress page and the follow-up-due worklist: right counts, right patients, and
never another centre's."""
import csv
import datetime
import io

import pytest
from django.test import Client
from django.urls import reverse

from registry import access, services
from registry.selectors import case_load
from tests import factories as f

pytestmark = pytest.mark.django_db


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


def test_progress_counts_complete_and_verified_records_per_centre(case, nurse, monitor):
    records = list(case_load(case).records())  # patient, tumour, PM, therapy, follow-up
    for record in records[:4]:
        services.record_status_set(user=nurse, record=record, status="complete")
    for record in records[:2]:
        services.record_status_set(user=monitor, record=record, status="verified")
    page = signed_in(nurse).get(reverse("study_progress"))
    row = next(r for r in page.context["rows"] if r["centre"].code == "MUC")
    assert (row["patients"], row["records"], row["complete"], row["verified"]) == (1, 5, 4, 2)
    assert (row["complete_percent"], row["verified_percent"]) == (80, 40)
    assert row["last_entry"] is not None
    assert "80 %" in page.content.decode()


def test_progress_csv_has_one_row_per_readable_centre(case, coordinator):
    f.patient("BER")
    response = signed_in(coordinator).get(reverse("study_progress") + "?format=csv")
    assert response["Content-Disposition"].startswith('attachment; filename="study-progress_')
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["centre"], r["patients"]) for r in rows] == [("BER", "1"), ("MUC", "1")]


def test_progress_shows_a_nurse_only_her_centres(case, other_nurse):
    f.patient("MUC")
    page = signed_in(other_nurse).get(reverse("study_progress"))
    assert [row["centre"].code for row in page.context["rows"]] == ["BER"]
    assert "MUC" not in page.content.decode()


def test_progress_draws_cumulative_inclusions_by_year_of_the_first_operation(case, coordinator):
    later = f.patient("MUC")
    services.record_save(user=coordinator, record=f.metastasectomy(later, surgery_date=datetime.date(2017, 3, 1)))
    other = f.patient("BER")
    services.record_save(user=coordinator, record=f.metastasectomy(other, surgery_date=datetime.date(2016, 3, 1)))
    f.patient("BER")  # no operation yet: not included
    chart = signed_in(coordinator).get(reverse("study_progress")).context["chart"]
    assert [(code, total) for code, _points, total in chart["lines"]] == [("BER", 1), ("MUC", 2)]
    assert [year for _x, year in chart["ticks"]] == [2015, 2016, 2017]
    heights = {code: [y for _x, y in points] for code, points, _total in chart["lines"]}
    assert heights["MUC"][0] == heights["MUC"][1] > heights["MUC"][2]  # 1, 1, 2 patients (y grows downwards)


def due(client, months=None):
    url = reverse("follow_up_due") + (f"?months={months}" if months else "")
    return [patient.pk for patient, _months, _writable in client.get(url).context["rows"]]


def test_follow_up_due_lists_living_patients_last_seen_before_the_interval(case, nurse):
    recent = f.patient("MUC")
    services.record_save(user=nurse, record=f.metastasectomy(recent, surgery_date=datetime.date.today()))
    dead = f.patient("MUC")
    services.record_save(user=nurse, record=f.metastasectomy(dead))
    services.record_save(user=nurse, record=f.follow_up(dead, event="death", event_date=datetime.date(2016, 1, 1),
                                                       cause_of_death="sarcoma"))
    assert due(signed_in(nurse)) == [case.pk]  # last contact 2016-01-01


def test_follow_up_due_counts_a_later_operation_as_contact(case, nurse):
    services.record_save(user=nurse, record=f.metastasectomy(case, surgery_date=datetime.date.today()
                                                             - datetime.timedelta(days=40)))
    client = signed_in(nurse)
    assert due(client) == []
    assert due(client, months=1) == [case.pk]


def test_follow_up_due_never_lists_another_centres_patients(case, other_nurse):
    assert due(signed_in(other_nurse)) == []


def test_follow_up_due_offers_adding_a_follow_up_only_to_writers(case, nurse, pi):
    add = reverse("record_add", args=[case.pk, "follow-up"])
    assert add in signed_in(nurse).get(reverse("follow_up_due")).content.decode()
    assert add not in signed_in(pi).get(reverse("follow_up_due")).content.decode()
    assert access.can_write_centre(nurse, "MUC")


def test_a_malformed_interval_falls_back_to_the_setting(case, nurse, settings):
    settings.FOLLOW_UP_DUE_MONTHS = 6
    page = signed_in(nurse).get(reverse("follow_up_due") + "?months=abc")
    assert page.context["months"] == 6


def test_progress_counts_open_queries_with_their_median_and_oldest_age_per_centre(case, monitor, coordinator):
    from django.utils import timezone

    from registry.models import Query
    from registry.services import queries

    # The case's last news is from 2016: its soft check has raised "no contact" (20 days ago, say).
    Query.objects.filter(origin="soft_check").update(created_at=timezone.now() - datetime.timedelta(days=20))
    therapy = case.systemic_therapies.get()
    for field, days in (("cycles", 10), ("regimen", 4), ("intent", 1)):
        query = queries.query_raise(user=monitor, record=therapy, field=field, text="Please check.")
        Query.objects.filter(pk=query.pk).update(created_at=timezone.now() - datetime.timedelta(days=days))
    client = signed_in(coordinator)
    row = next(r for r in client.get(reverse("study_progress")).context["rows"] if r["centre"].code == "MUC")
    assert (row["queries_open"], row["queries_median_days"], row["queries_oldest_days"]) == (4, 7, 20)
    rows = list(csv.DictReader(io.StringIO(client.get(reverse("study_progress") + "?format=csv").content.decode())))
    muc = next(r for r in rows if r["centre"] == "MUC")
    assert (muc["open_queries"], muc["open_queries_median_age_days"], muc["open_queries_oldest_age_days"]) == \
        ("4", "7.0", "20")
