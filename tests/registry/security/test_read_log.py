"""Every read of patient-level data is recorded, one row per request: who, from where, which page
or endpoint, the centres of what was sent (or the one patient) and how many rows."""
import pytest
from django.test import Client

from registry.models import SecurityEvent
from tests import factories as f
from tests.registry.api.test_api_helpers import client_for, fresh_throttles, redcap_token_for  # noqa: F401

pytestmark = pytest.mark.django_db


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


def the_read():
    """The one read recorded (fails if there are none or several)."""
    return SecurityEvent.objects.get(event=SecurityEvent.READ)


def test_the_patient_page_records_who_read_which_patient(case, nurse):
    assert signed_in(nurse).get(f"/patients/{case.pk}/").status_code == 200
    read = the_read()
    assert (read.user, read.username, read.what, read.patient_id, read.centres, read.rows) == \
        (nurse, "nurse", "patient_detail", case.pk, "MUC", 1)
    assert read.ip_address == "127.0.0.1"


def test_the_history_page_and_an_edit_form_are_reads_of_their_patient(case, nurse):
    client = signed_in(nurse)
    client.get(f"/patients/{case.pk}/history/")
    client.get(f"/patients/{case.pk}/systemic-therapies/{case.systemic_therapies.get().pk}/edit/")
    reads = SecurityEvent.objects.filter(event=SecurityEvent.READ).order_by("pk")
    assert [(read.what, read.patient_id) for read in reads] == [("patient_history", case.pk),
                                                               ("record_edit", case.pk)]


def test_the_patient_list_records_the_page_of_patients_it_showed(case, nurse):
    f.patient("MUC")
    signed_in(nurse).get("/patients/", {"centre": "MUC"})
    read = the_read()
    assert (read.what, read.patient_id, read.centres, read.rows, read.detail) == \
        ("patient_list", "", "MUC", 2, "centre=MUC")


def test_an_api_list_records_the_centres_and_the_number_of_rows_sent(case, coordinator):
    f.patient("HD")
    response = client_for(coordinator).get("/api/v1/patients/", {"page_size": 10})
    assert len(response.json()["results"]) == 2
    read = the_read()
    assert (read.username, read.what, read.centres, read.rows, read.patient_id, read.detail) == \
        ("coordinator", "api:patients-list", "HD MUC", 2, "", "page_size=10")


def test_an_api_record_read_names_its_patient(case, nurse):
    operation = case.metastasectomies.get()
    assert client_for(nurse).get(f"/api/v1/metastasectomies/{operation.pk}/").status_code == 200
    read = the_read()
    assert (read.what, read.patient_id, read.rows) == ("api:metastasectomies-detail", case.pk, 1)


def test_a_redcap_export_records_its_rows(case, nurse):
    f.patient("MUC")
    response = Client().post("/redcap/api/", {"token": redcap_token_for(nurse), "content": "record",
                                              "format": "json"})
    rows = response.json()
    read = the_read()
    assert (read.what, read.centres, read.rows) == ("redcap_api", "MUC", len(rows))
    assert read.rows > 2  # the case's base row and one per repeating instrument


def test_the_analysis_frame_records_its_patients(case, coordinator):
    f.patient("HD")
    frame = client_for(coordinator).get("/api/v1/analysis/frame", {"format": "csv"})
    assert frame.status_code == 200
    read = the_read()
    assert (read.what, read.centres, read.rows) == ("api:analysis-frame", "HD MUC", 2)


def test_a_dashboard_download_records_the_centres_and_patients_it_covers(case, pi):
    f.patient("HD")
    client = signed_in(pi)
    assert client.get("/analysis/", {"centre": "MUC"}).status_code == 200  # the page: aggregates, not recorded
    assert client.get("/analysis/data/km.csv", {"centre": "MUC"}).status_code == 200
    read = the_read()
    assert (read.what, read.centres, read.rows, read.patient_id) == ("analysis:table", "MUC", 1, "")


def test_the_admin_records_a_read_of_a_record(case):
    admin = signed_in(f.user("root", is_superuser=True))
    therapy = case.systemic_therapies.get()
    assert admin.get(f"/admin/registry/systemictherapy/{therapy.pk}/change/").status_code == 200
    read = the_read()
    assert (read.username, read.patient_id) == ("root", case.pk)
