"""Record by record: create, change, delete and restore one clinical record, or bulk-create whole cases.

Each service checks write access, the single-record rules (model validation), the cross-record
rules on the merged case (registry.rules), the record's version (no lost updates), records who
made the change in the audit trail and moves the centre's data version, in one transaction.
"""
from collections import Counter

from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from registry import access, rules
from registry.cases import (
    COLLECTIONS,
    TABLE_OF,
    Case,
    assemble,
    case_with,
    centre_of,
    records_from_values,
    stored_values,
)
from registry.models import CLINICAL_MODELS, Centre, DeletedRecord, Patient, Restoration, Submission
from registry.pseudonyms import unique_pseudonym
from registry.selectors import case_load, existing_patient_ids
from registry.services import bulk, queries
from registry.services.instances import REPEATING, next_instance
from registry.services.status import (
    COMPLETE,
    IN_PROGRESS,
    REASON_MAX_LENGTH,
    VERIFIED,
    change_reason,
    check_reason,
    refuse_if_locked,
)
from registry.services.versions import bump_data_version


class StaleRecordError(Exception):
    """Someone else saved the record since it was opened; `changes` lists (column, theirs)."""

    def __init__(self, current, changes):
        self.current = current
        self.changes = changes
        columns = ", ".join(column for column, _value in changes) or _("no visible field")
        super().__init__(_("This record was changed by someone else while you edited it (%(columns)s). "
                           "Review the current values and save again.") % {"columns": columns})


def violations_as_error(violations, record):
    """A ValidationError that puts each violation at the record's own column where it can."""
    errors = {}
    for violation in violations:
        column = next((c for r, c in violation.refs if r is record), NON_FIELD_ERRORS)
        message = violation.message
        if violation.record is not record:  # the problem shows on another record: name it
            message = f"{rules.describe(violation.record)}: {message}"
        errors.setdefault(column, []).append(message)
    return ValidationError(errors)


def record_check(*, record, delete=False, reason=None):
    """Raise ValidationError if saving (or deleting) `record` would break a cross-record rule, meet
    a lock or lack the reason a change needs (for a form that shows the problems before saving;
    the save checks again under its lock)."""
    if isinstance(record, Patient):
        stored = Patient.objects.filter(pk=record.pk).first() if record.pk else None
        case = case_load(stored) if stored else Case(patient=record)
    else:
        case = case_load(record.patient)
    stored = next((r for r in case.records() if type(r) is type(record) and r.pk == record.pk), None)
    if not record._state.adding or not isinstance(record, Patient):
        refuse_if_locked(stored if not record._state.adding else record, case.patient)
    if stored is not None and not delete and _changed_columns(stored, record):
        check_reason(stored, reason)
    _check(case, record, delete=delete)


def _check(case, record, *, delete=False):
    violations = rules.check_case(case_with(case, record, delete=delete))
    if delete:
        # A deleted record cannot be at fault; blame the records it leaves behind.
        violations = [v for v in violations if not v.involves(record)] or violations
    if violations:
        raise violations_as_error(violations, record)


def _locked_case(patient_id):
    """The stored case of a patient, its row locked until the commit, or None for a new patient.

    Every write locks the patient first, so two concurrent saves of one case cannot both pass
    the rules, and the records read with it cannot change before the commit."""
    patient = Patient.objects.select_for_update().filter(pk=patient_id).first()
    return case_load(patient) if patient else None


def _stored(case, record):
    """The stored version of `record` in its locked case."""
    candidates = [] if case is None else [case.patient] if isinstance(record, Patient) else list(case.records())
    found = next((r for r in candidates if type(r) is type(record) and r.pk == record.pk), None)
    if found is None:
        raise type(record).DoesNotExist(f"{rules.describe(record)} is no longer in the registry.")
    return found


def _changed_columns(stored, record):
    return [(f.name, getattr(stored, f.attname)) for f in type(record)._meta.concrete_fields
            if f.editable and getattr(stored, f.attname) != getattr(record, f.attname)]


