"""A study nurse enters a case through the web pages: every record type is created, edited and
deleted through the services; rule violations show at the field and save nothing; a stale edit
overwrites nothing."""
import datetime
import re

import pytest
from django.urls import reverse

from registry import services
from registry.models import FollowUp, Metastasectomy, Patient, PrimaryTumour, SystemicTherapy
from tests import factories as f

pytestmark = pytest.mark.django_db
D = datetime.date

VALID = {
    "primary-tumour": (PrimaryTumour, {
        "diagnosis_date": "2012-05-01", "site": "extremity", "size_mm": "80", "depth": "deep", "grade": "G3",
        "surgery_date": "2012-06-01", "margin": "R0", "radiotherapy": "adjuvant",
        "radiotherapy_end_date": "2012-08-01", "local_recurrence_before_pm": "false"}),
    "metastasectomies": (Metastasectomy, {
        "surgery_date": "2015-04-01", "side": "right", "approach": "vats", "resection_type": "wedge",
        "lesions_resected": "2", "max_lesion_diameter_mm": "15.5", "diameter_source": "pathology",
        "margin": "R0", "lymph_node_sampling": "true", "clavien_dindo": "none", "hospital_stay_days": "4"}),
    "systemic-therapies": (SystemicTherapy, {
        "start_date": "2015-05-01", "end_date": "2015-08-01", "regimen": "other", "regimen_other": "IFO-high dose",
        "intent": "pm_adjuvant", "cycles": "6", "best_response": "SD"}),
    "follow-up": (FollowUp, {"event_date": "2016-01-01", "event": "recurrence", "recurrence_site": "lung"}),
}
# One changed value per record type, as (column, posted, stored).
EDITS = {
    "primary-tumour": ("grade", "G2", "G2"),
    "metastasectomies": ("lesions_resected", "3", 3),
    "systemic-therapies": ("cycles", "4", 4),
    "follow-up": ("recurrence_site", "distant", "distant"),
}


@pytest.fixture
def patient(nurse):
    return f.patient("MUC", lung_mets_diagnosis_date=D(2015, 3, 1))


def form_values(response):
    """The values a browser would post back from the rendered form (inputs and selected options)."""
    form = response.context["form"]
    data = {}
    for field in form:
        value = field.value()
        if value is None:
            value = ""
        data[field.html_name] = field.field.widget.format_value(value) if not field.field.widget.is_hidden else value
        data[field.html_name] = "" if data[field.html_name] is None else data[field.html_name]
    return data


def test_nurse_creates_a_patient_with_an_issued_pseudonym(client, nurse):
    client.force_login(nurse)
    response = client.post(reverse("patient_new", args=["MUC"]), {
        "sex": "male", "birth_year": "1970", "histology": "SyS", "lung_mets_diagnosis_date": "2018-02-01",
        "extrapulmonary_disease_at_pm": "False", "ecog": "1"})
    patient = Patient.objects.get()
    assert re.fullmatch(r"MUC-[0-9A-Z]{6}", patient.pk)
    assert response.status_code == 302 and response["Location"] == reverse("patient_detail", args=[patient.pk])
    assert patient.extrapulmonary_disease_at_pm is False and patient.histology == "SyS"
    assert patient.history.get().history_user == nurse


def test_new_patient_requires_the_extrapulmonary_answer_and_saves_nothing_without_it(client, nurse):
    client.force_login(nurse)
    response = client.post(reverse("patient_new", args=["MUC"]), {
        "sex": "male", "birth_year": "1970", "histology": "SyS", "lung_mets_diagnosis_date": "2018-02-01"})
    assert response.status_code == 200
    assert "extrapulmonary_disease_at_pm" in response.context["form"].errors
    assert not Patient.objects.exists()


@pytest.mark.parametrize("kind", VALID)
def test_nurse_adds_edits_and_deletes_each_record_type(client, nurse, patient, kind):
    model, data = VALID[kind]
    if kind == "follow-up":  # follow-up starts at the first metastasectomy
        services.record_save(user=nurse, record=f.metastasectomy(patient))
    client.force_login(nurse)

    added = client.post(reverse("record_add", args=[patient.pk, kind]), data)
    assert added.status_code == 302, added.context["form"].errors
    record = model.objects.get(patient=patient) if kind != "follow-up" else patient.follow_ups.get()
    assert record.history.get().history_user == nurse

    edit_url = reverse("record_edit", args=[patient.pk, kind, record.pk])
    values = form_values(client.get(edit_url))
    column, posted, stored = EDITS[kind]
    values[column] = posted
    edited = client.post(edit_url, values)
    assert edited.status_code == 302, edited.context["form"].errors
    record.refresh_from_db()
    assert getattr(record, column) == stored and record.version == 2

    delete_url = reverse("record_delete", args=[patient.pk, kind, record.pk])
    confirm = client.get(delete_url)
    assert confirm.status_code == 200 and b'method="post"' in confirm.content
    assert model.objects.filter(pk=record.pk).exists()  # the GET only asks
    assert client.post(delete_url, {"version": "2", "reason": "duplicate"}).status_code == 302
    assert not model.objects.filter(pk=record.pk).exists()
    assert model.history.filter(id=record.pk, history_type="-").get().history_user == nurse


