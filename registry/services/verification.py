"""Source data verification, field by field: a monitor of the centre (or a coordinator) ticks the
fields of a record checked against the source documents; each tick is a FieldVerification row
(the record, the field, the value checked, by whom, when), written once and never changed.

A field is verified while its newest verification holds the value the record has now
(registry.cases.canonical_value); a field whose value changed since shows as unverified again,
and is verified anew by a new row. The other fields of the record keep theirs.

Verifying the last unverified field of a complete record moves it to verified, through
registry.services.status (the same rule and audit as the Verify button). The Verify button still
verifies a whole record at once (record-level verification): field verification is the finer
record of it, not a precondition. Fields are verified on a record that is complete or verified;
one in progress is still being entered, and a locked one is closed.
"""
import json
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import access, rules
from registry.cases import TABLE_NAMES, canonical_value, centre_of
from registry.models import FieldVerification, Patient
from registry.selectors import case_load
from registry.services.records import StaleRecordError
from registry.services.status import COMPLETE, IN_PROGRESS, VERIFIED, record_status_set, refuse_if_locked


def verifiable_fields(model):
    """The fields of a record a monitor checks against the source: every value entered (not the
    pseudonym, the centre, the patient it belongs to, nor the bookkeeping)."""
    return [f for f in model._meta.concrete_fields
            if f.editable and not f.primary_key and f.name not in ("patient", "centre", "missing_codes")]


def stored_value(record, name):
    """A field's value as a verification stores and compares it: its canonical value as JSON text
    (null, true, 3, "2015-04-01", "R0"), so that no two values read alike; an empty field with a
    missing-data code is its code ({"missing": "UNK"}), which is checked against the source too."""
    value = canonical_value(getattr(record, record._meta.get_field(name).attname))
    if value is None and (code := (record.missing_codes or {}).get(name)):
        value = {"missing": code}
    return json.dumps(value, ensure_ascii=False)


def record_key(record):
    return TABLE_NAMES[type(record)], str(record.pk)


def verifications_of(patient_id):
    """{(table, record pk): {field: its newest FieldVerification}} of a patient's records (one query)."""
    newest = {}
    for row in FieldVerification.objects.filter(patient_id=patient_id).select_related("verified_by"):
        newest.setdefault((row.table, row.record_pk), {})[row.field] = row  # rows come oldest first
    return newest


@dataclass
class FieldState:
    """One field of a record: its value now and its newest verification, which holds while its
    value is the one verified."""

    name: str
    label: str
    value: object
    verification: FieldVerification = None

    @property
    def verified(self):
        return self.verification is not None and self.verification.value == self.value

    @property
    def changed_since(self):
        """Verified once, but the value has changed since."""
        return self.verification is not None and not self.verified


def field_states(record, newest=None):
    """The FieldState of every verifiable field of a stored record, in model order. `newest`: the
    record's {field: newest verification} (from verifications_of; read here when None)."""
    if newest is None:
        newest = verifications_of(record.patient_id).get(record_key(record), {})
    return [FieldState(f.name, f.verbose_name, stored_value(record, f.name), newest.get(f.name))
            for f in verifiable_fields(type(record))]


def progress(record, newest):
    """(fields verified, verifiable fields) of a stored record."""
    states = field_states(record, newest.get(record_key(record), {}))
    return sum(state.verified for state in states), len(states)


@transaction.atomic
def fields_verify(*, user, record, fields, expected_version=None, source=""):
    """Record that `fields` (names) of `record` were checked against the source documents, at the
    values stored now; returns (the record as stored afterwards, the FieldVerification rows written).

    A field already verified at its present value is not written again. When every field of a
    complete record is then verified, the record moves to verified. Raises PermissionDenied unless
    the user verifies records of the centre (registry.access.can_verify_fields), StaleRecordError
    when the record has a newer version than `expected_version` (the values the monitor saw are
    not the ones stored), RecordLocked for a locked record or patient, and ValidationError for a
    record in progress or an unknown field."""
    centre = centre_of(record)
    if not access.can_verify_fields(user, centre):
        raise PermissionDenied(_("Your role may not verify records of centre %(centre)s.") % {"centre": centre})
    # The patient's row first, as every write does: the values cannot change while they are noted.
    patient = Patient.objects.select_for_update().filter(pk=record.patient_id).first()
    stored = None
    if patient is not None:
        stored = patient if isinstance(record, Patient) else next(
            (r for r in case_load(patient).records() if type(r) is type(record) and r.pk == record.pk), None)
    if stored is None:
        raise type(record).DoesNotExist(f"{rules.describe(record)} is no longer in the registry.")
    if expected_version is not None and stored.version != expected_version:
        raise StaleRecordError(stored, [])
    refuse_if_locked(stored, patient)
    if stored.status == IN_PROGRESS:
        raise ValidationError(_("%(record)s is still in progress: its fields are verified once it is complete.")
                              % {"record": rules.describe(stored)})
    names = {f.name for f in verifiable_fields(type(stored))}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise ValidationError({"fields": [_("%(record)s has no field %(field)s to verify.") % {
            "record": rules.describe(stored), "field": name} for name in unknown]})
    if not fields:
        raise ValidationError({"fields": [_("Tick the fields you have checked against the source documents.")]})
    table, pk = record_key(stored)
    now, user_row = timezone.now(), access.audit_user(user)
    written = [FieldVerification.objects.create(
        patient_id=stored.patient_id, table=table, record_pk=pk, field=state.name, value=state.value,
        verified_by=user_row, username=user_row.get_username() if user_row else "", verified_at=now)
        for state in field_states(stored) if state.name in fields and not state.verified]
    if stored.status == COMPLETE and all(state.verified for state in field_states(stored)):
        stored = record_status_set(user=user, record=stored, status=VERIFIED, source=source,
                                   reason=_("every field verified"))
    return stored, written
