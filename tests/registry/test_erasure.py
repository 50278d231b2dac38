"""Erasing one patient on a legal request (manage.py erase_patient): the case and every history copy
go in one transaction, a tombstone without the pseudonym stays, and the hash chain still verifies."""
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from registry import audit_chain, services
from registry.models import (
    CLINICAL_MODELS,
    DeletedRecord,
    ErasureTombstone,
    Metastasectomy,
    Patient,
    Restoration,
    SecurityEvent,
    Submission,
)
from registry.security import audit
from registry.services.seals import tables_seal
from tests import factories as f
from tests.audit import behind_the_back, verify, verify_fails

pytestmark = pytest.mark.django_db
REQUEST = "DPO-2026-017 (Art. 17 GDPR)"


def erase(pseudonym, user="coordinator", *more):
    out = io.StringIO()
    call_command("erase_patient", pseudonym, "--reference", REQUEST, "--user", user, *more, stdout=out)
    return out.getvalue()


def rows_naming(pseudonym):
    found = {model.__name__: model.objects.filter(patient_id=pseudonym).count() for model in CLINICAL_MODELS}
    found.update({model.history.model.__name__: model.history.filter(patient_id=pseudonym).count()
                  for model in CLINICAL_MODELS})
    found["SecurityEvent"] = SecurityEvent.objects.filter(patient_id=pseudonym).count()  # reads of the patient
    for model in (DeletedRecord, Restoration):  # tombstones keep a deleted record's values
        found[model.__name__] = model.objects.filter(patient_id=pseudonym).count()
    return {name: count for name, count in found.items() if count}


@pytest.fixture
def two_cases(coordinator, nurse, case):
    """`case` (changed once since, so its history holds two copies of a record) and another patient."""
    pm = Metastasectomy.objects.get(patient=case)
    pm.max_lesion_diameter_mm = 31
    services.record_save(user=nurse, record=pm, idempotency_key=None)
    services.record_save(user=nurse, record=f.follow_up(case, event_date=f.D(2016, 6, 1)), idempotency_key="form-1")
    other = services.patient_create(user=nurse, centre=f.centre("MUC"), **f.patient_values())
    services.record_save(user=nurse, record=f.metastasectomy(other))
    audit.log_read(None, user=nurse, what="patient_detail", patient_ids=[case.pk])  # the log names the patient
    tables_seal()
    return case, other


def test_erasure_removes_the_case_and_every_history_copy_and_leaves_a_tombstone_without_the_pseudonym(two_cases):
    case, other = two_cases
    assert rows_naming(case.pk)["HistoricalMetastasectomy"] == 2
    report = erase(case.pk, "coordinator", "--yes")
    assert "Erased" in report and not rows_naming(case.pk)
    assert not Submission.objects.filter(key="form-1").exists()
    assert rows_naming(other.pk) == {"Patient": 1, "Metastasectomy": 1, "HistoricalPatient": 1,
                                     "HistoricalMetastasectomy": 1}
    tombstone = ErasureTombstone.objects.get()
    assert (tombstone.username, tombstone.reference, tombstone.centre) == ("coordinator", REQUEST, "MUC")
    assert tombstone.counts["registry_historicalmetastasectomy"] == 2 and tombstone.counts["registry_patient"] == 1
    assert tombstone.counts["registry_submission"] == 1
    assert case.pk not in str([getattr(tombstone, field.attname) for field in ErasureTombstone._meta.fields])
    assert tombstone.patient_hash == audit_chain.pseudonym_hash(audit_chain.chain_key(), case.pk)


def test_the_hash_chain_verifies_after_an_erasure_and_counts_the_erased_rows(two_cases):
    case, _other = two_cases
    history_rows = len(rows_naming(case.pk))
    erase(case.pk, "coordinator", "--yes")
    tables_seal()  # the tombstone (sealed at commit in production)
    report = verify()
    assert "The audit trail is intact." in report
    line = next(row for row in report.splitlines() if row.startswith("registry_historicalmetastasectomy "))
    assert " 2 erased" in " ".join(line.split()) and history_rows


