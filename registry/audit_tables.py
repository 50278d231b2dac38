"""The audit tables, listed once: the history of every clinical record and of the memberships, the
registry's own logs, django-axes' sign-in logs and the data freezes.

Each of them is
- append-only on PostgreSQL: triggers (django-pgtrigger, installed by this app's migrations) refuse
  every UPDATE and DELETE, whoever sends it: the application, the admin or a psql session;
- sealed into one hash chain (registry/audit_chain.py, manage.py audit_verify), which also catches
  changes made by someone who can switch the triggers off (a database superuser).

Two controlled exceptions: django-axes sets an AccessLog row's logout_time once, at sign-out (that
column is left out of the seals), and manage.py erase_patient deletes the rows naming one patient
(`patient_column`) inside a transaction that has set `registry.erasure`, leaving a tombstone.

SQLite has no such triggers: there the tables are append-only by convention, and audit_verify is
what catches a change. Adding a table is one line in AUDITED, then `manage.py makemigrations`.
"""
from dataclasses import dataclass
from functools import cache, reduce
from operator import or_

import pgtrigger

from registry.models import (
    CLINICAL_MODELS,
    AuditSeal,
    DeletedRecord,
    ErasureTombstone,
    ExportLog,
    FailedSignInLog,
    FieldVerification,
    Freeze,
    FrozenCase,
    ImportRun,
    Membership,
    QueryMessage,
    Restoration,
    SecurityEvent,
    Signature,
    SignInLog,
)

# The transaction-local setting (SET LOCAL) under which erase_patient may delete rows naming a patient.
ERASURE_SETTING = "registry.erasure"


@dataclass(frozen=True)
class Audited:
    model: type
    patient_column: str | None = None  # the column naming the patient: its rows go with an erasure
    set_once: str | None = None  # a column the application fills in once after the insert (not sealed)

    @property
    def table(self):
        return self.model._meta.db_table


AUDITED = (
    *(Audited(model.history.model, patient_column="patient_id") for model in CLINICAL_MODELS),
    Audited(Membership.history.model),
    Audited(SecurityEvent, patient_column="patient_id"),  # reads and refusals naming a patient
    Audited(DeletedRecord, patient_column="patient_id"),  # tombstones: a deleted record's last values
    Audited(Restoration, patient_column="patient_id"),
    Audited(ImportRun),
    Audited(ExportLog),
    Audited(ErasureTombstone),
    Audited(QueryMessage, patient_column="patient_id"),  # every step of a data clarification request
    Audited(SignInLog, set_once="logout_time"),
    Audited(FailedSignInLog),
    Audited(Signature, patient_column="patient_id"),  # investigators' signatures of cases
    Audited(FieldVerification, patient_column="patient_id"),  # source data verification, field by field
    # Data freezes (registry.services.freezes): kept unchanged for good, but a legal erasure takes
    # the erased patient's frozen cases along.
    Audited(Freeze),
    Audited(FrozenCase, patient_column="patient_id"),
)
BY_TABLE = {audited.table: audited for audited in AUDITED}


def erasable():
    """The audit tables whose rows name a patient (an erasure deletes them)."""
    return [audited for audited in AUDITED if audited.patient_column]


def _update_refused(audited):
    if not audited.set_once:
        return pgtrigger.Protect(name="append_only_update", operation=pgtrigger.Update)
    # Refused unless the one column goes from empty to a value and nothing else changes.
    other = [f.name for f in audited.model._meta.concrete_fields if f.column != audited.set_once]
    changed = reduce(or_, [pgtrigger.Q(**{f"old__{name}__df": pgtrigger.F(f"new__{name}")}) for name in other])
    return pgtrigger.Protect(name="append_only_update", operation=pgtrigger.Update,
                             condition=pgtrigger.Q(**{f"old__{audited.set_once}__isnull": False}) | changed)


def _delete_refused(audited):
    if not audited.patient_column:
        return pgtrigger.Protect(name="append_only_delete", operation=pgtrigger.Delete)
    # current_setting(..., true) is NULL where the setting was never made, '' after a transaction
    # that made it has ended.
    outside_erasure = pgtrigger.Condition(f"COALESCE(current_setting('{ERASURE_SETTING}', true), '') = ''")
    return pgtrigger.Protect(name="append_only_delete", operation=pgtrigger.Delete, condition=outside_erasure)


@cache
def triggers():
    """{model: its triggers}: the audit tables and the seals themselves (built once, so that
    registering them again is a no-op)."""
    found = {audited.model: (_update_refused(audited), _delete_refused(audited)) for audited in AUDITED}
    seals = Audited(AuditSeal)
    found[AuditSeal] = (_update_refused(seals), _delete_refused(seals))
    return found


def register_triggers():
    """Called by the app's ready(): the triggers join the models' Meta, hence the migrations."""
    for model, model_triggers in triggers().items():
        pgtrigger.register(*model_triggers)(model)
