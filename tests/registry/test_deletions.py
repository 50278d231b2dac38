"""Deleting keeps a tombstone: a reason is required on every path, the history of a deleted patient or
record stays readable to those who could read it, the deleted-records page lists the deletions, and a
coordinator restores one (the rules checked again, the restore audited)."""
import datetime

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.urls import reverse

from registry import selectors, services
from registry.models import (
    DeletedRecord,
    FollowUp,
    Metastasectomy,
    Patient,
    PrimaryTumour,
    Restoration,
    SecurityEvent,
    SystemicTherapy,
)
from registry.services import RecordLocked
from tests import factories as f

pytestmark = pytest.mark.django_db
D = datetime.date
CASE_MODELS = (Patient, PrimaryTumour, Metastasectomy, SystemicTherapy, FollowUp)


def counts():
    return [model.objects.count() for model in CASE_MODELS]


def later_pm(nurse, case, day=D(2016, 6, 1)):
    """A second metastasectomy: deleting it leaves the case valid."""
    return services.record_save(user=nurse, record=f.metastasectomy(case, surgery_date=day, side="left"))


def move(user, record, *statuses):
    for status in statuses:
        record = services.record_status_set(user=user, record=record, status=status, reason="review")
    return record


# --- a reason, on every path -----------------------------------------------------------------

@pytest.mark.parametrize("reason", [None, "", "   "])
def test_a_deletion_without_a_reason_is_refused_and_deletes_nothing(nurse, case, reason):
    for record in (case.follow_ups.get(), Patient.objects.get(pk=case.pk)):
        with pytest.raises(ValidationError) as refused:
            services.record_delete(user=nurse, record=record, reason=reason)
        assert "Give a reason for deleting" in refused.value.message_dict["reason"][0]
    assert counts() == [1, 1, 1, 1, 1] and not DeletedRecord.objects.exists()


def test_a_reason_longer_than_a_history_row_keeps_is_refused(nurse, case):
    with pytest.raises(ValidationError, match="Keep the reason to 80 characters"):
        services.record_delete(user=nurse, record=case.follow_ups.get(), reason="x" * 81)
    assert FollowUp.objects.exists()


def test_the_web_confirmation_asks_for_a_reason_and_without_one_deletes_nothing(client, nurse, case):
    client.force_login(nurse)
    pm = later_pm(nurse, case)
    url = reverse("record_delete", args=[case.pk, "metastasectomies", pm.pk])
    page = client.get(url).content.decode()
    assert 'name="reason"' in page and "required" in page.split('name="reason"')[1].split(">")[0]
    response = client.post(url, {"version": str(pm.version), "reason": " "})
    assert response.status_code == 400
    assert "Nothing was deleted." in response.content.decode() and "Give a reason for deleting" in response.content.decode()
    assert Metastasectomy.objects.filter(pk=pm.pk).exists()
    response = client.post(reverse("patient_delete", args=[case.pk]), {"version": "1"})
    assert response.status_code == 400 and counts() == [1, 1, 2, 1, 1]
    assert client.post(url, {"version": str(pm.version), "reason": "entered twice"}).status_code == 302
    assert DeletedRecord.objects.get().reason == "entered twice"


def test_the_admin_asks_for_a_reason_and_without_one_deletes_nothing(client, case):
    client.force_login(f.user("root", is_superuser=True))
    event = case.follow_ups.get()
    url = reverse("admin:registry_followup_delete", args=[event.pk])
    assert 'name="reason"' in client.get(url).content.decode()
    response = client.post(url, {"post": "yes"}, follow=True)
    assert "Give a reason for the deletion: nothing was deleted." in response.content.decode()
    assert FollowUp.objects.filter(pk=event.pk).exists()
    assert client.post(url, {"post": "yes", "reason": "entered twice"}).status_code == 302
    assert not FollowUp.objects.exists()
    latest = FollowUp.history.filter(id=event.pk).first()
    assert (latest.history_type, latest.history_change_reason) == ("-", "admin: entered twice")
    assert DeletedRecord.objects.get().source == "admin"


