"""The data-management cycle (registry.services.status): who moves a record's status, the lock
every write obeys, and the reason a change of a complete or verified record needs."""
import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from registry import services
from registry.models import Metastasectomy, Patient
from registry.services import RecordLocked
from tests import factories as f

pytestmark = pytest.mark.django_db


def move(user, record, *statuses, reason=None):
    for status in statuses:
        record = services.record_status_set(user=user, record=record, status=status, reason=reason, source="web")
    return record


def test_a_record_starts_in_progress(case):
    assert case.status == "in_progress"
    assert case.metastasectomies.get().status == "in_progress"


def test_nurse_completes_monitor_verifies_coordinator_locks(case, nurse, monitor, coordinator):
    pm = case.metastasectomies.get()
    move(nurse, pm, "complete")
    move(monitor, pm, "verified")
    pm = move(coordinator, pm, "locked")
    stored = Metastasectomy.objects.get(pk=pm.pk)
    assert (stored.status, stored.version) == ("locked", 4)
    rows = list(stored.history.order_by("history_id").values_list("status", "history_user__username",
                                                                    "history_change_reason"))
    assert rows[-3:] == [("complete", "nurse", "web"), ("verified", "monitor", "web"), ("locked", "coordinator", "web")]


@pytest.mark.parametrize("role,status", [("nurse", "verified"), ("pi", "in_progress"), ("monitor", "in_progress")])
def test_a_role_may_not_make_another_roles_move(case, nurse, pi, monitor, role, status):
    users = {"nurse": nurse, "pi": pi, "monitor": monitor}
    move(nurse, case, "complete")
    with pytest.raises(PermissionDenied, match="may not move"):
        services.record_status_set(user=users[role], record=case, status=status)
    assert Patient.objects.get(pk=case.pk).status == "complete"


def test_a_nurse_of_another_centre_may_not_complete(case, other_nurse):
    with pytest.raises(PermissionDenied):
        services.record_status_set(user=other_nurse, record=case, status="complete")


def test_a_move_outside_the_cycle_is_refused(case, coordinator):
    with pytest.raises(ValidationError, match="cannot move from in progress to locked"):
        services.record_status_set(user=coordinator, record=case, status="locked")
    with pytest.raises(ValidationError, match="no status"):
        services.record_status_set(user=coordinator, record=case, status="archived")


def test_unlocking_needs_a_coordinator_and_a_reason(case, nurse, monitor, coordinator):
    move(coordinator, case, "complete", "verified", "locked")
    with pytest.raises(PermissionDenied):
        services.record_status_set(user=monitor, record=case, status="verified", reason="typo")
    with pytest.raises(ValidationError, match="reason for unlocking"):
        services.record_status_set(user=coordinator, record=case, status="verified")
    move(coordinator, case, "verified", reason="typo in the ECOG")
    stored = Patient.objects.get(pk=case.pk)
    assert stored.status == "verified"
    assert stored.history.first().history_change_reason == "web: typo in the ECOG"


def test_a_locked_record_refuses_a_change_and_says_who_can_unlock_it(case, nurse, coordinator):
    pm = move(coordinator, case.metastasectomies.get(), "complete", "verified", "locked")
    pm.margin = "R1"
    with pytest.raises(RecordLocked, match="is locked.*Only a coordinator can unlock it") as refused:
        services.record_save(user=coordinator, record=pm, reason="correction")
    assert refused.value.code == "record_locked"
    assert "metastasectomy" in str(refused.value.messages)
    assert Metastasectomy.objects.get(pk=pm.pk).margin == "R0"
    with pytest.raises(RecordLocked):
        services.record_delete(user=coordinator, record=pm, reason="entered in error")
    assert Metastasectomy.objects.filter(pk=pm.pk).exists()


def test_every_record_of_a_locked_patient_refuses_writes(case, nurse, coordinator):
    move(coordinator, case, "complete", "verified", "locked")
    therapy = case.systemic_therapies.get()
    therapy.cycles = 4
    with pytest.raises(RecordLocked, match=f"Patient {case.pk} is locked"):
        services.record_save(user=nurse, record=therapy)
    with pytest.raises(RecordLocked):
        services.record_save(user=nurse, record=f.follow_up(case, event_date=f.D(2016, 6, 1)))
    with pytest.raises(RecordLocked):
        services.record_delete(user=nurse, record=therapy, reason="entered in error")
    with pytest.raises(RecordLocked):
        services.record_status_set(user=nurse, record=therapy, status="complete")
    assert case.follow_ups.count() == 1 and case.systemic_therapies.get().cycles is None


def test_deleting_a_patient_with_a_locked_record_is_refused(case, coordinator):
    move(coordinator, case.follow_ups.get(), "complete", "verified", "locked")
    with pytest.raises(RecordLocked):
        services.record_delete(user=coordinator, record=case, reason="entered in error")
    assert Patient.objects.filter(pk=case.pk).exists()


def test_changing_a_complete_record_needs_a_reason_kept_in_the_history(case, nurse):
    pm = move(nurse, case.metastasectomies.get(), "complete")
    pm.margin = "R1"
    with pytest.raises(ValidationError) as refused:
        services.record_save(user=nurse, record=pm, source="web")
    assert "give a reason for the change" in refused.value.message_dict["reason"][0]
    assert Metastasectomy.objects.get(pk=pm.pk).margin == "R0"
    services.record_save(user=nurse, record=pm, source="web", reason="pathology report corrected")
    stored = Metastasectomy.objects.get(pk=pm.pk)
    assert (stored.margin, stored.status) == ("R1", "complete")
    assert stored.history.first().history_change_reason == "web: pathology report corrected"


def test_changing_a_verified_record_sends_it_back_to_complete(case, nurse, monitor):
    pm = move(monitor, move(nurse, case.metastasectomies.get(), "complete"), "verified")
    pm.margin = "R1"
    services.record_save(user=nurse, record=pm, reason="second opinion")
    stored = Metastasectomy.objects.get(pk=pm.pk)
    assert (stored.margin, stored.status) == ("R1", "complete")
    assert stored.history.first().status == "complete"


def test_a_record_in_progress_changes_without_a_reason(case, nurse):
    pm = case.metastasectomies.get()
    pm.margin = "R1"
    services.record_save(user=nurse, record=pm)
    assert Metastasectomy.objects.get(pk=pm.pk).margin == "R1"


def test_record_save_never_moves_the_status(case, nurse):
    case.status = "locked"
    case.ecog = 1
    services.record_save(user=nurse, record=case)
    assert Patient.objects.get(pk=case.pk).status == "in_progress"
