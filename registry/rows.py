"""Rows of the dictionary's tables (dicts keyed by column name, typed values) ↔ model instances.

The cohort generator and the bulk import both produce such rows; `cases_from_rows` groups them
into one unsaved `rules.Case` per patient, ready for the rules and `services.cases_create`.
"""
from collections import defaultdict

from registry.dictionary import TABLE_MODELS
from registry.models import Patient
from registry.rules import Case


def instance_from_row(model, row):
    """An unsaved model instance; `centre` is a code and `patient_id` a pseudonym, as in the dictionary."""
    values = dict(row)
    if model is Patient:
        values["centre_id"] = values.pop("centre")
    return model(**values)


def cases_from_rows(tables):
    """{table name: [row, ...]} → [Case, ...] in the order the patients appear."""
    children = defaultdict(lambda: defaultdict(list))
    for table, model in TABLE_MODELS.items():
        if model is Patient:
            continue
        for row in tables.get(table, ()):
            children[table][row["patient_id"]].append(instance_from_row(model, row))
    cases = []
    for row in tables.get("patients", ()):
        patient = instance_from_row(Patient, row)
        pid = patient.patient_id
        tumours = children["primary_tumours"].get(pid, [])
        for record in [*tumours, *(r for t in TABLE_MODELS if t not in ("patients", "primary_tumours")
                                   for r in children[t].get(pid, []))]:
            record.patient = patient  # share the instance so rules see one patient
        cases.append(Case(
            patient=patient,
            primary_tumour=tumours[0] if tumours else None,
            metastasectomies=children["metastasectomies"].get(pid, []),
            systemic_therapies=children["systemic_therapies"].get(pid, []),
            follow_ups=children["follow_up"].get(pid, []),
        ))
    return cases