def test_nurse_edits_and_deletes_the_patient(client, nurse, case):
    client.force_login(nurse)
    url = reverse("patient_edit", args=[case.pk])
    values = form_values(client.get(url))
    values["ecog"] = "2"
    assert client.post(url, values).status_code == 302
    case.refresh_from_db()
    assert case.ecog == 2
    assert client.post(reverse("patient_delete", args=[case.pk]), {"version": str(case.version),
                                                                 "reason": "wrong patient"}).status_code == 302
    assert not Patient.objects.exists() and not Metastasectomy.objects.exists()


def test_follow_up_before_the_operation_shows_at_the_field_and_saves_nothing(client, nurse, case):
    client.force_login(nurse)
    response = client.post(reverse("record_add", args=[case.pk, "follow-up"]),
                           {"event_date": "2015-03-01", "event": "contact"})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "before the first metastasectomy (2015-04-01)" in " ".join(errors["event_date"])
    html = response.content.decode()
    field_html = html[html.index('id="id_event_date"'):html.index('id="id_event"')]
    assert "before the first metastasectomy" in field_html  # next to the field, not only at the top
    assert FollowUp.objects.filter(patient=case).count() == 1


@pytest.mark.parametrize("kind,data,column", [
    ("primary-tumour", {"diagnosis_date": "2012-05-01", "site": "trunk", "radiotherapy": "adjuvant"},
     "radiotherapy_end_date"),
    ("systemic-therapies", {"start_date": "2015-05-01", "end_date": "2015-04-01", "regimen": "doxorubicin",
                            "intent": "palliative"}, "end_date"),
    ("metastasectomies", {**VALID["metastasectomies"][1], "max_lesion_diameter_mm": "250"}, "max_lesion_diameter_mm"),
    ("follow-up", {"event_date": "2016-02-01", "event": "recurrence"}, "recurrence_site"),
])
def test_single_record_rules_show_at_the_field_and_save_nothing(client, nurse, patient, kind, data, column):
    services.record_save(user=nurse, record=f.metastasectomy(patient, surgery_date=D(2015, 3, 15)))
    client.force_login(nurse)
    before = [m.objects.count() for m, _data in VALID.values()]
    response = client.post(reverse("record_add", args=[patient.pk, kind]), data)
    assert response.status_code == 200
    assert column in response.context["form"].errors
    assert [m.objects.count() for m, _data in VALID.values()] == before


def test_a_second_death_is_refused_at_the_event(client, nurse, case):
    services.record_save(user=nurse, record=f.follow_up(case, event="death", event_date=D(2017, 1, 1)))
    client.force_login(nurse)
    response = client.post(reverse("record_add", args=[case.pk, "follow-up"]),
                           {"event_date": "2017-01-01", "event": "death"})
    assert "already has a death recorded" in " ".join(response.context["form"].errors["event"])


def test_adding_a_second_primary_tumour_opens_the_existing_one(client, nurse, case):
    client.force_login(nurse)
    response = client.get(reverse("record_add", args=[case.pk, "primary-tumour"]))
    assert response.status_code == 302
    assert response["Location"] == reverse("record_edit", args=[case.pk, "primary-tumour", case.primary_tumour.pk])


def test_stale_edit_is_refused_shows_the_changes_and_overwrites_nothing(client, nurse, case):
    client.force_login(nurse)
    pm = case.metastasectomies.get()
    url = reverse("record_edit", args=[case.pk, "metastasectomies", pm.pk])
    mine = form_values(client.get(url))
    assert mine["version"] == 1

    # A colleague saves the same operation meanwhile.
    theirs = Metastasectomy.objects.get(pk=pm.pk)
    theirs.margin = "R1"
    services.record_save(user=f.user("colleague", memberships=[("MUC", "nurse")]), record=theirs, expected_version=1)

    mine["hospital_stay_days"] = "9"
    response = client.post(url, mine)
    assert response.status_code == 200
    html = response.content.decode()
    assert "saved this record at" in html and response.context["stale"]["user"] == "colleague"
    assert ("Margin", "R1", "R0", "theirs") in [change[:4] for change in response.context["changes"]]
    pm.refresh_from_db()
    assert pm.margin == "R1" and pm.hospital_stay_days is None and pm.version == 2
    # The form combines: her entry kept, their change taken, the current version to save against.
    form = response.context["form"]
    assert (form["margin"].value(), form["hospital_stay_days"].value(), form["version"].value()) == ("R1", "9", "2")

    assert client.post(url, form_values(response)).status_code == 302  # saved without retyping anything
    pm.refresh_from_db()
    assert (pm.margin, pm.hospital_stay_days, pm.version) == ("R1", 9, 3)


