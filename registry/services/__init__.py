"""Every write of clinical data goes through this package: the web forms, the API, the admin,
the bulk import, the cohort generator and the demo data alike (tests/writers.py holds the test
suite to it). Reads shared by several layers are in registry.selectors.

- records: one record at a time (create, change, delete for a reason, restore) and whole new cases in bulk
- bulk: an import's checked plan, written with COPY and its audit rows
- versions: the per-centre data version every write moves
- seals: the audit tables' hash chain, sealed when a transaction that added audit rows commits
- status: a record's data-management status (in progress, complete, verified, locked) and the
  lock every writer obeys
- erasure: one patient erased on a legal request, history copies included, leaving a tombstone
- freezes: the clinical tables copied, unchanged for good, at one instant
"""
from registry.services.bulk import import_write
from registry.services.erasure import patient_erase, patient_erasure_counts
from registry.services.freezes import freeze_create
from registry.services.records import (
    StaleRecordError,
    cases_create,
    patient_create,
    record_check,
    record_delete,
    record_restore,
    record_save,
)
from registry.services.status import RecordLocked, record_status_set

__all__ = ["RecordLocked", "StaleRecordError", "cases_create", "freeze_create", "import_write", "patient_create",
           "patient_erase", "patient_erasure_counts", "record_check", "record_delete", "record_restore", "record_save",
           "record_status_set"]
