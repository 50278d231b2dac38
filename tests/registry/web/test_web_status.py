"""The record status on the web pages: shown per record, moved by buttons the user's role may use,
counted per centre, obeyed by the edit forms (a lock refuses, a complete record asks a reason)."""
import pytest
from django.test import Client
from django.urls import reverse

from registry import services
from registry.models import Metastasectomy, Patient, SystemicTherapy
from tests.registry.web.test_web_entry import form_values

pytestmark = pytest.mark.django_db


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


def move(user, record, *statuses, reason=None):
    for status in statuses:
        record = services.record_status_set(user=user, record=record, status=status, reason=reason)
    return record


def post_status(client, case, record, status, **extra):
    kind = "patient" if isinstance(record, Patient) else {Metastasectomy: "metastasectomies",
                                                            SystemicTherapy: "systemic-therapies"}[type(record)]
    return client.post(reverse("record_status", args=[case.pk]),
                       {"kind": kind, "pk": record.pk, "status": status, **extra})


def test_the_patient_page_shows_each_records_status_with_a_label(case, nurse, coordinator):
    move(coordinator, case.metastasectomies.get(), "complete", "verified", "locked")
    page = signed_in(nurse).get(reverse("patient_detail", args=[case.pk])).content.decode()
    assert page.count('class="status status-in_progress"') == 4  # patient, primary, therapy, follow-up
    assert page.count('class="status status-locked"') == 1
    assert '<span class="visually-hidden">Status: </span>locked' in page
    assert 'aria-hidden="true">&#x1F512;' in page


def test_a_nurse_completes_a_record_with_its_button(case, nurse):
    client = signed_in(nurse)
    page = client.get(reverse("patient_detail", args=[case.pk])).content.decode()
    assert "Mark complete" in page and "Verify" not in page
    therapy = case.systemic_therapies.get()
    response = post_status(client, case, therapy, "complete")
    assert response.status_code == 302 and response["Location"].endswith("#systemic-therapies")
    assert SystemicTherapy.objects.get(pk=therapy.pk).status == "complete"
    history = client.get(reverse("patient_history", args=[case.pk])).content.decode()
    assert "Status" in history and "complete" in history


def test_a_monitor_verifies_but_may_not_edit(case, nurse, monitor):
    therapy = move(nurse, case.systemic_therapies.get(), "complete")
    client = signed_in(monitor)
    page = client.get(reverse("patient_detail", args=[case.pk])).content.decode()
    assert "Verify" in page and "Edit patient" not in page
    assert post_status(client, case, therapy, "verified").status_code == 302
    assert SystemicTherapy.objects.get(pk=therapy.pk).status == "verified"
    assert client.get(reverse("record_edit", args=[case.pk, "systemic-therapies", therapy.pk])).status_code == 403


def test_a_refused_move_changes_nothing(case, nurse, pi):
    assert post_status(signed_in(pi), case, case, "complete").status_code == 403
    response = post_status(signed_in(nurse), case, case, "locked")
    assert response.status_code == 302
    assert Patient.objects.get(pk=case.pk).status == "in_progress"


def test_unlocking_on_the_page_needs_a_reason(case, coordinator):
    move(coordinator, case, "complete", "verified", "locked")
    client = signed_in(coordinator)
    page = client.get(reverse("patient_detail", args=[case.pk])).content.decode()
    assert "Unlock" in page and 'name="reason" required' in page
    response = post_status(client, case, case, "verified", reason="")
    assert Patient.objects.get(pk=case.pk).status == "locked"
    assert "Give a reason for unlocking" in client.get(response["Location"]).content.decode()
    post_status(client, case, case, "verified", reason="wrong birth year")
    assert Patient.objects.get(pk=case.pk).status == "verified"
    history = client.get(reverse("patient_history", args=[case.pk])).content.decode()
    assert "Reason: wrong birth year" in history


def test_the_web_form_refuses_a_change_of_a_locked_record(case, nurse, coordinator):
    pm = move(coordinator, case.metastasectomies.get(), "complete", "verified", "locked")
    client = signed_in(nurse)
    edit = reverse("record_edit", args=[case.pk, "metastasectomies", pm.pk])
    response = client.post(edit, {**form_values(client.get(edit)), "margin": "R1", "reason": "x"})
    assert response.status_code == 200
    assert "is locked" in response.content.decode() and "Only a coordinator can unlock it" in response.content.decode()
    assert Metastasectomy.objects.get(pk=pm.pk).margin == "R0"


def test_the_web_form_asks_a_reason_only_for_a_complete_or_verified_record(case, nurse, monitor):
    client = signed_in(nurse)
    pm = case.metastasectomies.get()
    edit = reverse("record_edit", args=[case.pk, "metastasectomies", pm.pk])
    assert "reason" not in client.get(edit).context["form"].fields
    move(monitor, move(nurse, pm, "complete"), "verified")
    values = {**form_values(client.get(edit)), "margin": "R1"}
    response = client.post(edit, values)
    assert response.status_code == 200 and "give a reason for the change" in response.content.decode()
    assert client.post(edit, {**values, "reason": "pathology addendum"}).status_code == 302
    stored = Metastasectomy.objects.get(pk=pm.pk)
    assert (stored.margin, stored.status) == ("R1", "complete")
    assert "Reason: pathology addendum" in client.get(reverse("patient_history", args=[case.pk])).content.decode()


def test_the_patient_list_counts_records_by_status_per_centre(case, nurse):
    move(nurse, case.systemic_therapies.get(), "complete")
    response = signed_in(nurse).get(reverse("patient_list") + "?centre=MUC")
    counts = dict((status, n) for status, _label, n in response.context["status_counts"]["MUC"])
    assert counts == {"in_progress": 4, "complete": 1, "verified": 0, "locked": 0}
    assert "Records:" in response.content.decode()


def test_the_patient_page_offers_no_edit_of_a_locked_record_nor_new_records_of_a_locked_patient(
        case, nurse, coordinator):
    pm = move(coordinator, case.metastasectomies.get(), "complete", "verified", "locked")
    client = signed_in(nurse)
    page = client.get(reverse("patient_detail", args=[case.pk])).content.decode()
    assert f"/metastasectomies/{pm.pk}/edit/" not in page
    assert f"/systemic-therapies/{case.systemic_therapies.get().pk}/edit/" in page
    assert "/metastasectomies/add/" in page
    move(coordinator, case, "complete", "verified", "locked")
    page = client.get(reverse("patient_detail", args=[case.pk])).content.decode()
    assert "/edit/" not in page and "/add/" not in page and "/delete/" not in page
