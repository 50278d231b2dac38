"""Soft checks: values that are allowed but implausible enough to ask about, one small function per
check, beside the cross-record rules (registry.rules) and in the same form: pure functions over one
patient's case (registry.cases) that never touch the database.

A rule refuses a save; a soft check never does. When one fires, registry.services.queries opens a
query on the record's field for the centre to confirm or correct the value, and closes it again when
the value no longer fires. The thresholds are the named constants below.
"""
import calendar
import datetime
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

from registry.index_date import index_operation

LARGEST_LESION_MAX_MM = 60  # a resected lung metastasis larger than this is rare
HOSPITAL_STAY_MAX_DAYS = 60  # after a pulmonary metastasectomy
NO_CONTACT_MAX_MONTHS = 12  # a patient not known dead without news for longer is lost to follow-up


@dataclass(frozen=True)
class Finding:
    """A check that fired: on which record (a model instance) and field ("" for the record as a
    whole), with the value it found."""

    check: str
    record: object
    field: str
    value: object


def largest_lesion_over_limit(case, today):
    return [Finding("largest_lesion", pm, "max_lesion_diameter_mm", pm.max_lesion_diameter_mm)
            for pm in case.metastasectomies
            if pm.max_lesion_diameter_mm is not None and pm.max_lesion_diameter_mm > LARGEST_LESION_MAX_MM]


def hospital_stay_over_limit(case, today):
    return [Finding("hospital_stay", pm, "hospital_stay_days", pm.hospital_stay_days)
            for pm in case.metastasectomies
            if pm.hospital_stay_days is not None and pm.hospital_stay_days > HOSPITAL_STAY_MAX_DAYS]


def months_before(day, months):
    """The same day of the month `months` earlier (the month's last day where it has no such day)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return datetime.date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def last_known_date(case):
    """The latest date of the case's follow-up events, operations and systemic therapies (the
    censoring date of ../shared/spec/endpoints.md), or None."""
    dates = [fu.event_date for fu in case.follow_ups]
    dates += [pm.surgery_date for pm in case.metastasectomies]
    dates += [d for therapy in case.systemic_therapies for d in (therapy.start_date, therapy.end_date)]
    dates = [d for d in dates if d is not None]
    return max(dates) if dates else None


def no_contact_for_too_long(case, today):
    """On the patient: the last news is more than NO_CONTACT_MAX_MONTHS old and no death is recorded
    (a case with no dated record yet is still being entered: nothing to ask)."""
    if any(fu.event == "death" for fu in case.follow_ups):
        return []
    last = last_known_date(case)
    if last is None or last >= months_before(today, NO_CONTACT_MAX_MONTHS):
        return []
    return [Finding("no_contact", case.patient, "", last)]


def recurrence_on_index_date(case, today):
    """A recurrence dated on the day of the index operation (an event at time 0 in every analysis:
    more often a typo, or the finding that led to the operation)."""
    index = index_operation(case.metastasectomies)
    if index is None:
        return []
    return [Finding("recurrence_on_index_date", fu, "event_date", fu.event_date) for fu in case.follow_ups
            if fu.event == "recurrence" and fu.event_date == index.surgery_date]


@dataclass(frozen=True)
class SoftCheck:
    code: str
    find: object  # (case, today) -> [Finding]
    limit: object  # the threshold the message names
    message: str  # what the query says, with %(value)s and %(limit)s
    about: str = ""  # what a check on a whole record asks about, in place of a field's label


CHECKS = (
    SoftCheck("largest_lesion", largest_lesion_over_limit, LARGEST_LESION_MAX_MM,
              _("The largest lesion is %(value)s mm: more than %(limit)s mm is unusual for a resected lung "
                "metastasis. Please check the value.")),
    SoftCheck("hospital_stay", hospital_stay_over_limit, HOSPITAL_STAY_MAX_DAYS,
              _("A hospital stay of %(value)s days is longer than %(limit)s days. Please check the value.")),
    SoftCheck("no_contact", no_contact_for_too_long, NO_CONTACT_MAX_MONTHS,
              _("When this was raised, the latest date entered was %(value)s: no news of the patient for more "
                "than %(limit)s months, and no death recorded. Please enter the latest follow-up."),
              about=_("latest follow-up")),
    SoftCheck("recurrence_on_index_date", recurrence_on_index_date, None,
              _("A recurrence is dated %(value)s, the day of the first metastasectomy (the index date). "
                "Please check the date.")),
)
BY_CODE = {check.code: check for check in CHECKS}


def findings(case, *, today=None):
    """Every soft check that fires on one patient's case (saved or not)."""
    today = today or datetime.date.today()
    return [finding for check in CHECKS for finding in check.find(case, today)]


def describe(code, value):
    """What a check says about `value` (text as stored), in the active language."""
    check = BY_CODE.get(code)
    if check is None:
        return code
    return check.message % {"value": value, "limit": check.limit}
