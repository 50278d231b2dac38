"""Property-based tests (Hypothesis) of the cross-record rules in registry/rules.py.

The rules are checked on generated cases of unsaved model instances (the rules only read
attributes): arbitrary cases with missing, extreme, future and pre-birth dates, several deaths and
several PMs, and cases generated to respect every rule of the data dictionary. Properties:

- check_case never raises, is the concatenation of the rules in RULES, does not change the
  records, and every violation names records of the case and real columns of their models;
- it flags exactly what the dictionary's sentences predict (an independent oracle below, written
  from ../shared/spec/data-dictionary.md, not from rules.py);
- a case generated to respect the rules yields no violation;
- one violation injected into a valid case is reported by exactly the expected rule, once, at
  the injected record and column;
- the order of the records does not change the messages.

Reproducible: the profile derandomizes (the same examples on every run). REGISTRY_FUZZ=deep
runs 20 times more random examples (print_blob shows how to replay a failure).
"""
import collections
import datetime

import pytest
from django.db import models
from hypothesis import assume, example, given, note
from hypothesis import strategies as st

from registry import cases, rules
from registry.models import FollowUp, Metastasectomy, Patient, PrimaryTumour, SystemicTherapy
from tests import fuzzing

fuzz = fuzzing.fuzz

D = datetime.date
DAY = datetime.timedelta(days=1)
TODAY = datetime.date.today()
MODELS = (Patient, PrimaryTumour, Metastasectomy, SystemicTherapy, FollowUp)
CHILDREN = ("metastasectomies", "systemic_therapies", "follow_ups")


def date_columns(model):
    """Every date column of a model, read from the model itself (not from rules.DATE_COLUMNS), so
    a date column added to a model without a rule for it makes the oracle disagree."""
    return [f.attname for f in model._meta.concrete_fields
            if isinstance(f, models.DateField) and not isinstance(f, models.DateTimeField)]


DATE_COLUMNS = {model: date_columns(model) for model in MODELS}
FIELD_NAMES = {model: {f.attname for f in model._meta.concrete_fields} | {f.name for f in model._meta.concrete_fields}
               for model in MODELS}


# --- building cases ----------------------------------------------------------------------------

def new_patient(birth_year, lung, pid="MUC-FUZZ01"):
    return Patient(patient_id=pid, centre_id="MUC", sex="female", histology="LMS", birth_year=birth_year,
                   lung_mets_diagnosis_date=lung, extrapulmonary_disease_at_pm=False)


def new_tumour(diagnosis, surgery=None, radiotherapy_end=None, pid="MUC-FUZZ01"):
    return PrimaryTumour(patient_id=pid, diagnosis_date=diagnosis, surgery_date=surgery, site="trunk",
                         radiotherapy="adjuvant" if radiotherapy_end else None,
                         radiotherapy_end_date=radiotherapy_end)


def new_pm(day, pid="MUC-FUZZ01"):
    return Metastasectomy(patient_id=pid, surgery_date=day, side="left", approach="vats", resection_type="wedge",
                          lesions_resected=1, max_lesion_diameter_mm=10, margin="R0", clavien_dindo="none")


def new_therapy(start, end=None, regimen="doxorubicin", pid="MUC-FUZZ01"):
    return SystemicTherapy(patient_id=pid, start_date=start, end_date=end, regimen=regimen, intent="palliative")


def new_event(day, event="contact", pid="MUC-FUZZ01"):
    return FollowUp(patient_id=pid, event_date=day, event=event,
                    recurrence_site="lung" if event == "recurrence" else None)


def copy_case(case, **changes):
    """A new Case with the same record objects (lists copied), optionally with lists replaced."""
    values = dict(patient=case.patient, primary_tumour=case.primary_tumour,
                  metastasectomies=list(case.metastasectomies), systemic_therapies=list(case.systemic_therapies),
                  follow_ups=list(case.follow_ups))
    values.update(changes)
    return cases.Case(**values)