def test_the_admin_delete_action_asks_for_a_reason_too(client, case):
    client.force_login(f.user("root", is_superuser=True))
    changelist = reverse("admin:registry_patient_changelist")
    selection = {"action": "delete_selected", "_selected_action": [case.pk]}
    assert 'name="reason"' in client.post(changelist, selection).content.decode()  # the confirmation
    response = client.post(changelist, {**selection, "post": "yes"}, follow=True)
    assert "Give a reason for the deletion: nothing was deleted." in response.content.decode()
    assert counts() == [1, 1, 1, 1, 1]
    assert client.post(changelist, {**selection, "post": "yes", "reason": "test patient"}).status_code == 302
    assert counts() == [0, 0, 0, 0, 0]
    assert DeletedRecord.objects.get().reason == "test patient"


def test_the_admin_lists_the_tombstones_read_only_without_their_values(client, nurse, case):
    services.record_delete(user=nurse, record=case.systemic_therapies.get(), reason="other patient's therapy")
    tombstone = DeletedRecord.objects.get()
    client.force_login(f.user("root", is_superuser=True))
    assert "other patient&#x27;s therapy" in client.get(reverse("admin:registry_deletedrecord_changelist")).content.decode()
    page = client.get(reverse("admin:registry_deletedrecord_change", args=[tombstone.pk])).content.decode()
    assert "doxorubicin" not in page and 'name="_save"' not in page


# --- the tombstone -----------------------------------------------------------------------------

def test_deleting_a_record_leaves_a_tombstone_with_who_when_why_and_its_last_values(nurse, case):
    pm = later_pm(nurse, case)
    services.record_delete(user=nurse, record=pm, reason="entered twice", source="web")
    tombstone = DeletedRecord.objects.get()
    assert (tombstone.table, tombstone.record_pk, tombstone.patient_id, tombstone.centre_id) == (
        "metastasectomies", str(pm.pk), case.pk, "MUC")
    assert (tombstone.deleted_by, tombstone.username, tombstone.source, tombstone.reason) == (
        nurse, "nurse", "web", "entered twice")
    [row] = tombstone.values["metastasectomies"]
    assert list(tombstone.values) == ["metastasectomies"]
    assert (row["id"], row["surgery_date"], row["side"], row["max_lesion_diameter_mm"]) == (
        pm.pk, "2016-06-01", "left", "15.0")
    assert Metastasectomy.history.filter(id=pm.pk).first().history_change_reason == "web: entered twice"


def test_deleting_a_patient_keeps_the_whole_case_in_one_tombstone_and_the_reason_in_every_history_row(nurse, case):
    services.record_delete(user=nurse, record=Patient.objects.get(pk=case.pk), reason="wrong patient", source="api")
    tombstone = DeletedRecord.objects.get()
    assert (tombstone.table, tombstone.record_pk) == ("patients", case.pk)
    assert {table: len(rows) for table, rows in tombstone.values.items()} == {
        "patients": 1, "primary_tumours": 1, "metastasectomies": 1, "systemic_therapies": 1, "follow_up": 1}
    for model in CASE_MODELS:
        deletion = model.history.filter(patient_id=case.pk, history_type="-").get()
        assert (deletion.history_user, deletion.history_change_reason) == (nurse, "api: wrong patient")


# --- restoring ---------------------------------------------------------------------------------

