"""The hash chain over the audit tables: rows are sealed when their transaction commits, and
`manage.py audit_verify` names the table and the row of any change made behind the application's back
(on PostgreSQL by someone who switched the append-only triggers off: a database superuser)."""
import io

import pytest
from axes.models import AccessLog
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from registry import cases, services
from registry.models import AuditSeal, FollowUp, Metastasectomy, Patient, SecurityEvent
from registry.services.seals import tables_seal
from tests import factories as f
from tests.audit import behind_the_back, verify, verify_fails

pytestmark = pytest.mark.django_db


@pytest.fixture
def sealed(nurse, case):
    """A case with a changed record, a security event and a sign-in with its sign-out, all sealed."""
    pm = Metastasectomy.objects.get(patient=case)
    pm.max_lesion_diameter_mm = 22
    services.record_save(user=nurse, record=pm)
    SecurityEvent.objects.create(user=nurse, username="nurse", event=SecurityEvent.TWO_FACTOR_PASSED)
    AccessLog.objects.create(username="nurse", attempt_time=timezone.now(), session_hash="s")
    tables_seal()
    return pm


def test_an_untouched_audit_trail_verifies(sealed):
    report = verify()
    assert "The audit trail is intact." in report
    line = next(row for row in report.splitlines() if row.startswith("registry_historicalmetastasectomy "))
    assert line.split()[1:4] == [str(Metastasectomy.history.count()), "rows", "checked"] and line.endswith("OK")


def test_a_changed_sealed_history_row_fails_naming_its_table_and_row(sealed):
    row = Metastasectomy.history.filter(id=sealed.id).order_by("history_id").first()
    behind_the_back(Metastasectomy.history.model, "UPDATE {table} SET max_lesion_diameter_mm = 12 WHERE history_id = %s",
                    row.history_id)
    message = verify_fails()
    assert f"registry_historicalmetastasectomy: row {row.history_id} was changed" in message
    assert "registry_historicalpatient" not in message


def test_a_deleted_sealed_history_row_fails_naming_its_table_and_row(sealed):
    row = FollowUp.history.get()
    behind_the_back(FollowUp.history.model, "DELETE FROM {table} WHERE history_id = %s", row.history_id)
    assert f"registry_historicalfollowup: row {row.history_id} was deleted" in verify_fails()


def test_a_changed_security_event_fails(sealed):
    behind_the_back(SecurityEvent, "UPDATE {table} SET username = 'someone else'")
    assert "registry_securityevent: row" in verify_fails()


def test_the_sign_out_time_axes_fills_in_after_the_seal_is_no_change(sealed):
    AccessLog.objects.filter(logout_time__isnull=True).update(logout_time=timezone.now())  # as at sign-out
    assert "The audit trail is intact." in verify()


def test_a_seal_altered_or_taken_out_of_the_chain_fails(sealed):
    first, *_others = AuditSeal.objects.order_by("id")
    behind_the_back(AuditSeal, "UPDATE {table} SET last_id = last_id + 1 WHERE id = %s", first.pk)
    assert f"seal {first.pk} ({first.table}) was altered" in verify_fails()
    behind_the_back(AuditSeal, "DELETE FROM {table} WHERE id = %s", first.pk)
    assert "does not follow the seal before it" in verify_fails()


def test_seals_made_with_another_key_do_not_verify(sealed, settings):
    settings.AUDIT_CHAIN_KEY = "another-key"
    assert "was altered" in verify_fails()


def test_rows_written_after_the_last_seal_are_counted_as_not_sealed_yet(sealed):
    SecurityEvent.objects.create(username="nurse", event=SecurityEvent.TWO_FACTOR_FAILED)
    report = verify()
    line = next(row for row in report.splitlines() if row.startswith("registry_securityevent "))
    assert "1 not sealed yet" in " ".join(line.split()) and "The audit trail is intact." in report


def test_a_write_through_the_services_is_sealed_when_it_commits(nurse, django_capture_on_commit_callbacks):
    tables_seal()  # whatever the database held before this test
    with django_capture_on_commit_callbacks(execute=True):
        patient = services.patient_create(user=nurse, centre=f.centre("MUC"), **f.patient_values())
    seal = AuditSeal.objects.filter(table=Patient.history.model._meta.db_table).last()
    assert seal is not None and seal.last_id == Patient.history.get(patient_id=patient.pk).history_id


def test_the_bulk_copy_path_seals_its_audit_rows_when_it_commits(nurse, django_capture_on_commit_callbacks):
    tables_seal()
    patient = f.Patient(patient_id="MUC-BULK01", centre=f.centre("MUC"), **f.patient_values())
    new = cases.Case(patient=patient, metastasectomies=[f.metastasectomy(patient)], follow_ups=[f.follow_up(patient)])
    with django_capture_on_commit_callbacks(execute=True):
        services.cases_create(user=nurse, cases=[new])
    for model in (Patient, Metastasectomy, FollowUp):
        table = model.history.model._meta.db_table
        assert AuditSeal.objects.filter(table=table).last().last_id == model.history.get().history_id, table
    assert "The audit trail is intact." in verify()


def test_audit_seal_seals_what_is_left(nurse):
    SecurityEvent.objects.create(username="nurse", event=SecurityEvent.TWO_FACTOR_FAILED)
    out = io.StringIO()
    call_command("audit_seal", stdout=out)
    assert "registry_securityevent" in out.getvalue()
    line = next(row for row in verify().splitlines() if row.startswith("registry_securityevent "))
    assert "0 not sealed yet" in " ".join(line.split())


def test_verify_without_the_key_says_what_to_set(settings):
    settings.AUDIT_CHAIN_KEY = None
    assert "Set AUDIT_CHAIN_KEY" in verify_fails()


def test_a_column_added_to_an_audit_table_later_leaves_the_older_seals_valid(sealed):
    """As a migration adding a field with a default to a clinical record does to its history table."""
    table = connection.ops.quote_name(Patient.history.model._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # as in tests.audit.triggers_off()
        cursor.execute(f"ALTER TABLE {table} ADD COLUMN later_field boolean NOT NULL DEFAULT true")
    assert "The audit trail is intact." in verify()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the seal's table lock is PostgreSQL's (SQLite lets one writer in at a time)")
@pytest.mark.django_db(transaction=True)
def test_a_table_another_transaction_is_writing_is_sealed_once_that_transaction_ends():
    """That transaction's row has its id already, below the id of a row committed after it: a seal
    made meanwhile would cover the later row and leave the earlier one outside every seal."""
    from tests.test_faults import other_connection

    with other_connection() as other:
        other.execute("INSERT INTO registry_securityevent (at, username, event, detail, what, centres, patient_id) "
                      "VALUES (now(), 'nurse', '2fa-failed', '', '', '', '')")
        SecurityEvent.objects.create(username="nurse", event=SecurityEvent.TWO_FACTOR_PASSED)  # committed
        assert tables_seal(["registry_securityevent"]) == []  # skipped, not waited for
        other.commit()
    [seal] = tables_seal(["registry_securityevent"])
    assert seal.rows == 2 and "The audit trail is intact." in verify()