def show(case):
    """A case in one line per record, for Hypothesis' falsifying-example notes."""
    lines = [f"patient birth_year={case.patient.birth_year} lung={case.patient.lung_mets_diagnosis_date}"]
    if case.primary_tumour is not None:
        t = case.primary_tumour
        lines.append(f"primary diagnosis={t.diagnosis_date} surgery={t.surgery_date} rt_end={t.radiotherapy_end_date}")
    lines += [f"pm {pm.surgery_date}" for pm in case.metastasectomies]
    lines += [f"therapy {t.regimen} {t.start_date}..{t.end_date}" for t in case.systemic_therapies]
    lines += [f"follow-up {e.event} {e.event_date}" for e in case.follow_ups]
    return "\n".join(lines)


# --- strategies --------------------------------------------------------------------------------

def maybe(strategy):
    return st.one_of(st.none(), strategy)


def between(low, high):
    """A date in [low, high], often a bound itself (equal dates are the edge cases of the rules)."""
    if low >= high:
        return st.just(low)
    inside = st.dates(min_value=low, max_value=high)
    return st.one_of(st.sampled_from([low, high]), inside, inside, inside)  # a bound in 1 of 4


# Arbitrary dates: missing, anywhere in 0001..9999, in a narrow window (so records collide on the
# same day), around today (future or not), around a birth year.
ANY_DATE = st.one_of(
    st.none(),
    st.dates(),
    st.dates(min_value=D(2015, 1, 1), max_value=D(2015, 1, 8)),
    st.dates(min_value=TODAY - 3 * DAY, max_value=TODAY + 3 * DAY),
    st.dates(min_value=D(1958, 12, 25), max_value=D(1961, 1, 5)),
)
ANY_EVENT = st.sampled_from(["contact", "recurrence", "death", "death", "Death", "", None])


@st.composite
def arbitrary_cases(draw):
    """Anything a merged case can hold, valid or not (the rules must never raise on it)."""
    birth_year = draw(st.one_of(st.none(), st.integers(1, 9999), st.integers(1955, 1962),
                                st.integers(TODAY.year - 1, TODAY.year + 2)))
    patient = new_patient(birth_year, draw(ANY_DATE))
    tumour = draw(maybe(st.builds(new_tumour, ANY_DATE, ANY_DATE, ANY_DATE)))
    return cases.Case(
        patient=patient,
        primary_tumour=tumour,
        metastasectomies=draw(st.lists(st.builds(new_pm, ANY_DATE), max_size=4)),
        systemic_therapies=draw(st.lists(st.builds(new_therapy, ANY_DATE, ANY_DATE,
                                                   st.sampled_from(["doxorubicin", "other", ""])), max_size=3)),
        follow_ups=draw(st.lists(st.builds(new_event, ANY_DATE, ANY_EVENT), max_size=5)),
    )


@st.composite
def valid_cases(draw, *, death=None, pms=None, tumour=None, born=None):
    """A case that respects every rule of the dictionary (some dates missing, as while a case grows).

    Every date lies in [1 January of the birth year, end], where end is the death date (a death
    closes the case) or today. death / pms / tumour force (True) or forbid (False) a dated death,
    dated PMs, a primary tumour with a diagnosis date, a known year of birth; None leaves it to chance.
    """
    forced = death is not None or pms is not None or tumour is not None or born
    birth_year = draw(st.one_of(st.integers(1900, TODAY.year), st.integers(TODAY.year - 2, TODAY.year),
                                st.nothing() if forced else st.none()))
    start = D(birth_year or 1900, 1, 1)
    dies = draw(st.booleans()) if death is None else death
    dies = dies and pms is not False  # a death is a follow-up event, which needs a PM
    end = draw(between(start, TODAY)) if dies else TODAY
    lung = draw(between(start, end) if pms else maybe(between(start, end)))
    low = lung or start
    if pms is False:
        pm_dates = []
    else:
        pm_dates = draw(st.lists(between(low, end), unique=True, max_size=3, min_size=1 if (dies or pms) else 0))
        pm_dates += [None] * draw(st.integers(0, 0 if pms else 1))
    first = min((d for d in pm_dates if d is not None), default=None)
    primary = None
    if tumour or (tumour is None and draw(st.booleans())):
        diagnosis = draw(between(start, end) if tumour else maybe(between(start, end)))
        surgery = draw(maybe(between(diagnosis or start, end)))
        rt_end = draw(maybe(between(diagnosis or start, end)))
        primary = new_tumour(diagnosis, surgery, rt_end)
    therapies = []
    for _ in range(draw(st.integers(0, 3))):
        begin = draw(maybe(between(start, end)))
        therapies.append(new_therapy(begin, draw(maybe(between(begin or start, end)))))
    # Follow-up needs a dated PM; without one, only undated events are valid.
    event_days = maybe(between(first, end)) if first else st.none()
    events = [new_event(draw(event_days), draw(st.sampled_from(["contact", "recurrence"])))
              for _ in range(draw(st.integers(0, 3)))]
    if dies:
        events.append(new_event(end, "death"))
    elif death is None and draw(st.integers(0, 3)) == 0:
        events.append(new_event(None, "death"))  # a death whose date is not known yet
    case = cases.Case(patient=new_patient(birth_year, lung), primary_tumour=primary,
                      metastasectomies=[new_pm(d) for d in pm_dates], systemic_therapies=therapies,
                      follow_ups=events)
    case.end = end  # the last date the case may hold (death or today)
    return case


