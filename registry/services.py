"""Writes to the registry. Every path that changes clinical data comes through here.

Each service checks write access, the single-record rules (model validation), the cross-record
rules on the merged case (registry.rules), the record's version (no lost updates), and records
who made the change in the audit trail.
"""
import contextlib
import hashlib
from collections import Counter

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import CharField, Count, Max, Q
from django.db.models.functions import Cast
from django.utils.translation import gettext as _
from simple_history.utils import bulk_create_with_history

from registry import access, rules
from registry.models import CLINICAL_MODELS, Centre, FollowUp, Metastasectomy, Patient, PrimaryTumour, SystemicTherapy
from registry.pseudonyms import unique_pseudonym

CHILD_COLLECTIONS = {
    Metastasectomy: "metastasectomies",
    SystemicTherapy: "systemic_therapies",
    FollowUp: "follow_ups",
}


class StaleRecordError(Exception):
    """Someone else saved the record since it was opened; `changes` lists (column, theirs)."""

    def __init__(self, current, changes):
        self.current = current
        self.changes = changes
        columns = ", ".join(column for column, _value in changes) or _("no visible field")
        super().__init__(_("This record was changed by someone else while you edited it (%(columns)s). "
                           "Review the current values and save again.") % {"columns": columns})


def case_load(patient):
    """The patient's whole case as stored (four queries)."""
    return rules.Case(
        patient=patient,
        primary_tumour=PrimaryTumour.objects.filter(patient=patient).first(),
        metastasectomies=list(Metastasectomy.objects.filter(patient=patient)),
        systemic_therapies=list(SystemicTherapy.objects.filter(patient=patient)),
        follow_ups=list(FollowUp.objects.filter(patient=patient)),
    )


def case_with(case, record, *, delete=False):
    """The case as it would be after saving (or deleting) `record`."""
    merged = rules.Case(case.patient, case.primary_tumour, list(case.metastasectomies),
                        list(case.systemic_therapies), list(case.follow_ups))
    if isinstance(record, Patient):
        merged.patient = record
    elif isinstance(record, PrimaryTumour):
        merged.primary_tumour = None if delete else record
    else:
        name = CHILD_COLLECTIONS[type(record)]
        others = [r for r in getattr(merged, name) if record.pk is None or r.pk != record.pk]
        setattr(merged, name, others if delete else others + [record])
    return merged


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


def record_check(*, record, delete=False):
    """Raise ValidationError if saving (or deleting) `record` would break a cross-record rule."""
    if isinstance(record, Patient):
        case = case_load(record) if record.pk and Patient.objects.filter(pk=record.pk).exists() \
            else rules.Case(patient=record)
    else:
        case = case_load(record.patient)
    violations = rules.check_case(case_with(case, record, delete=delete))
    if delete:
        # A deleted record cannot be at fault; blame the records it leaves behind.
        violations = [v for v in violations if not v.involves(record)] or violations
    if violations:
        raise violations_as_error(violations, record)


def _centre_of(record):
    return record.centre_id if isinstance(record, Patient) else record.patient.centre_id


def _lock_patient(record):
    """Serialise writes to one patient's case so two concurrent saves cannot both pass the rules."""
    patient_id = record.patient_id
    if patient_id:
        Patient.objects.select_for_update().filter(pk=patient_id).first()


def _changed_columns(stored, record):
    return [(f.name, getattr(stored, f.attname)) for f in type(record)._meta.concrete_fields
            if f.editable and getattr(stored, f.attname) != getattr(record, f.attname)]


@transaction.atomic
def record_save(*, user, record, expected_version=None):
    """Validate and save one clinical record (create or update); returns the saved record.

    `expected_version` is the version the editor started from: if the stored record has moved
    on, StaleRecordError is raised instead of overwriting someone else's change.
    """
    access.require_writable(user, _centre_of(record))
    _lock_patient(record)
    model = type(record)
    is_new = record._state.adding
    if not is_new:
        stored = model.objects.select_for_update().get(pk=record.pk)
        if stored.version != (expected_version or record.version):
            raise StaleRecordError(stored, _changed_columns(stored, record))
        if isinstance(record, Patient) and stored.centre_id != record.centre_id:
            raise ValidationError({"centre": _("A patient cannot move to another centre: the pseudonym names it.")})
    # Uniqueness across rows is a cross-record rule: the rules name the column, the database
    # constraints stay as the last line of defence against a concurrent writer.
    record.full_clean(validate_constraints=False)
    record_check(record=record)
    if not is_new:
        record.version = stored.version + 1
    record._history_user = access.audit_user(user)
    try:
        record.save(force_insert=is_new)
    except IntegrityError as error:  # a concurrent writer won the race for a unique value
        raise ValidationError(_("The record conflicts with one saved at the same moment: %(error)s")
                              % {"error": error}) from error
    return record