@transaction.atomic
def record_save(*, user, record, expected_version=None, source="", idempotency_key=None, reason=None,
                redcap_instance=None):
    """Validate and save one clinical record (create or update); returns the saved record.

    A new patient gets a freshly issued pseudonym. `expected_version` is the version the editor
    started from: if the stored record has moved on, StaleRecordError is raised instead of
    overwriting someone else's change. Saving a record unchanged writes nothing. `source` (web,
    api, admin) is kept with the change in the audit trail, with the `reason` for it, which a
    change of a complete or verified record needs; a change of a verified record sends it back to
    complete. A locked record, or a record of a locked patient, is refused (RecordLocked). A new
    record sent with an `idempotency_key` the user sent before is not created again: the first one
    is returned. A new metastasectomy, systemic therapy or follow-up event gets its patient's next
    REDCap instance number (services.instances), or `redcap_instance` when the REDCap import names
    a free one.
    """
    is_new = record._state.adding
    if is_new and idempotency_key:  # a create sent again (a double click, a retried request)
        earlier = _first_submission(user, idempotency_key, record)
        if earlier is not None:
            return earlier
    centre = centre_of(record)
    access.require_writable(user, centre)
    if is_new and isinstance(record, Patient) and not record.patient_id:
        record.patient_id = unique_pseudonym(centre, lambda pid: Patient.objects.filter(pk=pid).exists())
    case = _locked_case(record.patient_id)
    record.status = IN_PROGRESS  # the status moves only through services.status
    if not is_new:
        stored = _stored(case, record)
        refuse_if_locked(stored, case.patient)
        if stored.version != (expected_version or record.version):
            raise StaleRecordError(stored, _changed_columns(stored, record))
        if isinstance(record, Patient) and stored.centre_id != record.centre_id:
            raise ValidationError({"centre": _("A patient cannot move to another centre: the pseudonym names it.")})
        record.status = stored.status
        if not _changed_columns(stored, record):
            return record  # nothing changed: no new version, no audit row, the data version stays
        check_reason(stored, reason)
        if stored.status == VERIFIED:
            record.status = COMPLETE  # verified values changed: to be verified again
    elif case is not None:
        refuse_if_locked(record, case.patient)
    if is_new and type(record) in REPEATING:
        _number(record, getattr(case, COLLECTIONS[type(record)]) if case else [], redcap_instance)
    # The locked case shows the patient exists: its foreign key needs no query of its own (but a
    # unique one, the primary tumour's, is still checked).
    record.full_clean(exclude=["patient"] if case and not isinstance(record, Patient) else None, validate_unique=False)
    record.validate_unique()
    _check(case or Case(patient=record), record)
    if not is_new:
        record.version = stored.version + 1
    record._history_user, record._change_reason = access.audit_user(user), change_reason(source, reason)
    try:
        record.save(force_insert=is_new)
    except IntegrityError as error:  # a concurrent writer won the race for a unique value
        raise ValidationError(_("The record conflicts with one saved at the same moment: %(error)s")
                              % {"error": error}) from error
    # The soft checks' queries follow the change (no statement unless a finding came or went).
    queries.case_checks_sync(before=case, after=case_with(case, record) if case else Case(patient=record))
    bump_data_version([centre])
    if is_new and idempotency_key and access.audit_user(user) is not None:
        Submission.objects.filter(user=access.audit_user(user), key=idempotency_key[:64]).update(record_pk=str(record.pk))
    return record


def _number(record, stored, wanted):
    """Give a new repeating record its instance number: `wanted` if no stored record holds it, else
    the next one."""
    if wanted is not None and any(other.redcap_instance == wanted for other in stored):
        raise ValidationError({"redcap_instance": _("%(record)s: instance %(n)s of this patient is taken.")
                               % {"record": rules.describe(record), "n": wanted}})
    record.redcap_instance = wanted or next_instance(type(record), record.patient_id, stored)