def test_a_coordinator_restores_a_deleted_patient_with_the_same_pseudonym_ids_and_values(nurse, coordinator, case):
    before = {model: list(model.objects.values()) for model in CASE_MODELS}
    version = selectors.data_version()
    services.record_delete(user=nurse, record=Patient.objects.get(pk=case.pk), reason="wrong patient")
    tombstone = DeletedRecord.objects.get()
    restored = services.record_restore(user=coordinator, deleted_record=tombstone, reason="it was the right one",
                                       source="web")
    assert restored.pk == case.pk
    for model in CASE_MODELS:
        [was], [now] = before[model], list(model.objects.values())
        assert {k: v for k, v in now.items() if k not in ("version", "updated_at")} == \
            {k: v for k, v in was.items() if k not in ("version", "updated_at")}  # created_at too
        assert now["version"] == was["version"] + 1
        history = list(model.history.filter(patient_id=case.pk).order_by("history_date", "history_id"))
        assert [row.history_type for row in history][-2:] == ["-", "+"]
        assert (history[-1].history_user, history[-1].history_change_reason) == (
            coordinator, "web: it was the right one")
    restoration = Restoration.objects.get()
    assert (restoration.deleted_record, restoration.restored_by, restoration.reason) == (
        tombstone, coordinator, "it was the right one")
    assert selectors.data_version() != version


def test_a_restored_record_can_be_deleted_again_and_each_deletion_has_its_tombstone(nurse, coordinator, case):
    pm = later_pm(nurse, case)
    services.record_delete(user=nurse, record=pm, reason="entered twice")
    restored = services.record_restore(user=coordinator, deleted_record=DeletedRecord.objects.get(), reason="not twice")
    services.record_delete(user=nurse, record=restored, reason="twice after all", expected_version=restored.version)
    assert [t.reason for t in DeletedRecord.objects.order_by("id")] == ["entered twice", "twice after all"]
    assert [h.history_type for h in Metastasectomy.history.filter(id=pm.pk).order_by("history_id")] == [
        "+", "-", "+", "-"]


def test_only_a_coordinator_may_restore(nurse, pi, monitor, case):
    services.record_delete(user=nurse, record=case.follow_ups.get(), reason="entered twice")
    for user in (nurse, pi, monitor):
        with pytest.raises(PermissionDenied):
            services.record_restore(user=user, deleted_record=DeletedRecord.objects.get(), reason="back")
    assert not FollowUp.objects.exists() and not Restoration.objects.exists()


def test_a_restore_needs_a_reason_and_happens_once(nurse, coordinator, case):
    services.record_delete(user=nurse, record=case.follow_ups.get(), reason="entered twice")
    tombstone = DeletedRecord.objects.get()
    with pytest.raises(ValidationError, match="Give a reason for restoring"):
        services.record_restore(user=coordinator, deleted_record=tombstone, reason="")
    assert not FollowUp.objects.exists()
    services.record_restore(user=coordinator, deleted_record=tombstone, reason="back")
    with pytest.raises(ValidationError, match="was restored already"):
        services.record_restore(user=coordinator, deleted_record=tombstone, reason="again")
    assert FollowUp.objects.count() == 1


def test_a_restore_that_would_break_a_rule_is_refused_with_the_rules_message(nurse, coordinator, case):
    services.record_delete(user=nurse, record=later_pm(nurse, case), reason="wrong date")
    later_pm(nurse, case)  # entered again, on the same date
    with pytest.raises(ValidationError, match="Another metastasectomy of this patient is already dated 2016-06-01"):
        services.record_restore(user=coordinator, deleted_record=DeletedRecord.objects.get(), reason="back")
    assert Metastasectomy.objects.count() == 2 and not Restoration.objects.exists()


def test_a_primary_tumour_is_not_restored_beside_a_new_one(nurse, coordinator, case):
    services.record_delete(user=nurse, record=PrimaryTumour.objects.get(), reason="wrong site")
    services.record_save(user=nurse, record=f.primary_tumour(case, site="trunk"))
    with pytest.raises(ValidationError, match="already exists"):
        services.record_restore(user=coordinator, deleted_record=DeletedRecord.objects.get(), reason="back")
    assert PrimaryTumour.objects.get().site == "trunk"


