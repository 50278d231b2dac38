"""Cross-record rules of the data dictionary, one small function per rule.

Each rule lives once: a rule about one record (a date not in the future, surgery not before the
diagnosis, a code from the list) is the model's (field validators, clean(), database constraints);
a rule that compares records of a case is here. So a nurse sees one message per error.

Every write path (forms, admin, import, API, the cohort generator) builds the *merged* state of
one patient's case (registry.cases) — what is in the database with the pending change applied — and calls
`check_case`. The functions only read attributes, so they work on saved or unsaved model
instances alike and never touch the database themselves.

A violation names every record and column involved; the first is where a form shows it.
"""
import datetime
from dataclasses import dataclass

from django.utils.translation import gettext as _

from registry.index_date import index_operation


@dataclass
class Violation:
    refs: list  # [(record, column), ...], the first is where the problem is shown
    message: str

    @property
    def record(self):
        return self.refs[0][0]

    @property
    def column(self):
        return self.refs[0][1]

    def involves(self, record):
        return any(ref is record for ref, _column in self.refs)

    def __str__(self):
        return f"{describe(self.record)}, {self.column}: {self.message}"


def describe(record):
    """A record in words a study nurse recognises, e.g. 'follow-up event (death, 2020-03-01)', its
    codes in their labels of the active language."""
    name = type(record)._meta.verbose_name if hasattr(type(record), "_meta") else type(record).__name__
    detail = {
        "Patient": lambda r: r.patient_id or _("new patient"),
        "PrimaryTumour": lambda r: r.patient_id,
        "Metastasectomy": lambda r: iso(r.surgery_date),
        "SystemicTherapy": lambda r: f"{r.get_regimen_display()}, {iso(r.start_date)}",
        "FollowUp": lambda r: f"{r.get_event_display()}, {iso(r.event_date)}",
    }.get(type(record).__name__)
    return f"{name} ({detail(record)})" if detail else str(name)


def iso(value):
    return value.isoformat() if value else "?"


DATE_COLUMNS = {
    "Patient": ("lung_mets_diagnosis_date",),
    "PrimaryTumour": ("diagnosis_date", "surgery_date", "radiotherapy_end_date"),
    "Metastasectomy": ("surgery_date",),
    "SystemicTherapy": ("start_date", "end_date"),
    "FollowUp": ("event_date",),
}


def dated_values(case):
    """Every (record, column, date) of the case that holds a date."""
    for record in case.records():
        for column in DATE_COLUMNS.get(type(record).__name__, ()):
            value = getattr(record, column, None)
            if value is not None:
                yield record, column, value


def first_metastasectomy(case):
    return index_operation(case.metastasectomies)


def deaths(case):
    return [fu for fu in case.follow_ups if fu.event == "death"]


# --- the rules -------------------------------------------------------------------------------

def no_dates_before_birth(case):
    """No date of the case lies before the patient's year of birth: the dictionary's
    "birth_year ≤ year of diagnosis_date", applied to every date (it also catches typos like 0777)."""
    birth_year = case.patient.birth_year
    if birth_year is None:
        return []
    return [
        Violation([(record, column), (case.patient, "birth_year")],
                  _("The date %(date)s is before the year of birth %(year)s.")
                  % {"date": value.isoformat(), "year": birth_year})
        for record, column, value in dated_values(case) if value.year < birth_year
    ]


def lung_metastases_not_after_first_metastasectomy(case):
    first, patient = first_metastasectomy(case), case.patient
    if first is None or patient.lung_mets_diagnosis_date is None:
        return []
    if patient.lung_mets_diagnosis_date <= first.surgery_date:
        return []
    return [Violation(
        [(first, "surgery_date"), (patient, "lung_mets_diagnosis_date")],
        _("The first metastasectomy (%(surgery)s) is before the diagnosis of lung metastases (%(diagnosis)s).")
        % {"surgery": first.surgery_date.isoformat(), "diagnosis": patient.lung_mets_diagnosis_date.isoformat()},
    )]


def follow_up_not_before_first_metastasectomy(case):
    first = first_metastasectomy(case)
    violations = []
    for event in case.follow_ups:
        if event.event_date is None:
            continue
        if first is None:
            violations.append(Violation(
                [(event, "event_date")],
                _("Follow-up starts at the first metastasectomy: enter the metastasectomy first.")))
        elif event.event_date < first.surgery_date:
            violations.append(Violation(
                [(event, "event_date"), (first, "surgery_date")],
                _("The event date %(date)s is before the first metastasectomy (%(surgery)s).")
                % {"date": event.event_date.isoformat(), "surgery": first.surgery_date.isoformat()}))
    return violations


def at_most_one_death(case):
    recorded = sorted(deaths(case), key=lambda fu: (fu.event_date or datetime.date.max))
    return [Violation([(extra, "event"), (recorded[0], "event")],
                      _("The patient already has a death recorded on %(date)s.") % {"date": iso(recorded[0].event_date)})
            for extra in recorded[1:]]


def nothing_after_death(case):
    recorded = [fu for fu in deaths(case) if fu.event_date is not None]
    if not recorded:
        return []
    death = min(recorded, key=lambda fu: fu.event_date)
    return [
        Violation([(record, column), (death, "event_date")],
                  _("The date %(date)s is after the patient's death (%(death)s).")
                  % {"date": value.isoformat(), "death": death.event_date.isoformat()})
        for record, column, value in dated_values(case) if value > death.event_date
    ]


def metastasectomy_dates_unique(case):
    seen, violations = {}, []
    for pm in case.metastasectomies:
        if pm.surgery_date in seen:
            violations.append(Violation(
                [(pm, "surgery_date"), (seen[pm.surgery_date], "surgery_date")],
                _("Another metastasectomy of this patient is already dated %(date)s.") % {"date": iso(pm.surgery_date)}))
        elif pm.surgery_date is not None:
            seen[pm.surgery_date] = pm
    return violations


RULES = (
    no_dates_before_birth,
    lung_metastases_not_after_first_metastasectomy,
    follow_up_not_before_first_metastasectomy,
    at_most_one_death,
    nothing_after_death,
    metastasectomy_dates_unique,
)


def check_case(case):
    """All violations of the cross-record rules in one patient's case (empty list: valid)."""
    return [violation for rule in RULES for violation in rule(case)]