def test_a_field_both_changed_keeps_hers_and_shows_theirs(client, nurse, case):
    client.force_login(nurse)
    pm = case.metastasectomies.get()
    url = reverse("record_edit", args=[case.pk, "metastasectomies", pm.pk])
    mine = form_values(client.get(url))
    theirs = Metastasectomy.objects.get(pk=pm.pk)
    theirs.hospital_stay_days = 5
    services.record_save(user=f.user("colleague", memberships=[("MUC", "nurse")]), record=theirs, expected_version=1)

    mine["hospital_stay_days"] = "9"
    response = client.post(url, mine)

    assert ("Hospital stay", "5", "9", "yours") in [(n.split(" (")[0], t, y, k) for n, t, y, k, *_entries in
                                                     response.context["changes"]]
    assert response.context["form"]["hospital_stay_days"].value() == "9"


def test_deleting_the_only_operation_of_a_followed_up_patient_is_refused(client, nurse, case):
    client.force_login(nurse)
    pm = case.metastasectomies.get()
    response = client.post(reverse("record_delete", args=[case.pk, "metastasectomies", pm.pk]),
                           {"version": "1", "reason": "duplicate"})
    assert response.status_code == 400
    assert "Nothing was deleted" in response.content.decode()
    assert Metastasectomy.objects.filter(pk=pm.pk).exists()


def test_patient_page_shows_the_whole_case_with_the_index_operation_marked(client, nurse, case):
    services.record_save(user=nurse, record=f.metastasectomy(case, surgery_date=D(2016, 6, 1), side="left"))
    client.force_login(nurse)
    response = client.get(reverse("patient_detail", args=[case.pk]))
    html = response.content.decode()
    operations = response.context["operations"]
    assert [pm.surgery_date for pm, _cells, _index, _status in operations] == [D(2015, 4, 1), D(2016, 6, 1)]
    assert [index for _pm, _cells, index, _status in operations] == [True, False]
    for text in ("index operation", "Extremity".lower(), "doxorubicin", "Contact (seen alive)", "Edit patient",
                 "wedge resection", "9.0 months after the index operation"):
        assert text.lower() in html.lower(), text


def test_forms_use_typed_date_fields_labels_units_and_help_text(client, nurse, case):
    client.force_login(nurse)
    html = client.get(reverse("record_add", args=[case.pk, "metastasectomies"])).content.decode()
    assert 'type="text" name="surgery_date"' in html and 'placeholder="YYYY-MM-DD"' in html
    assert 'type="date"' not in html  # the browser's picker follows the browser's locale, not ours
    assert '<label for="id_max_lesion_diameter_mm">' in html and '<span class="unit">mm</span>' in html
    assert "Diameter of the largest resected metastasis" in html
    assert '<option value="vats">VATS</option>' in html
    assert html.count("<label") >= len(VALID["metastasectomies"][1])
    assert '<button type="submit"' in html


def test_every_problem_of_a_form_shows_at_once(client, nurse, case):
    client.force_login(nurse)
    response = client.post(reverse("record_add", args=[case.pk, "follow-up"]),
                           {"event_date": "2015-01-01", "event": "recurrence"})
    errors = response.context["form"].errors
    assert "recurrence_site" in errors and "before the first metastasectomy" in " ".join(errors["event_date"])
    assert len(errors["event_date"]) == 1


@pytest.mark.parametrize("kind, changes, column, message", [
    ("primary-tumour", {"surgery_date": "2012-04-01"}, "surgery_date", "The surgery date is before the diagnosis date"),
    ("follow-up", {"event_date": (datetime.date.today() + datetime.timedelta(days=3)).isoformat()}, "event_date",
     "is in the future"),
])
def test_a_nurse_sees_one_message_for_one_error(client, nurse, patient, kind, changes, column, message):
    """A rule lives once (the model's, or a cross-record rule's): one error is one message."""
    client.force_login(nurse)
    client.post(reverse("record_add", args=[patient.pk, "metastasectomies"]), VALID["metastasectomies"][1])
    model, data = VALID[kind]
    response = client.post(reverse("record_add", args=[patient.pk, kind]), {**data, **changes})
    errors = response.context["form"].errors
    assert list(errors) == [column], errors
    assert len(errors[column]) == 1 and message in errors[column][0], errors
    page = response.content.decode()  # the summary at the top links to the one message at the field
    assert page.count('class="field-error"') == 1 and page.count("<li><a href=\"#id_") == 1
    assert not model.objects.filter(patient=patient).exists()


