"""On PostgreSQL the audit tables refuse UPDATE and DELETE, from SQL and from the ORM alike, while
every write through registry.services still adds its audit rows (registry/audit_tables.py)."""
import pytest
from axes.models import AccessLog
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from registry import services
from registry.audit_tables import AUDITED
from registry.models import AuditSeal, Metastasectomy, Patient, SecurityEvent

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql",
                       reason="the append-only triggers exist on PostgreSQL only (SQLite has no such triggers)"),
]


def refused(statement):
    with pytest.raises(DatabaseError, match="pgtrigger: Cannot (update|delete) rows"), transaction.atomic():
        statement()


def sql(statement, *params):
    def run():
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
    return run


def test_every_audit_table_and_the_seals_have_both_triggers_in_the_migrated_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE tgname LIKE 'pgtrigger_%%'")
        installed = cursor.fetchall()
    for table in [audited.table for audited in AUDITED] + [AuditSeal._meta.db_table]:
        names = {name.rsplit("_", 1)[0] for found, name in installed if found == table}
        assert names == {"pgtrigger_append_only_update", "pgtrigger_append_only_delete"}, table


def test_a_history_row_refuses_update_and_delete_by_sql_and_by_the_orm(nurse, case):
    history = Patient.history.model
    row = history.objects.get(patient_id=case.pk)
    table = history._meta.db_table
    refused(sql(f"UPDATE {table} SET birth_year = 1950 WHERE history_id = %s", row.history_id))
    refused(sql(f"DELETE FROM {table} WHERE history_id = %s", row.history_id))
    refused(lambda: history.objects.filter(pk=row.pk).update(histology="UPS"))
    refused(lambda: history.objects.filter(pk=row.pk).delete())
    assert history.objects.get(pk=row.pk).birth_year == row.birth_year


def test_writes_through_the_services_still_add_their_audit_rows(nurse, case):
    pm = Metastasectomy.objects.get(patient=case)
    pm.max_lesion_diameter_mm = 30
    services.record_save(user=nurse, record=pm)
    services.record_delete(user=nurse, record=Patient.objects.get(pk=case.pk), reason="entered in error")
    assert [h.history_type for h in Metastasectomy.history.filter(id=pm.id).order_by("history_id")] == ["+", "~", "-"]
    assert Patient.history.filter(patient_id=case.pk, history_type="-").exists()


def test_a_security_event_refuses_update_and_delete(nurse):
    event = SecurityEvent.objects.create(user=nurse, username="nurse", event=SecurityEvent.TWO_FACTOR_PASSED)
    refused(lambda: SecurityEvent.objects.filter(pk=event.pk).update(username="someone else"))
    refused(lambda: SecurityEvent.objects.filter(pk=event.pk).delete())


def test_a_sign_in_log_takes_its_logout_time_once_and_nothing_else():
    log = AccessLog.objects.create(username="nurse", attempt_time=timezone.now(), session_hash="s")
    AccessLog.objects.filter(pk=log.pk).update(logout_time=timezone.now())  # as django-axes does at sign-out
    refused(lambda: AccessLog.objects.filter(pk=log.pk).update(logout_time=timezone.now()))
    refused(lambda: AccessLog.objects.filter(pk=log.pk).update(username="someone else"))
    refused(lambda: AccessLog.objects.filter(pk=log.pk).delete())


def test_the_seals_refuse_update_and_delete():
    seal = AuditSeal.objects.create(table="t", last_id=1, rows=1, columns=[], row_digests=b"", digest="d",
                                    sealed_at=timezone.now())
    refused(lambda: AuditSeal.objects.filter(pk=seal.pk).update(last_id=2))
    refused(lambda: AuditSeal.objects.filter(pk=seal.pk).delete())


def test_a_user_named_in_the_audit_trail_cannot_be_deleted_from_under_it(nurse, case):
    """The history keeps who made each change (its user column would be set to NULL): deactivate instead."""
    refused(lambda: nurse.delete())
    assert Metastasectomy.history.filter(history_user=nurse).exists()
