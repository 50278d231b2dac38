"""The data-management cycle of a clinical record: in progress → complete (the nurse) → verified
(a monitor or a coordinator) → locked (a coordinator).

A locked record, and every record of a locked patient, refuses every write (web, API, admin,
import): `lock_refusal` is the one test, called by every writing service. Unlocking takes a
coordinator and a reason. Who may make which move is registry.access.status_moves.
"""
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from registry import access, rules
from registry.cases import centre_of
from registry.codes import RECORD_STATUS, values
from registry.models import Patient
from registry.selectors import case_load
from registry.services.versions import bump_data_version

IN_PROGRESS, COMPLETE, VERIFIED, LOCKED = values(RECORD_STATUS)
# Changing a record in one of these needs a reason, kept with the change in the audit trail.
NEEDS_REASON = (COMPLETE, VERIFIED)
REASON_MAX_LENGTH = 80  # with the source it fits simple-history's change reason (100 characters)


class RecordLocked(ValidationError):
    """A write to a locked record, or to a record of a locked patient (the API answers 409)."""

    code = "record_locked"

    def __init__(self, record, locked):
        if locked is record:
            message = _("%(record)s is locked: it cannot be changed. Only a coordinator can unlock it, "
                        "giving a reason.") % {"record": rules.describe(record)}
        else:
            message = _("Patient %(patient)s is locked, so %(record)s cannot be changed. Only a coordinator "
                        "can unlock the patient, giving a reason.") % {
                "patient": locked.pk, "record": rules.describe(record)}
        super().__init__(message, code=self.code)
        self.record, self.locked = record, locked


def lock_refusal(record, patient=None):
    """The RecordLocked error a write of `record` (as stored) meets, or None. `patient` is the
    stored patient of a child record (a new child of a locked patient is refused too)."""
    if record is not None and not record._state.adding and record.status == LOCKED:
        return RecordLocked(record, record)
    if patient is not None and patient is not record and patient.status == LOCKED:
        return RecordLocked(record, patient)
    return None


def case_lock_refusal(record):
    """lock_refusal for deleting a stored record: a patient's deletion takes its whole case along."""
    patient = record if isinstance(record, Patient) else record.patient
    records = case_load(patient).records() if isinstance(record, Patient) else [record]
    return next((error for r in records if (error := lock_refusal(r, patient)) is not None), None)


def refuse_if_locked(record, patient=None):
    error = lock_refusal(record, patient)
    if error is not None:
        raise error


def change_reason(source, reason=None):
    """The audit trail's change reason: where the change came from, and why when a reason is given."""
    return f"{source}: {reason}"[:100] if reason else source


def check_reason(stored, reason):
    """Raise unless a change of `stored` (a stored record) that needs a reason has one."""
    if reason and len(reason) > REASON_MAX_LENGTH:
        raise ValidationError({"reason": _("Keep the reason to %(n)s characters.") % {"n": REASON_MAX_LENGTH}})
    if stored.status in NEEDS_REASON and not (reason or "").strip():
        raise ValidationError({"reason": _("%(record)s is %(status)s: give a reason for the change.") % {
            "record": rules.describe(stored), "status": stored.get_status_display()}})


def status_label(status):
    return dict(RECORD_STATUS).get(status, status)


@transaction.atomic
def record_status_set(*, user, record, status, reason=None, source=""):
    """Move one record to `status`; returns the saved record (a new version, audited with the
    source and reason). Raises PermissionDenied when the user's role may not make the move,
    ValidationError when the move is not in the cycle or an unlock has no reason, and
    RecordLocked for a record of a locked patient."""
    reason = (reason or "").strip()
    if status not in values(RECORD_STATUS):
        raise ValidationError({"status": _("There is no status %(status)s.") % {"status": status}})
    centre = centre_of(record)
    # The patient's row first, as every write does: no save of the case runs at the same time.
    patient = Patient.objects.select_for_update().filter(pk=record.patient_id).first()
    stored = None
    if patient is not None:
        stored = patient if isinstance(record, Patient) else next(
            (r for r in case_load(patient).records() if type(r) is type(record) and r.pk == record.pk), None)
    if stored is None:
        raise type(record).DoesNotExist(f"{rules.describe(record)} is no longer in the registry.")
    if stored.status == status:
        return stored
    if stored is not patient and patient.status == LOCKED:
        raise RecordLocked(stored, patient)
    moves = access.status_moves(user, centre, stored.status)
    if status not in moves:
        described = {"record": rules.describe(stored), "from": status_label(stored.status), "to": status_label(status)}
        if status in access.status_moves(access.SYSTEM, centre, stored.status):
            raise PermissionDenied(_("Your role may not move %(record)s from %(from)s to %(to)s.") % described)
        raise ValidationError({"status": _("%(record)s cannot move from %(from)s to %(to)s.") % described})
    if stored.status == LOCKED and not reason:
        raise ValidationError({"reason": _("Give a reason for unlocking %(record)s.") % {
            "record": rules.describe(stored)}})
    if len(reason) > REASON_MAX_LENGTH:
        raise ValidationError({"reason": _("Keep the reason to %(n)s characters.") % {"n": REASON_MAX_LENGTH}})
    stored.status = status
    stored.version += 1
    stored._history_user, stored._change_reason = access.audit_user(user), change_reason(source, reason)
    stored.save()
    bump_data_version([centre])
    return stored