@transaction.atomic
def patient_create(*, user, centre, **fields):
    """Create a patient with a freshly issued pseudonym."""
    access.require_writable(user, centre.code)
    patient = Patient(centre=centre, **fields)
    patient.patient_id = unique_pseudonym(centre.code, lambda pid: Patient.objects.filter(pk=pid).exists())
    return record_save(user=user, record=patient)


@transaction.atomic
def record_delete(*, user, record, expected_version=None):
    """Delete one record (a patient with its whole case); the audit trail keeps what it held."""
    access.require_writable(user, _centre_of(record))
    _lock_patient(record)
    stored = type(record).objects.select_for_update().get(pk=record.pk)
    if expected_version is not None and stored.version != expected_version:
        raise StaleRecordError(stored, [])
    if not isinstance(record, Patient):
        record_check(record=stored, delete=True)
    else:
        case = case_load(stored)
        for child in [case.primary_tumour, *case.metastasectomies, *case.systemic_therapies, *case.follow_ups]:
            if child is not None:
                child._history_user = access.audit_user(user)
                child.delete()
    stored._history_user = access.audit_user(user)
    stored.delete()


@transaction.atomic
def cases_create(*, user, cases, batch_size=2000):
    """Bulk-create whole new cases (patients with all their records), audited row by row.

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
                record.full_clean(exclude=["patient", "centre"], validate_unique=False, validate_constraints=False)
            except ValidationError as error:
                problems.extend(f"{rules.describe(record)}, {column}: {' '.join(messages)}"
                                for column, messages in error.message_dict.items())
        problems.extend(str(v) for v in rules.check_case(case))
    if problems:
        raise ValidationError(problems)
    bulk_create_with_history([c.patient for c in cases], Patient, batch_size=batch_size,
                             default_user=access.audit_user(user))
    for model, pick in ((PrimaryTumour, lambda c: [c.primary_tumour] if c.primary_tumour else []),
                        (Metastasectomy, lambda c: c.metastasectomies),
                        (SystemicTherapy, lambda c: c.systemic_therapies),
                        (FollowUp, lambda c: c.follow_ups)):
        records = [record for case in cases for record in pick(case)]
        bulk_create_with_history(records, model, batch_size=batch_size, default_user=access.audit_user(user))


def existing_patient_ids(patient_ids, chunk=5000):
    """Which of these pseudonyms are already in use (chunked: SQLite caps query parameters)."""
    taken = set()
    for start in range(0, len(patient_ids), chunk):
        taken.update(Patient.objects.filter(pk__in=patient_ids[start:start + chunk]).values_list("pk", flat=True))
    return taken


@contextlib.contextmanager
def one_snapshot():
    """Every read in the block sees the same state of the database, whatever commits meanwhile:
    on PostgreSQL a REPEATABLE READ, read-only transaction (unless already inside a transaction,
    where the isolation level can no longer be set); SQLite's transactions read one snapshot."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


# Audit ids a late commit may lag behind the newest one and still move the data version.
VERSION_WINDOW = 10_000


def data_version(centres=None):
    """A short token that changes whenever a clinical record of `centres` (None: any centre) is
    created, changed or deleted.

    Every change writes an audit row with a new, never reused id. The token holds, for each
    clinical table, the highest id and the number of rows among the newest VERSION_WINDOW audit
    ids, counting only the centres' rows (their patient IDs start with the centre code). The
    count is needed because two concurrent saves may commit in the other order than they drew
    their ids, the later commit adding a row below the highest id. The window keeps every query
    an index range scan, whatever the registry's size; as other centres' rows push a centre's
    rows out of it, its token may change without a change of its data (a cache miss), but a change
    of its data always lands in the window.
    """
    scope = Q()
    for code in centres or ():
        scope |= Q(pid__startswith=f"{code}-")
    marks = []
    for model in CLINICAL_MODELS:
        newest = model.history.aggregate(last=Max("history_id"))["last"] or 0
        # The records' patient_id is a foreign key, which takes no startswith: compare it as text.
        window = model.history.filter(history_id__gt=newest - VERSION_WINDOW).alias(
            pid=Cast("patient_id", CharField())).filter(scope)
        found = window.aggregate(last=Max("history_id"), recent=Count("history_id"))
        marks.append(f"{found['last'] or 0}.{found['recent']}")
    return hashlib.sha256(":".join(marks).encode()).hexdigest()[:12]