def all_dates(case):
    return [value for record in case.records() for column in DATE_COLUMNS[type(record)]
            if (value := getattr(record, column)) is not None]


# --- the oracle: the dictionary's sentences, applied literally ---------------------------------

def oracle(case):
    """Counter of (rule, record description, column) the dictionary predicts for `case`.

    Written from data-dictionary.md ("Cross-record rules", the follow_up and metastasectomies
    rules, "at most one death"; the rules about one record, such as "not in the future", are the
    models' and are not flagged here), with the registry's documented choices: the first PM is the
    earliest dated one, a date before the year of birth is flagged on every date column, a
    follow-up event without any dated PM is flagged, and the earliest dated death is "the death"
    (an undated death counts as later than every dated one).
    """
    found = collections.Counter()
    dated = [(record, column, value) for record in case.records() for column in DATE_COLUMNS[type(record)]
             if (value := getattr(record, column)) is not None]

    def flag(rule, record, column):
        found[(rule, rules.describe(record), column)] += 1

    for record, column, value in dated:
        if case.patient.birth_year is not None and value.year < case.patient.birth_year:
            flag("no_dates_before_birth", record, column)
    pm_days = sorted(pm.surgery_date for pm in case.metastasectomies if pm.surgery_date is not None)
    first_day = pm_days[0] if pm_days else None
    if first_day and case.patient.lung_mets_diagnosis_date and case.patient.lung_mets_diagnosis_date > first_day:
        first = next(pm for pm in case.metastasectomies if pm.surgery_date == first_day)
        flag("lung_metastases_not_after_first_metastasectomy", first, "surgery_date")
    for event in case.follow_ups:
        if event.event_date is not None and (first_day is None or event.event_date < first_day):
            flag("follow_up_not_before_first_metastasectomy", event, "event_date")
    deaths = [e for e in case.follow_ups if e.event == "death"]
    if len(deaths) > 1:
        kept = min(deaths, key=lambda e: (e.event_date is None, e.event_date or TODAY))
        for extra in deaths:
            if extra is not kept:
                flag("at_most_one_death", extra, "event")
    dated_deaths = [e.event_date for e in deaths if e.event_date is not None]
    if dated_deaths:
        for record, column, value in dated:
            if value > min(dated_deaths):
                flag("nothing_after_death", record, column)
    for day, n in collections.Counter(pm.surgery_date for pm in case.metastasectomies
                                      if pm.surgery_date is not None).items():
        for pm in [pm for pm in case.metastasectomies if pm.surgery_date == day][1:n]:
            flag("metastasectomy_dates_unique", pm, "surgery_date")
    return found


def by_rule(case):
    """{rule name: [violations]} from each rule of RULES on its own."""
    return {rule.__name__: rule(case) for rule in rules.RULES}


def reported(case):
    return collections.Counter((name, rules.describe(v.record), v.column)
                               for name, found in by_rule(case).items() for v in found)


def state(case):
    return [(type(r).__name__, {k: v for k, v in r.__dict__.items() if k != "_state"}) for r in case.records()]


# --- properties --------------------------------------------------------------------------------

