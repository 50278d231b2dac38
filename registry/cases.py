"""A patient's case: the patient and all their records, the unit every cross-record rule is checked
on. This module is the one place a case is put together, whether from the database
(registry.selectors.case_load), with a pending change applied (services), from an import's stored
and new records (transfer.importing.merge), or from rows of the dictionary's tables (the cohort
generator and services.cases_create).
"""
from collections import defaultdict
from dataclasses import dataclass, field

from registry.dictionary import TABLE_MODELS
from registry.models import FollowUp, Metastasectomy, Patient, PrimaryTumour, SystemicTherapy

COLLECTIONS = {Metastasectomy: "metastasectomies", SystemicTherapy: "systemic_therapies", FollowUp: "follow_ups"}


@dataclass
class Case:
    """One patient's records, saved or not (the rules only read attributes)."""

    patient: object
    primary_tumour: object = None
    metastasectomies: list = field(default_factory=list)
    systemic_therapies: list = field(default_factory=list)
    follow_ups: list = field(default_factory=list)

    def records(self):
        yield self.patient
        if self.primary_tumour is not None:
            yield self.primary_tumour
        yield from self.metastasectomies
        yield from self.systemic_therapies
        yield from self.follow_ups


def assemble(patient, records):
    """The case of `patient` holding `records` (any mix of its tumour and child records, in order)."""
    case = Case(patient=patient)
    for record in records:
        if isinstance(record, PrimaryTumour):
            case.primary_tumour = record
        else:
            getattr(case, COLLECTIONS[type(record)]).append(record)
    return case


def case_with(case, record, *, delete=False):
    """The case as it would be after saving (or deleting) `record`."""
    if isinstance(record, Patient):
        return assemble(record, list(case.records())[1:])
    kept = [r for r in list(case.records())[1:] if not _same_record(r, record)]
    return assemble(case.patient, kept if delete else [*kept, record])


def _same_record(stored, record):
    if type(stored) is not type(record):
        return False
    return isinstance(record, PrimaryTumour) or (record.pk is not None and stored.pk == record.pk)


def centre_of(record):
    """A record's centre, without a query: a patient's own, or the one its pseudonym names."""
    return record.centre_id if isinstance(record, Patient) else record.patient_id.split("-", 1)[0]


def instance_from_row(model, row):
    """An unsaved model instance; `centre` is a code and `patient_id` a pseudonym, as in the dictionary."""
    values = dict(row)
    if model is Patient:
        values["centre_id"] = values.pop("centre")
    return model(**values)


def cases_from_rows(tables):
    """{table name: [row, ...]} -> [Case, ...] in the order the patients appear."""
    records = defaultdict(list)
    for table, model in TABLE_MODELS.items():
        if model is not Patient:
            for row in tables.get(table, ()):
                records[row["patient_id"]].append(instance_from_row(model, row))
    cases = []
    for row in tables.get("patients", ()):
        patient = instance_from_row(Patient, row)
        for record in records[patient.patient_id]:
            record.patient = patient  # share the instance so rules see one patient
        cases.append(assemble(patient, records[patient.patient_id]))
    return cases