@pytest.mark.django_db(transaction=True)  # real transactions, as in production: no test savepoints counted
def test_one_record_edit_through_the_web_form_takes_at_most_15_statements_and_its_seal(client, nurse, case):
    """Sign-in and session (5), the patient and the record (2), the patient's lock and its case (5),
    the update, its audit row and the data version (3); after the commit, the seal of the audit row
    (registry/services/seals.py: 3 statements, and on PostgreSQL 2 locks)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(nurse)
    pm = Metastasectomy.objects.get(patient=case)
    url = reverse("record_edit", args=[case.pk, "metastasectomies", pm.pk])
    data = {**form_values(client.get(url)), "lesions_resected": "3"}
    with CaptureQueriesContext(connection) as queries:
        response = client.post(url, data)
    assert response.status_code == 302 and Metastasectomy.objects.get().lesions_resected == 3
    statements = [q["sql"] for q in queries if q["sql"] not in ("BEGIN", "COMMIT")]  # SQLite logs these
    seal = 5 if connection.vendor == "postgresql" else 3
    assert len(statements) <= 15 + seal, "\n".join(sql[:120] for sql in statements)


def test_a_create_form_sent_twice_stores_one_record(client, nurse, patient):
    client.force_login(nurse)
    url = reverse("record_add", args=[patient.pk, "metastasectomies"])
    data = {**form_values(client.get(url)), **VALID["metastasectomies"][1]}
    assert data["submission"]  # the form's own token
    first, second = client.post(url, data), client.post(url, data)
    assert first.status_code == second.status_code == 302
    assert Metastasectomy.objects.filter(patient=patient).count() == 1
    data["submission"] = form_values(client.get(url))["submission"]  # a new form: a new record
    client.post(url, {**data, "surgery_date": "2015-06-01"})
    assert Metastasectomy.objects.filter(patient=patient).count() == 2


def test_a_new_patient_form_sent_twice_creates_one_patient(client, nurse):
    client.force_login(nurse)
    url = reverse("patient_new", args=["MUC"])
    data = {**form_values(client.get(url)), "sex": "female", "birth_year": "1960", "histology": "LMS",
            "lung_mets_diagnosis_date": "2015-03-01", "extrapulmonary_disease_at_pm": "False", "ecog": "0"}
    assert client.post(url, data).status_code == client.post(url, data).status_code == 302
    assert Patient.objects.count() == 1


@pytest.mark.parametrize("language,typed,stored,echo", [
    ("en", "2017-03-02", datetime.date(2017, 3, 2), "2 March 2017"),
    ("de", "2017-03-02", datetime.date(2017, 3, 2), "2. März 2017"),
    ("de", "02.03.2017", datetime.date(2017, 3, 2), "2. März 2017"),
])
def test_a_date_is_typed_as_iso_or_in_german_as_dd_mm_yyyy_and_echoed_in_words(
        client, nurse, case, language, typed, stored, echo):
    client.force_login(nurse)
    url = reverse("record_add", args=[case.pk, "follow-up"])
    response = client.post(url, {"event_date": typed, "event": "contact"}, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 302, response.context["form"].errors
    saved = FollowUp.objects.get(patient=case, event_date=stored)
    page = client.get(reverse("record_edit", args=[case.pk, "follow-up", saved.pk]), HTTP_ACCEPT_LANGUAGE=language)
    html = page.content.decode()
    assert f'value="{stored.isoformat()}"' in html and echo in html


@pytest.mark.parametrize("language,typed", [("en", "02.03.2015"), ("en", "03/02/2015"), ("de", "03/02/2015"),
                                            ("de", "31.02.2015")])
def test_an_ambiguous_or_impossible_date_is_refused_with_the_formats_named(client, nurse, case, language, typed):
    client.force_login(nurse)
    response = client.post(reverse("record_add", args=[case.pk, "follow-up"]),
                           {"event_date": typed, "event": "contact"}, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    message = " ".join(response.context["form"].errors["event_date"])
    assert ("JJJJ-MM-TT" in message or "TT.MM.JJJJ" in message) if language == "de" else "YYYY-MM-DD" in message