def test_a_record_of_a_deleted_patient_is_restored_only_after_the_patient(nurse, coordinator, case):
    services.record_delete(user=nurse, record=case.follow_ups.get(), reason="entered twice")
    services.record_delete(user=nurse, record=Patient.objects.get(pk=case.pk), reason="wrong patient")
    event, patient = DeletedRecord.objects.order_by("id")
    with pytest.raises(ValidationError, match=f"Patient {case.pk} is deleted: restore the patient first"):
        services.record_restore(user=coordinator, deleted_record=event, reason="back")
    services.record_restore(user=coordinator, deleted_record=patient, reason="back")
    assert counts() == [1, 1, 1, 1, 0]  # the case as it was deleted: the event had gone before
    services.record_restore(user=coordinator, deleted_record=event, reason="back")
    assert counts() == [1, 1, 1, 1, 1]


def test_a_record_is_not_restored_into_a_locked_patient(nurse, coordinator, case):
    services.record_delete(user=nurse, record=case.follow_ups.get(), reason="entered twice")
    move(coordinator, Patient.objects.get(pk=case.pk), "complete", "verified", "locked")
    with pytest.raises(RecordLocked):
        services.record_restore(user=coordinator, deleted_record=DeletedRecord.objects.get(), reason="back")
    assert not FollowUp.objects.exists()


# --- the history of a deleted patient or record --------------------------------------------------

def history(client, user, patient_id):
    client.force_login(user)
    return client.get(reverse("patient_history", args=[patient_id]))


def test_the_history_of_a_deleted_patient_stays_readable_with_who_when_and_why(client, nurse, pi, monitor,
                                                                               coordinator, case):
    services.record_delete(user=nurse, record=Patient.objects.get(pk=case.pk), reason="wrong patient", source="web")
    for user in (coordinator, nurse, pi, monitor):
        response = history(client, user, case.pk)
        assert response.status_code == 200, user
        page = response.content.decode()
        assert "This patient was deleted on" in page and "by nurse" in page and "Reason: wrong patient" in page
        entries = response.context["entries"]
        assert {(e["action"], e["reason"]) for e in entries if e["action"] == "deleted"} == {("deleted", "wrong patient")}
        assert sum(e["action"] == "deleted" for e in entries) == 5  # the patient and its four records
        assert any(e["action"] == "created" for e in entries)


def test_another_centres_nurse_gets_404_for_a_deleted_patients_history_and_the_refusal_is_recorded(
        client, nurse, other_nurse, case):
    services.record_delete(user=nurse, record=Patient.objects.get(pk=case.pk), reason="wrong patient")
    response = history(client, other_nurse, case.pk)
    assert response.status_code == 404 and "wrong patient" not in response.content.decode()
    assert SecurityEvent.objects.filter(event=SecurityEvent.DENIED, patient_id=case.pk, status=404).exists()
    assert history(client, other_nurse, "MUC-NOSUCH").status_code == 404


def test_a_deleted_record_shows_on_its_living_patients_history_with_the_reason(client, nurse, case):
    services.record_delete(user=nurse, record=case.systemic_therapies.get(), reason="other patient's therapy",
                           source="web")
    entry = history(client, nurse, case.pk).context["entries"][0]
    assert (entry["action"], entry["user"], entry["reason"]) == ("deleted", "nurse", "other patient's therapy")
    assert entry["record"].startswith("systemic therapy")


def test_after_a_restore_the_history_continues_and_says_restored_with_the_reason(client, nurse, coordinator, case):
    services.record_delete(user=nurse, record=Patient.objects.get(pk=case.pk), reason="wrong patient", source="web")
    services.record_restore(user=coordinator, deleted_record=DeletedRecord.objects.get(), reason="right one",
                            source="web")
    entries = history(client, coordinator, case.pk).context["entries"]
    restored = [e for e in entries if e["action"] == "restored"]
    assert len(restored) == 5 and {(e["user"], e["reason"]) for e in restored} == {("coordinator", "right one")}
    assert client.get(reverse("patient_detail", args=[case.pk])).status_code == 200


# --- the deleted-records page --------------------------------------------------------------------

