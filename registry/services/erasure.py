"""Erasing one patient on a documented legal request (manage.py erase_patient): the patient, every
record of the case, every history copy of them and every other audit row naming the patient (the
audit tables with a `patient_column` in registry.audit_tables: a read log added there is erased too),
in one transaction, leaving a tombstone that names no patient.

The audit tables refuse DELETE on PostgreSQL (registry.audit_tables); this transaction alone sets
`registry.erasure` (SET LOCAL, gone at its end), under which the rows naming a patient may go. The
hash chain stays verifiable: the seals keep the keyed digests of the erased rows, and audit_verify
accepts a sealed row missing only when a tombstone with a valid keyed digest names it.
"""
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import access, audit_chain
from registry.audit_tables import ERASURE_SETTING, erasable
from registry.models import CLINICAL_MODELS, ErasureTombstone, Patient, Query, Submission
from registry.services.versions import bump_data_version


def _records(patient_id):
    """{clinical model: primary keys of the patient's rows}."""
    return {model: list(model._base_manager.filter(patient_id=patient_id).values_list("pk", flat=True))
            for model in CLINICAL_MODELS}


def _audit_rows(patient_id):
    """{audit table: ids of the rows naming the patient}."""
    return {audited.table: list(audited.model._base_manager.filter(**{audited.patient_column: patient_id})
                                .order_by("pk").values_list("pk", flat=True))
            for audited in erasable()}


def _submissions(records):
    """The create requests remembered for these records (their keys name the records)."""
    named = Q(pk__in=[])
    for model, keys in records.items():
        named |= Q(table=model._meta.db_table, record_pk__in=[str(key) for key in keys])
    return Submission.objects.filter(named)


def _counts(records, audit_rows, patient_id):
    counts = {model._meta.db_table: len(keys) for model, keys in records.items()}
    counts.update({table: len(ids) for table, ids in audit_rows.items()})
    counts[Submission._meta.db_table] = _submissions(records).count()
    # the data clarification requests about the patient (their messages are audit rows, erased with them)
    counts[Query._meta.db_table] = Query.objects.filter(patient_id=patient_id).count()
    return {table: count for table, count in counts.items() if count}


def patient_erasure_counts(*, patient_id):
    """{table: rows naming the patient} that patient_erase would delete; empty for an unknown pseudonym."""
    return _counts(_records(patient_id), _audit_rows(patient_id), patient_id)


def _allow_audit_deletes(reference):
    """'' closes the bypass again: at the end of the erasure, even inside a caller's transaction."""
    if connection.vendor == "postgresql":  # SQLite has no triggers to pass
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config(%s, %s, true)", [ERASURE_SETTING, reference])


def _patient_column(model):
    return (model._meta.pk if model is Patient else model._meta.get_field("patient")).column


def _delete_records(patient_id):
    """Children first. Raw DELETEs: the ORM's delete would have django-simple-history write a '-'
    history row, a new copy of what is being erased."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for model in reversed(CLINICAL_MODELS):
            cursor.execute(f"DELETE FROM {quote(model._meta.db_table)} WHERE {quote(_patient_column(model))} = %s",
                           [patient_id])


@transaction.atomic
def patient_erase(*, user, patient_id, reference):
    """Erase everything naming one patient, on the legal request `reference`; returns the tombstone.

    Only a coordinator may. Raises Patient.DoesNotExist when no row names the pseudonym (none of the
    patient's records, no history copy), ValidationError without a reference.
    """
    if not access.is_coordinator(user):
        raise PermissionDenied(_("Only a coordinator may erase a patient."))
    reference = reference.strip()
    if not reference:
        raise ValidationError(_("Give the reference of the legal request."))
    key = audit_chain.chain_key()
    Patient.objects.select_for_update().filter(pk=patient_id).first()  # every write locks the case first
    records, audit_rows = _records(patient_id), _audit_rows(patient_id)
    counts = _counts(records, audit_rows, patient_id)
    if not counts:
        raise Patient.DoesNotExist(_("No patient %(id)s is in the registry or its history.") % {"id": patient_id})
    centre = patient_id.split("-")[0]  # a pseudonym names its centre, and never moves
    _allow_audit_deletes(reference)
    tombstone = ErasureTombstone(at=timezone.now(), username=user.get_username(), reference=reference[:200],
                                 centre=centre, patient_hash=audit_chain.pseudonym_hash(key, patient_id),
                                 counts=counts, erased_rows={table: ids for table, ids in audit_rows.items() if ids})
    tombstone.mac = audit_chain.tombstone_mac(key, tombstone)
    tombstone.save()
    for audited in erasable():
        audited.model._base_manager.filter(**{audited.patient_column: patient_id}).delete()
    _submissions(records).delete()
    Query.objects.filter(patient_id=patient_id).delete()  # after their messages (erasable audit rows)
    _delete_records(patient_id)
    _allow_audit_deletes("")
    if records[Patient]:
        bump_data_version([centre])
    return tombstone