@fuzz(100)
@given(arbitrary_cases())
def test_check_case_never_raises_and_names_records_and_columns_that_exist(case):
    note(show(case))
    before = state(case)
    violations = rules.check_case(case)
    assert state(case) == before, "check_case changed a record"
    assert violations == [v for found in by_rule(case).values() for v in found]
    records = list(case.records())
    for violation in violations:
        assert violation.refs and isinstance(violation.message, str) and violation.message.strip()
        for record, column in violation.refs:
            assert any(record is r for r in records), f"{violation} names a record outside the case"
            assert column in FIELD_NAMES[type(record)], f"{violation} names no column of {type(record).__name__}"
        assert violation.involves(violation.record)
        assert str(violation) == f"{rules.describe(violation.record)}, {violation.column}: {violation.message}"
        # Where the violation is shown, the column holds a value a nurse can find and correct.
        assert getattr(violation.record, violation.column) is not None


@fuzz(150)
@given(arbitrary_cases())
@example(cases.Case(patient=new_patient(1960, None), follow_ups=[new_event(D(2015, 1, 1), "death"),
                                                                  new_event(D(2015, 1, 1), "death")]))
@example(cases.Case(patient=new_patient(None, D(2015, 1, 2)), metastasectomies=[new_pm(D(2015, 1, 1)),
                                                                                 new_pm(D(2015, 1, 1))]))
def test_rules_flag_exactly_what_the_dictionary_predicts(case):
    note(show(case))
    assert reported(case) == oracle(case)


@fuzz(100)
@given(valid_cases())
def test_a_case_that_respects_the_rules_has_no_violation(case):
    note(show(case))
    assert all(value <= case.end for value in all_dates(case))  # the generator keeps its promise
    assert oracle(case) == collections.Counter()
    assert rules.check_case(case) == []


@fuzz(60)
@given(st.one_of(arbitrary_cases(), valid_cases()), st.randoms(use_true_random=False))
def test_the_order_of_the_records_does_not_change_the_messages(case, random):
    note(show(case))
    shuffled = copy_case(case, **{name: random.sample(getattr(case, name), len(getattr(case, name)))
                                  for name in CHILDREN})
    reverse = copy_case(case, **{name: getattr(case, name)[::-1] for name in CHILDREN})
    messages = collections.Counter(map(str, rules.check_case(case)))
    assert collections.Counter(map(str, rules.check_case(shuffled))) == messages
    assert collections.Counter(map(str, rules.check_case(reverse))) == messages


# --- one violation injected into a valid case ---------------------------------------------------
# Each injector takes a valid case and Hypothesis' `data`, returns (case with one violation, rule
# expected, the record where it is shown, column, words of the message), or None when the case
# leaves no room for this violation (e.g. a patient born today cannot have a date before birth
# that is still after 0001-01-01).

def inject_date_before_birth(case, data):
    if case.patient.birth_year in (None, 1):
        return None
    day = data.draw(between(D(1, 1, 1), D(case.patient.birth_year, 1, 1) - DAY), label="before birth")
    therapy = new_therapy(day)
    return (copy_case(case, systemic_therapies=[*case.systemic_therapies, therapy]), "no_dates_before_birth",
            therapy, "start_date", f"is before the year of birth {case.patient.birth_year}")


def inject_lung_metastases_after_first_pm(case, data):
    first = rules.first_metastasectomy(case)
    if first is None or first.surgery_date >= case.end:
        return None
    lung = data.draw(between(first.surgery_date + DAY, case.end), label="lung diagnosis")
    patient = new_patient(case.patient.birth_year, lung)
    return (copy_case(case, patient=patient), "lung_metastases_not_after_first_metastasectomy", first,
            "surgery_date", f"is before the diagnosis of lung metastases ({lung.isoformat()})")


def inject_follow_up_before_first_pm(case, data):
    first = rules.first_metastasectomy(case)
    start = max(D(case.patient.birth_year or 1900, 1, 1), case.patient.lung_mets_diagnosis_date or D(1, 1, 1))
    if first is None or first.surgery_date <= start:
        return None
    day = data.draw(between(start, first.surgery_date - DAY), label="event date")
    event = new_event(day, data.draw(st.sampled_from(["contact", "recurrence"])))
    return (copy_case(case, follow_ups=[*case.follow_ups, event]), "follow_up_not_before_first_metastasectomy",
            event, "event_date", f"is before the first metastasectomy ({first.surgery_date.isoformat()})")


