"""A patient's case: the patient and all their records, the unit every cross-record rule is checked
on. This module is the one place a case is put together, whether from the database
(registry.selectors.case_load), with a pending change applied (services), from an import's stored
and new records (transfer.importing.merge), or from rows of the dictionary's tables (the cohort
generator and services.cases_create).
"""
import datetime
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.serializers.json import DjangoJSONEncoder

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


TABLE_OF = {model: table for table, model in TABLE_MODELS.items()}


class _ExactJSONEncoder(DjangoJSONEncoder):
    """Django's, but time stamps keep their microseconds (it rounds them to milliseconds)."""

    def default(self, o):
        return o.isoformat() if isinstance(o, datetime.datetime) else super().default(o)


def stored_values(records):
    """{table: [row]} of stored records, every column by its attribute name, as JSON (dates and
    numbers as text): what a deletion's tombstone keeps, and `records_from_values` makes records of."""
    values = defaultdict(list)
    for record in records:
        row = {f.attname: f.value_from_object(record) for f in type(record)._meta.concrete_fields}
        values[TABLE_OF[type(record)]].append(json.loads(json.dumps(row, cls=_ExactJSONEncoder)))
    return dict(values)


def records_from_values(values):
    """The unsaved records of `stored_values`, parents first, each with its stored primary key."""
    records = []
    for table, model in TABLE_MODELS.items():
        fields = {f.attname: f for f in model._meta.concrete_fields}
        for row in values.get(table, ()):
            records.append(model(**{name: fields[name].to_python(value) for name, value in row.items()
                                    if name in fields}))
    return records

# --- the case as signed: one canonical text, and its digest -----------------------------------

TABLE_NAMES = {model: name for name, model in TABLE_MODELS.items()}
# When a record was stored says nothing of what it holds; its version counts every change.
# A signature attests the data: a record's place in the data-management cycle (its status, and the
# version a status move counts up) is not part of it, so verifying or locking a signed case keeps the
# signature; any change of a value breaks it.
NOT_SIGNED = ("created_at", "updated_at", "status", "version")


def canonical_value(value):
    """A stored value as the signature and the field verification compare it: dates in ISO form,
    decimals without trailing zeros (15.0 and 15 are one value), the rest as JSON has it."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def record_values(record):
    """{column: canonical value} of every stored column of a record, but its timestamps."""
    return {f.attname: canonical_value(getattr(record, f.attname))
            for f in type(record)._meta.concrete_fields if f.name not in NOT_SIGNED}


def case_canonical(case):
    """The whole case as one canonical text (UTF-8 JSON, keys sorted): every record of every table,
    in table order and then by primary key, with all its values, its status and its version."""
    records = sorted(case.records(), key=lambda r: (list(TABLE_NAMES).index(type(r)), str(r.pk).zfill(20)))
    rows = [{"table": TABLE_NAMES[type(r)], "pk": str(r.pk), "values": record_values(r)} for r in records]
    return json.dumps(rows, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def case_digest(case):
    """SHA-256 (hex) of case_canonical: what a signature stores, and checks the case against."""
    return hashlib.sha256(case_canonical(case)).hexdigest()
