"""The Django admin: list filters and history for every model, and saves that obey the rules."""
import datetime

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from registry import services
from registry.models import FollowUp, Membership, Metastasectomy, Patient, PrimaryTumour, SystemicTherapy
from tests import factories as f

pytestmark = pytest.mark.django_db
D = datetime.date
MODELS = (Patient, PrimaryTumour, Metastasectomy, SystemicTherapy, FollowUp)


@pytest.fixture
def admin_client(client):
    client.force_login(f.user("root", is_superuser=True))
    return client


@pytest.fixture
def case():
    admin = f.user("writer", is_superuser=True)
    patient = f.patient("MUC")
    records = [f.primary_tumour(patient), f.metastasectomy(patient), f.systemic_therapy(patient), f.follow_up(patient)]
    for record in records:
        services.record_save(user=admin, record=record)
    return patient, records


def admin_url(model, action, *args):
    return reverse(f"admin:registry_{model._meta.model_name}_{action}", args=args)


@pytest.mark.parametrize("model", MODELS)
def test_changelist_with_filters_and_history_page_render_for_every_clinical_model(admin_client, case, model):
    obj = model.objects.first()
    assert admin_client.get(admin_url(model, "changelist")).status_code == 200
    filtered = admin_client.get(admin_url(model, "changelist"), {"patient__centre__code__exact": "MUC"}
                                if model is not Patient else {"centre__code__exact": "MUC"})
    assert filtered.status_code == 200
    history = admin_client.get(admin_url(model, "history", obj.pk))
    assert history.status_code == 200


def test_admin_refuses_a_follow_up_before_the_first_pm_and_saves_nothing(admin_client, case):
    patient, _records = case
    response = admin_client.post(admin_url(FollowUp, "add"), {
        "patient": patient.pk, "event_date": "2015-01-01", "event": "contact"})
    assert response.status_code == 200  # the form comes back with the error
    assert "before the first metastasectomy" in response.content.decode()
    assert FollowUp.objects.count() == 1


