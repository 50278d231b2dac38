"""The REDCap repeat instance of a new repeating record (registry.models.instance_number).

A patient's metastasectomies, systemic therapies and follow-up events are each numbered 1, 2, …
in the order they were entered; a number is given once, when the record is created, and never
changes, so a REDCap client that merges on (record, instrument, instance) finds the same record
under the same number however many earlier records are entered later. A new record takes the
number after the highest its patient's table has ever given, its audit table included: a deleted
record's number is not given to another (a client still holding it, or a restore, would meet a
different record under it). Private to registry.services: record_save numbers one record under its
patient's lock, the bulk writer a whole import at once.
"""
from collections import defaultdict

from django.db.models import Max

from registry.models import FollowUp, Metastasectomy, SystemicTherapy

# The repeating tables, and the date that orders the records of one bulk write among themselves
# (a case loaded in bulk is numbered in the order of its dates, as entering it by hand would).
REPEATING = {Metastasectomy: "surgery_date", SystemicTherapy: "start_date", FollowUp: "event_date"}
CHUNK = 500  # patient ids per query (SQLite's limit on query parameters)


def next_instance(model, patient_id, stored):
    """The instance number after those of `stored` (the patient's stored records of `model`) and of
    the records of the patient's audit trail (deleted ones included)."""
    highest = model.history.filter(patient_id=patient_id).aggregate(highest=Max("redcap_instance"))["highest"]
    return max([highest or 0, *(record.redcap_instance or 0 for record in stored)]) + 1


def instances_number(model, records):
    """Give each of `records` (new records of one repeating model) the next instance numbers of
    its patient, in date order: one grouped query per CHUNK patients, not one per record."""
    if model not in REPEATING or not records:
        return
    patients = sorted({record.patient_id for record in records})
    highest = {}
    for start in range(0, len(patients), CHUNK):
        chunk = patients[start:start + CHUNK]
        for table in (model.objects, model.history):  # live rows, and deleted ones' numbers
            for patient_id, number in (table.filter(patient_id__in=chunk).values_list("patient_id")
                                       .annotate(highest=Max("redcap_instance")).order_by()):
                highest[patient_id] = max(highest.get(patient_id) or 0, number or 0)
    date = REPEATING[model]
    by_patient = defaultdict(list)
    for position, record in enumerate(records):
        by_patient[record.patient_id].append((getattr(record, date), position, record))
    for patient_id, new in by_patient.items():
        number = highest.get(patient_id) or 0
        for _date, _position, record in sorted(new, key=lambda item: (item[0] is None, item[0], item[1])):
            number += 1
            record.redcap_instance = number