def patient_create(*, user, centre, source="", idempotency_key=None, **fields):
    """Create a patient; record_save issues the pseudonym."""
    return record_save(user=user, record=Patient(centre=centre, **fields), source=source,
                       idempotency_key=idempotency_key)


def _first_submission(user, key, record):
    """None for the first request with this key, else the record the first one created (a
    concurrent first request holds the key's row: this waits for it to commit)."""
    audit_user = access.audit_user(user)
    if audit_user is None:
        return None  # the system (commands) sends no keys
    try:
        with transaction.atomic():
            Submission.objects.create(user=audit_user, key=key[:64], table=type(record)._meta.db_table)
        return None
    except IntegrityError:
        seen = Submission.objects.get(user=audit_user, key=key[:64])
        return type(record).objects.filter(pk=seen.record_pk).first() if seen.record_pk else None


def _required_reason(reason, message):
    """The reason, stripped; ValidationError (keyed `reason`) when it is missing or too long."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": message})
    if len(reason) > REASON_MAX_LENGTH:
        raise ValidationError({"reason": _("Keep the reason to %(n)s characters.") % {"n": REASON_MAX_LENGTH}})
    return reason


@transaction.atomic
def record_delete(*, user, record, reason="", expected_version=None, source=""):
    """Delete one record (a patient with its whole case) for a `reason`, which is required.

    The audit trail keeps what the rows held, with the source and reason as their change reason; a
    tombstone (DeletedRecord) keeps who, when, why and the deleted rows' last values, so that the
    deletion is listed and can be undone (record_restore)."""
    centre = centre_of(record)
    access.require_writable(user, centre)
    case = _locked_case(record.patient_id)
    stored = _stored(case, record)
    deleted = list(case.records()) if isinstance(record, Patient) else [stored]
    for locked in deleted:
        refuse_if_locked(locked, case.patient)
    if expected_version is not None and stored.version != expected_version:
        raise StaleRecordError(stored, [])
    reason = _required_reason(reason, _("Give a reason for deleting %(record)s.") % {"record": rules.describe(stored)})
    if isinstance(record, Patient):
        queries.case_checks_sync(before=case, after=None, deleted=deleted)
    else:
        _check(case, stored, delete=True)
        queries.case_checks_sync(before=case, after=case_with(case, stored, delete=True), deleted=[stored])
    who, why = access.audit_user(user), change_reason(source, reason)
    DeletedRecord.objects.create(
        table=TABLE_OF[type(stored)], record_pk=str(stored.pk), patient_id=stored.patient_id, centre_id=centre,
        deleted_at=timezone.now(), deleted_by=who, username=who.get_username() if who else "", source=source,
        reason=reason, values=stored_values(deleted))
    for gone in reversed(deleted):  # children first, the patient last
        gone._history_user, gone._change_reason = who, why
        gone.delete()
    bump_data_version([centre])


@transaction.atomic
def record_restore(*, user, deleted_record, reason="", source=""):
    """Put back what one deletion removed (a record, or a patient with the case as it was then), with
    the same pseudonym and ids, for a `reason`; returns the restored record. Only a coordinator may.

    The records are checked as a save is (model validation, the cross-record rules on the case they
    return to, a locked patient): a restore that would break a rule is refused with the rule's
    message. The audit trail shows them created again, by the coordinator, with the reason; a
    Restoration row marks the tombstone restored (tombstones are append-only)."""
    if not access.can_restore(user):
        raise PermissionDenied(_("Only a coordinator may restore a deleted record."))
    tombstone = DeletedRecord.objects.select_for_update().get(pk=deleted_record.pk)
    records = records_from_values(tombstone.values)
    restored = records[0]  # the patient before its records
    described = rules.describe(restored)
    if Restoration.objects.filter(deleted_record=tombstone).exists():
        raise ValidationError(_("%(record)s was restored already.") % {"record": capfirst(described)})
    reason = _required_reason(reason, _("Give a reason for restoring %(record)s.") % {"record": described})
    case = _locked_case(restored.patient_id)
    if isinstance(restored, Patient):
        if case is not None:
            raise ValidationError(_("Patient %(id)s is in the registry: there is nothing to restore.")
                                  % {"id": restored.pk})
        for child in records[1:]:
            child.patient = restored
        for one in records:
            one.full_clean(exclude=None if one is restored else ["patient"], validate_unique=False)
            one.validate_unique()
        violations = rules.check_case(assemble(restored, records[1:]))
        if violations:
            raise ValidationError([str(violation) for violation in violations])
    else:
        if case is None:
            raise ValidationError(_("Patient %(id)s is deleted: restore the patient first.")
                                  % {"id": restored.patient_id})
        refuse_if_locked(restored, case.patient)
        restored.patient = case.patient
        restored.full_clean(exclude=["patient"], validate_unique=False)
        restored.validate_unique()
        _check(case, restored)
    who, why = access.audit_user(user), change_reason(source, reason)
    for one in records:  # a tombstone written before REDCap instance numbers: the record takes the next one
        if type(one) in REPEATING and one.redcap_instance is None:
            numbered = [r for r in [*(case.records() if case else ()), *records] if type(r) is type(one)]
            one.redcap_instance = next_instance(type(one), one.patient_id, numbered)
    for one in records:
        created_at = one.created_at
        one.version += 1
        one._history_user, one._change_reason = who, why
        one.save(force_insert=True)
        # The record's creation stays when it was first created (the save stamps the present).
        type(one).objects.filter(pk=one.pk).update(created_at=created_at)
        one.created_at = created_at
    if isinstance(restored, Patient):
        queries.case_checks_sync(before=None, after=assemble(restored, records[1:]))
    else:
        queries.case_checks_sync(before=case, after=case_with(case, restored))
    Restoration.objects.create(deleted_record=tombstone, patient_id=tombstone.patient_id, restored_at=timezone.now(),
                               restored_by=who, username=who.get_username() if who else "", source=source,
                               reason=reason)
    bump_data_version([tombstone.centre_id])
    return restored


@transaction.atomic
def cases_create(*, user, cases, reason="bulk load"):
    """Bulk-create whole new cases (patients with all their records), audited row by row
    (the import's COPY path, services.bulk; `reason` is the audit rows' change reason).

    Every case is validated first (model validation and cross-record rules); if any fails,
    nothing is written and ValidationError lists every problem.
    """
    problems = []
    centres = set(Centre.objects.values_list("code", flat=True))
    ids = Counter(case.patient.patient_id for case in cases)
    taken = existing_patient_ids(list(ids))
    for case in cases:
        patient = case.patient
        if patient.centre_id not in centres:
            problems.append(f"{rules.describe(patient)}, centre: " + _("There is no centre %(code)s.")
                            % {"code": patient.centre_id})
            continue
        access.require_writable(user, patient.centre_id)
        if patient.patient_id in taken or ids[patient.patient_id] > 1:
            problems.append(f"{rules.describe(patient)}, patient_id: " + _("This patient ID is already in use."))
        for record in case.records():
            try:
                # Foreign keys and uniqueness are checked above, once for all rows, not per row.
                record.full_clean(exclude=["patient", "centre"], validate_unique=False)
            except ValidationError as error:
                problems.extend(f"{rules.describe(record)}, {column}: {' '.join(messages)}"
                                for column, messages in error.message_dict.items())
        problems.extend(str(v) for v in rules.check_case(case))
    if problems:
        raise ValidationError(problems)
    now = timezone.now()
    for model in CLINICAL_MODELS:  # parents before children
        records = [record for case in cases for record in case.records() if type(record) is model]
        bulk.records_create(model, records, user=user, now=now, reason=reason)
    queries.cases_checks_sync(cases)
    bump_data_version(case.patient.centre_id for case in cases)