def test_admin_add_patient_issues_a_pseudonym_and_audits_the_admin(admin_client):
    f.centre("HD")
    response = admin_client.post(admin_url(Patient, "add"), {
        "centre": "HD", "sex": "male", "birth_year": 1970, "histology": "UPS",
        "lung_mets_diagnosis_date": "2019-01-01", "extrapulmonary_disease_at_pm": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    patient = Patient.objects.get()
    assert patient.patient_id.startswith("HD-")
    assert patient.history.get().history_user.username == "root"


def test_staff_nurse_sees_only_own_centre_in_the_admin(client, case):
    nurse = f.user(memberships=[("HD", "nurse")])
    nurse.is_staff = True
    nurse.save()
    nurse.user_permissions.add(Permission.objects.get(codename="view_patient"))
    client.force_login(nurse)
    response = client.get(admin_url(Patient, "changelist"))
    assert response.status_code == 200
    assert "MUC-" not in response.content.decode()


def test_the_admin_deletes_no_sign_in_log_and_no_api_token(client, db):
    from axes.models import AccessFailureLog, AccessLog
    from django.contrib import admin as django_admin
    from django.test import RequestFactory

    from registry.api.models import ApiToken

    superuser = f.user("root", is_superuser=True)
    request = RequestFactory().get("/admin/")
    request.user = superuser
    for model in (AccessLog, AccessFailureLog, ApiToken):
        assert not django_admin.site._registry[model].has_delete_permission(request), model


def test_membership_and_role_changes_are_versioned_with_who_made_them(client, db):
    from registry.models import Membership

    root = f.user("root", is_superuser=True)
    nurse = f.user("anna", memberships=[("MUC", "nurse")])
    membership = Membership.objects.get(user=nurse)
    client.force_login(root)
    response = client.post(reverse("admin:registry_membership_change", args=[membership.pk]),
                           {"user": nurse.pk, "centre": "MUC", "role": "pi"})
    assert response.status_code == 302
    history = list(Membership.history.filter(id=membership.pk).order_by("history_date"))
    assert [h.role for h in history] == ["nurse", "pi"] and history[-1].history_user == root


def test_the_admin_offers_no_add_change_or_delete_on_any_audit_table_nor_deletes_a_user(client, db):
    from django.contrib import admin as django_admin
    from django.contrib.auth import get_user_model
    from django.test import RequestFactory

    from registry.audit_tables import AUDITED

    request = RequestFactory().get("/admin/")
    request.user = f.user("root", is_superuser=True)
    registered = [a.model._meta.concrete_model for a in AUDITED
                  if django_admin.site.is_registered(a.model._meta.concrete_model)]
    assert {m.__name__ for m in registered} >= {"AccessLog", "AccessFailureLog", "ErasureTombstone"}
    for model in registered:
        model_admin = django_admin.site.get_model_admin(model)
        assert not model_admin.has_add_permission(request), model
        assert not model_admin.has_change_permission(request), model
        assert not model_admin.has_delete_permission(request), model
    # The audit trail names its users: someone who leaves is deactivated, not deleted.
    assert not django_admin.site.get_model_admin(get_user_model()).has_delete_permission(request)


def test_an_audit_log_page_in_the_admin_shows_the_row_without_a_save_button(client, db):
    from axes.models import AccessFailureLog
    from django.utils import timezone

    failure = AccessFailureLog.objects.create(username="nurse", attempt_time=timezone.now(), locked_out=False)
    client.force_login(f.user("root", is_superuser=True))
    page = client.get(reverse("admin:axes_accessfailurelog_change", args=[failure.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.post(reverse("admin:axes_accessfailurelog_change", args=[failure.pk]), {}).status_code == 403


def follow_up_form(record, **changes):
    return {"patient": record.patient_id, "event_date": record.event_date.isoformat(), "event": record.event,
            "recurrence_site": "", "cause_of_death": "", **changes}


def test_the_admin_refuses_a_change_of_a_locked_record_and_names_the_lock(admin_client, case):
    root = f.user("lead", is_superuser=True)
    event = FollowUp.objects.get()
    for status in ("complete", "verified", "locked"):
        event = services.record_status_set(user=root, record=event, status=status)
    response = admin_client.post(admin_url(FollowUp, "change", event.pk),
                                 follow_up_form(event, event_date="2016-02-01", reason="typo"))
    assert response.status_code == 200
    assert "is locked" in response.content.decode() and "Only a coordinator can unlock it" in response.content.decode()
    assert FollowUp.objects.get().event_date == D(2016, 1, 1)
    assert admin_client.post(admin_url(FollowUp, "delete", event.pk), {"post": "yes"}).status_code == 403
    assert FollowUp.objects.exists()


def test_the_admin_asks_a_reason_for_changing_a_complete_record_and_keeps_it(admin_client, case):
    event = services.record_status_set(user=f.user("lead", is_superuser=True), record=FollowUp.objects.get(),
                                       status="complete")
    url = admin_url(FollowUp, "change", event.pk)
    response = admin_client.post(url, follow_up_form(event, event_date="2016-02-01"))
    assert response.status_code == 200 and "give a reason for the change" in response.content.decode()
    assert FollowUp.objects.get().event_date == D(2016, 1, 1)
    response = admin_client.post(url, follow_up_form(event, event_date="2016-02-01", reason="date from the letter"))
    assert response.status_code == 302
    latest = FollowUp.objects.get().history.first()
    assert (latest.event_date, latest.history_change_reason) == (D(2016, 2, 1), "admin: date from the letter")


def test_an_administrator_gives_a_user_the_monitor_role(admin_client, db):
    user = f.user("monitor.hd")
    f.centre("HD")
    response = admin_client.post(reverse("admin:registry_membership_add"),
                                 {"user": user.pk, "centre": "HD", "role": "monitor"})
    assert response.status_code == 302
    membership = Membership.objects.get(user=user)
    assert membership.role == "monitor" and membership.history.get().history_user.username == "root"


def test_the_admin_delete_action_refuses_a_selection_with_a_locked_record(admin_client, case):
    lead = f.user("lead", is_superuser=True)
    event = FollowUp.objects.get()
    for status in ("complete", "verified", "locked"):
        event = services.record_status_set(user=lead, record=event, status=status)
    response = admin_client.post(admin_url(Patient, "changelist"), {
        "action": "delete_selected", "_selected_action": [event.patient_id], "post": "yes"})
    assert response.status_code == 403  # Django's delete action: an object the user may not delete
    assert Patient.objects.exists() and FollowUp.objects.exists()