def inject_follow_up_without_pm(case, data):
    if rules.first_metastasectomy(case) is not None or any(e.event_date is not None for e in case.follow_ups):
        return None  # (an undated PM does not start follow-up either)
    day = data.draw(between(D(case.patient.birth_year or 1900, 1, 1), case.end), label="event date")
    event = new_event(day)
    return (copy_case(case, follow_ups=[*case.follow_ups, event]), "follow_up_not_before_first_metastasectomy",
            event, "event_date", "enter the metastasectomy first")


def inject_second_death(case, data):
    death = next((e for e in case.follow_ups if e.event == "death" and e.event_date), None)
    if death is None:
        return None
    # On the same day (or undated): not after the first death, so only "one death" is broken.
    second = new_event(data.draw(st.sampled_from([death.event_date, None]), label="second death"), "death")
    return (copy_case(case, follow_ups=[*case.follow_ups, second]), "at_most_one_death", second, "event",
            f"already has a death recorded on {death.event_date.isoformat()}")


def inject_event_after_death(case, data):
    death = next((e for e in case.follow_ups if e.event == "death" and e.event_date), None)
    if death is None or death.event_date >= TODAY:
        return None
    day = data.draw(between(death.event_date + DAY, TODAY), label="after death")
    event = new_event(day, data.draw(st.sampled_from(["contact", "recurrence"])))
    return (copy_case(case, follow_ups=[*case.follow_ups, event]), "nothing_after_death", event, "event_date",
            f"is after the patient's death ({death.event_date.isoformat()})")


def inject_therapy_after_death(case, data):
    death = next((e for e in case.follow_ups if e.event == "death" and e.event_date), None)
    if death is None or death.event_date >= TODAY:
        return None
    therapy = new_therapy(death.event_date, data.draw(between(death.event_date + DAY, TODAY), label="end"))
    return (copy_case(case, systemic_therapies=[*case.systemic_therapies, therapy]), "nothing_after_death",
            therapy, "end_date", f"is after the patient's death ({death.event_date.isoformat()})")


def inject_same_day_pm(case, data):
    dated = [pm for pm in case.metastasectomies if pm.surgery_date is not None]
    if not dated:
        return None
    twin = new_pm(data.draw(st.sampled_from(dated), label="twin of").surgery_date)
    position = data.draw(st.integers(0, len(case.metastasectomies)), label="position")
    pms = [*case.metastasectomies]
    pms.insert(position, twin)
    violation_at = [pm for pm in pms if pm.surgery_date == twin.surgery_date][1]  # the later in the list
    return (copy_case(case, metastasectomies=pms), "metastasectomy_dates_unique", violation_at, "surgery_date",
            f"already dated {twin.surgery_date.isoformat()}")


INJECTIONS = [inject_date_before_birth, inject_lung_metastases_after_first_pm, inject_follow_up_before_first_pm, inject_follow_up_without_pm,
              inject_second_death, inject_event_after_death, inject_therapy_after_death, inject_same_day_pm]
# The cases each injector needs (a death, dated PMs, none at all) are generated on purpose, so few
# examples are skipped for want of a suitable case.
NEEDS = {inject_date_before_birth: dict(born=True),
         inject_lung_metastases_after_first_pm: dict(pms=True, death=False),
         inject_follow_up_before_first_pm: dict(pms=True, death=False),
         inject_follow_up_without_pm: dict(pms=False), inject_second_death: dict(death=True),
         inject_event_after_death: dict(death=True), inject_therapy_after_death: dict(death=True),
         inject_same_day_pm: dict(pms=True)}


@pytest.mark.parametrize("inject", INJECTIONS, ids=[inject.__name__.removeprefix("inject_") for inject in INJECTIONS])
@fuzz(20)
@given(data=st.data())
def test_one_injected_violation_is_reported_once_by_the_expected_rule(inject, data):
    valid = data.draw(valid_cases(**NEEDS[inject]), label="valid case")
    injected = inject(valid, data)
    assume(injected is not None)  # e.g. everything on one day leaves no room for "before"
    case, expected, record, column, words = injected
    note(show(case))
    found = {name: violations for name, violations in by_rule(case).items() if violations}
    assert list(found) == [expected], found
    [violation] = found[expected]
    assert violation.record is record and violation.column == column, str(violation)
    assert words in violation.message, violation.message
    assert [str(v) for v in rules.check_case(case)] == [str(violation)]