def test_a_tombstone_altered_to_excuse_another_deletion_fails_verification(two_cases):
    case, other = two_cases
    erase(case.pk, "coordinator", "--yes")
    tombstone = ErasureTombstone.objects.get()
    extra = Metastasectomy.history.get(patient_id=other.pk).history_id
    behind_the_back(Metastasectomy.history.model, "DELETE FROM {table} WHERE history_id = %s", extra)
    rows = dict(tombstone.erased_rows, registry_historicalmetastasectomy=[
        *tombstone.erased_rows["registry_historicalmetastasectomy"], extra])
    behind_the_back(ErasureTombstone, "UPDATE {table} SET erased_rows = %s WHERE id = %s",
                    json.dumps(rows), tombstone.pk)
    assert f"erasure tombstone {tombstone.pk} was altered or forged" in verify_fails()


def test_a_patient_deleted_earlier_still_has_its_history_erased(two_cases, coordinator):
    case, _other = two_cases
    services.record_delete(user=coordinator, record=Patient.objects.get(pk=case.pk), reason="entered in error")
    assert "HistoricalPatient" in rows_naming(case.pk)
    erase(case.pk, "coordinator", "--yes")
    assert not rows_naming(case.pk)
    assert "registry_patient" not in ErasureTombstone.objects.get().counts


def test_an_erasure_leaves_no_clinical_value_in_a_deletions_tombstone(two_cases, nurse, coordinator):
    """A deleted record's tombstone keeps its values for a restore: an erasure takes the tombstones
    (and their restorations) of the patient along, and the hash chain still verifies."""
    case, other = two_cases
    services.record_delete(user=nurse, record=case.follow_ups.order_by("event_date").last(), reason="entered twice")
    services.record_restore(user=coordinator, deleted_record=DeletedRecord.objects.get(), reason="a real visit")
    services.record_delete(user=nurse, record=Patient.objects.get(pk=case.pk), reason="withdrew consent")
    services.record_delete(user=nurse, record=other.metastasectomies.get(), reason="wrong patient")
    assert rows_naming(case.pk)["DeletedRecord"] == 2 and rows_naming(case.pk)["Restoration"] == 1
    tables_seal()
    erase(case.pk, "coordinator", "--yes")
    assert not rows_naming(case.pk)
    assert not any(case.pk in str(values) for values in DeletedRecord.objects.values_list("values", flat=True))
    assert DeletedRecord.objects.get().patient_id == other.pk  # another patient's tombstone stays
    counts = ErasureTombstone.objects.get().counts
    assert (counts["registry_deletedrecord"], counts["registry_restoration"]) == (2, 1)
    tables_seal()
    assert "The audit trail is intact." in verify()


def test_an_unknown_pseudonym_is_refused_and_nothing_is_erased(two_cases):
    with pytest.raises(CommandError, match="No patient MUC-NOSUCH is in the registry or its history"):
        erase("MUC-NOSUCH", "coordinator", "--yes")
    assert not ErasureTombstone.objects.exists()


def test_without_yes_the_pseudonym_must_be_typed_to_confirm(two_cases, monkeypatch):
    case, _other = two_cases
    monkeypatch.setattr("sys.stdin", io.StringIO("no\n"))
    with pytest.raises(CommandError, match="Not confirmed: nothing was erased"):
        erase(case.pk)
    assert rows_naming(case.pk) and not ErasureTombstone.objects.exists()
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{case.pk}\n"))
    erase(case.pk)
    assert not rows_naming(case.pk)


def test_only_a_coordinator_may_erase(two_cases):
    case, _other = two_cases
    with pytest.raises(CommandError, match="Only a coordinator may erase a patient"):
        erase(case.pk, "nurse", "--yes")
    assert rows_naming(case.pk)["Patient"] == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the append-only triggers exist on PostgreSQL only")
def test_the_erasure_bypass_ends_with_the_erasure(two_cases):
    case, other = two_cases
    erase(case.pk, "coordinator", "--yes")
    with pytest.raises(DatabaseError, match="Cannot delete rows"), transaction.atomic():
        Metastasectomy.history.filter(patient_id=other.pk).delete()