def test_the_deleted_records_page_lists_the_centres_deletions_the_user_may_read(client, nurse, other_nurse, pi,
                                                                                coordinator, case):
    services.record_delete(user=nurse, record=case.follow_ups.get(), reason="entered twice")
    berlin = services.patient_create(user=other_nurse, centre=f.centre("BER"), **f.patient_values())
    services.record_delete(user=other_nurse, record=berlin, reason="test entry")
    url = reverse("deleted_records")
    for user, shown, hidden in [(nurse, case.pk, berlin.pk), (pi, case.pk, berlin.pk),
                                (other_nurse, berlin.pk, case.pk)]:
        client.force_login(user)
        page = client.get(url).content.decode()
        assert shown in page and hidden not in page, user
        assert 'action="/deleted/' not in page  # only a coordinator restores
    client.force_login(coordinator)
    page = client.get(url).content.decode()
    assert case.pk in page and berlin.pk in page and "entered twice" in page and "test entry" in page
    assert page.count('action="/deleted/') == 2
    page = client.get(url, {"centre": "BER"}).content.decode()
    assert berlin.pk in page and case.pk not in page
    client.force_login(other_nurse)
    assert client.get(url, {"centre": "MUC"}).status_code == 404
    assert reverse("deleted_records") in client.get(reverse("home"), follow=True).content.decode()  # in the menu


def test_a_coordinator_restores_from_the_page_giving_a_reason(client, nurse, coordinator, case):
    services.record_delete(user=nurse, record=case.follow_ups.get(), reason="entered twice")
    tombstone = DeletedRecord.objects.get()
    client.force_login(coordinator)
    restore = reverse("deleted_record_restore", args=[tombstone.pk])
    response = client.post(restore, {"reason": ""}, follow=True)
    assert "Give a reason for restoring" in response.content.decode() and not FollowUp.objects.exists()
    response = client.post(restore, {"reason": "was a real visit"})
    assert response["Location"] == reverse("patient_detail", args=[case.pk])
    assert FollowUp.objects.get().history.first().history_change_reason == "web: was a real visit"
    page = client.get(reverse("deleted_records")).content.decode()
    assert "restored" in page and "was a real visit" in page and 'action="/deleted/' not in page


def test_a_restore_refused_by_a_rule_shows_the_rules_message(client, nurse, coordinator, case):
    services.record_delete(user=nurse, record=later_pm(nurse, case), reason="wrong date")
    later_pm(nurse, case)
    client.force_login(coordinator)
    response = client.post(reverse("deleted_record_restore", args=[DeletedRecord.objects.get().pk]),
                           {"reason": "back"}, follow=True)
    assert "Another metastasectomy of this patient is already dated 2016-06-01" in response.content.decode()
    assert Metastasectomy.objects.count() == 2


def test_no_one_but_a_coordinator_restores_from_the_page(client, nurse, other_nurse, pi, monitor, case):
    services.record_delete(user=nurse, record=case.follow_ups.get(), reason="entered twice")
    url = reverse("deleted_record_restore", args=[DeletedRecord.objects.get().pk])
    for user, status in [(nurse, 403), (pi, 403), (monitor, 403), (other_nurse, 404)]:
        client.force_login(user)
        assert client.post(url, {"reason": "back"}).status_code == status, user
    assert not FollowUp.objects.exists() and not Restoration.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the append-only triggers exist on PostgreSQL only")
def test_a_tombstone_refuses_update_and_delete(nurse, case):
    from django.db import DatabaseError, transaction

    services.record_delete(user=nurse, record=case.follow_ups.get(), reason="entered twice")
    for statement in (lambda: DeletedRecord.objects.update(reason="nothing"), lambda: DeletedRecord.objects.all().delete()):
        with pytest.raises(DatabaseError, match="pgtrigger: Cannot (update|delete) rows"), transaction.atomic():
            statement()
    assert DeletedRecord.objects.get().reason == "entered twice"
