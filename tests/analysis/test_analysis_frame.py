"""The analysis frame derives endpoints.md's endpoints and variables patient by patient,
reads a fixed number of queries, and only contains the patients the user may analyse."""
import datetime
import math

import pandas as pd
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analysis.frame import COLUMNS, DAYS_PER_MONTH, analysis_frame
from analysis.plan import AnalysisPlan
from registry.models import FollowUp, Metastasectomy, Patient, PrimaryTumour
from tests import factories as f

pytestmark = pytest.mark.django_db
D = datetime.date
INDEX = D(2015, 4, 1)  # the factories' metastasectomy date


def months(later, earlier=INDEX):
    return (later - earlier).days / DAYS_PER_MONTH


def case(*, centre="MUC", primary=None, pms=({},), therapies=(), follow_ups=(), **patient_fields):
    """A patient saved straight through the ORM (a fixture, not a write path under test).

    Defaults: lung metastases 2015-03-01, primary diagnosed 2012-05-01 and resected 2012-06-01,
    one PM on 2015-04-01 (15 mm, 1 lesion, R0, right), no therapy, no follow-up.
    """
    patient = f.patient(centre, **patient_fields)
    if primary is not False:
        f.primary_tumour(patient, **(primary or {})).save()
    for values in pms:
        f.metastasectomy(patient, **values).save()
    for values in therapies:
        f.systemic_therapy(patient, **values).save()
    for values in follow_ups:
        f.follow_up(patient, **values).save()
    return patient.patient_id


def row(patient_id, plan=None):
    return analysis_frame(plan).set_index("patient_id").loc[patient_id]


# --- endpoints --------------------------------------------------------------------------------

def test_frame_has_exactly_the_columns_of_endpoints_md_and_names_its_plan():
    case()
    frame = analysis_frame()
    assert list(frame.columns) == COLUMNS
    assert frame.attrs == {"plan": AnalysisPlan().name, "plan_hash": AnalysisPlan().hash}


def test_death_without_recurrence_is_an_os_and_dfs_event_at_the_death():
    pid = case(follow_ups=[{"event": "contact", "event_date": D(2016, 1, 1)},
                           {"event": "death", "event_date": D(2017, 4, 1)}])
    r = row(pid)
    assert (r.os_event, r.dfs_event) == (1, 1)
    assert r.os_months == pytest.approx(months(D(2017, 4, 1)))
    assert r.dfs_months == pytest.approx(months(D(2017, 4, 1)))


def test_recurrence_then_death_gives_dfs_at_recurrence_and_os_at_death():
    pid = case(follow_ups=[{"event": "recurrence", "recurrence_site": "lung", "event_date": D(2016, 2, 1)},
                           {"event": "death", "event_date": D(2017, 4, 1)}])
    r = row(pid)
    assert r.dfs_months == pytest.approx(months(D(2016, 2, 1)))
    assert r.os_months == pytest.approx(months(D(2017, 4, 1)))


def test_recurrence_and_death_on_one_day_is_one_dfs_event_at_that_date():
    day = D(2016, 6, 1)
    pid = case(follow_ups=[{"event": "recurrence", "recurrence_site": "distant", "event_date": day},
                           {"event": "death", "event_date": day}])
    r = row(pid)
    assert (r.dfs_event, r.os_event) == (1, 1)
    assert r.dfs_months == pytest.approx(months(day)) == pytest.approx(r.os_months)


def test_patient_without_follow_up_is_censored_at_time_zero_and_kept():
    pid = case()
    r = row(pid)
    assert (r.os_months, r.os_event, r.dfs_months, r.dfs_event) == (0.0, 0, 0.0, 0)
    assert r.eligible and r.exclusion_reason is None


def test_alive_patient_is_censored_at_last_contact():
    pid = case(follow_ups=[{"event": "contact", "event_date": D(2016, 1, 1)}])
    r = row(pid)
    assert (r.os_event, r.dfs_event) == (0, 0)
    assert r.os_months == pytest.approx(months(D(2016, 1, 1))) == pytest.approx(r.dfs_months)


def test_censoring_uses_the_latest_therapy_date_when_later_than_the_last_contact():
    pid = case(follow_ups=[{"event": "contact", "event_date": D(2016, 1, 1)}],
               therapies=[{"intent": "palliative", "start_date": D(2016, 3, 1), "end_date": D(2016, 6, 30)}])
    assert row(pid).os_months == pytest.approx(months(D(2016, 6, 30)))


def test_censoring_uses_an_ongoing_therapys_start_date():
    pid = case(therapies=[{"intent": "palliative", "start_date": D(2016, 3, 1), "end_date": None}])
    assert row(pid).dfs_months == pytest.approx(months(D(2016, 3, 1)))


def test_repeat_pm_index_is_the_first_operation_and_the_repeat_counts_as_last_known_date():
    pid = case(pms=[{"surgery_date": D(2016, 2, 1), "max_lesion_diameter_mm": 35, "lesions_resected": 4,
                     "side": "bilateral", "clavien_dindo": "IVa"},
                    {}])
    r = row(pid)
    assert r.index_date == pd.Timestamp(INDEX)
    assert (r.max_lesion_diameter_mm, r.lesions_resected) == (15.0, 1)
    assert not r.size_gt_2cm and not r.multiple_lesions and not r.bilateral and not r.major_complication
    assert r.os_months == pytest.approx(months(D(2016, 2, 1)))


def test_recurrence_before_the_index_is_not_an_event():
    pid = case(follow_ups=[{"event": "contact", "event_date": D(2016, 1, 1)}])
    # The rules refuse it; legacy data may hold it, so write it straight to the table.
    FollowUp.objects.create(patient_id=pid, event="recurrence", recurrence_site="local", event_date=D(2015, 3, 20),
                            redcap_instance=99)
    r = row(pid)
    assert r.dfs_event == 0
    assert r.dfs_months == pytest.approx(months(D(2016, 1, 1)))


def test_recurrence_on_the_index_date_is_an_event_at_time_zero():
    pid = case(follow_ups=[{"event": "recurrence", "recurrence_site": "lung", "event_date": INDEX},
                           {"event": "contact", "event_date": D(2016, 1, 1)}])
    r = row(pid)
    assert (r.dfs_event, r.dfs_months) == (1, 0.0)
    assert (r.os_event, r.os_months) == (0, pytest.approx(months(D(2016, 1, 1))))


# --- derived variables ------------------------------------------------------------------------

def test_tfi_runs_from_the_primary_resection_when_nothing_ended_later():
    r = row(case(lung_mets_diagnosis_date=D(2015, 3, 1)))
    assert r.tfi_months == pytest.approx(months(D(2015, 3, 1), D(2012, 6, 1)))
    assert r.tfi_gt_12m


def test_tfi_runs_from_the_latest_treatment_end_before_the_lung_metastases():
    pid = case(primary={"radiotherapy": "adjuvant", "radiotherapy_end_date": D(2012, 9, 1)},
               therapies=[{"intent": "primary_adjuvant", "start_date": D(2012, 10, 1), "end_date": D(2014, 9, 1)},
                          # starts after the lung diagnosis: not a treatment "before" the metastases
                          {"intent": "pm_neoadjuvant", "start_date": D(2015, 3, 5), "end_date": D(2015, 3, 25)}])
    r = row(pid)
    assert r.tfi_months == pytest.approx(months(D(2015, 3, 1), D(2014, 9, 1)))
    assert not r.tfi_gt_12m


def test_tfi_is_zero_when_the_primary_was_resected_after_the_lung_metastases():
    synchronous = case(primary={"diagnosis_date": D(2015, 1, 10), "surgery_date": D(2015, 3, 20)})
    assert row(synchronous).tfi_months == 0.0 and not row(synchronous).tfi_gt_12m


def test_tfi_is_zero_while_a_systemic_therapy_is_still_running_at_the_lung_metastases():
    pid = case(therapies=[{"intent": "primary_adjuvant", "start_date": D(2014, 12, 1), "end_date": D(2015, 4, 20)}])
    r = row(pid)
    assert r.tfi_months == 0.0 and not r.tfi_gt_12m


def test_a_treatment_with_an_unknown_end_makes_the_tfi_unknown_not_zero():
    no_surgery_date = case(primary={"surgery_date": None})
    therapy_without_end = case(therapies=[{"intent": "primary_adjuvant", "start_date": D(2013, 1, 1), "end_date": None}])
    frame = analysis_frame().set_index("patient_id")
    for pid in (no_surgery_date, therapy_without_end):
        assert math.isnan(frame.loc[pid, "tfi_months"]) and pd.isna(frame.loc[pid, "tfi_gt_12m"]), pid


def test_radiotherapy_not_given_and_therapies_after_the_lung_metastases_do_not_count():
    pid = case(primary={"radiotherapy": "none", "radiotherapy_end_date": None},
               therapies=[{"intent": "palliative", "start_date": D(2015, 6, 1), "end_date": None}])
    assert row(pid).tfi_months == pytest.approx(months(D(2015, 3, 1), D(2012, 6, 1)))


def test_dfi_and_synchronous():
    metachronous = case()
    synchronous = case(primary={"diagnosis_date": D(2015, 1, 10), "surgery_date": None})
    lung_first = case(primary={"diagnosis_date": D(2015, 3, 20), "surgery_date": None})
    no_primary = case(primary=False)
    frame = analysis_frame().set_index("patient_id")
    assert frame.loc[metachronous, "dfi_months"] == pytest.approx(months(D(2015, 3, 1), D(2012, 5, 1)))
    assert not frame.loc[metachronous, "synchronous"]
    assert frame.loc[synchronous, "synchronous"]
    assert frame.loc[lung_first, "dfi_months"] < 0 and frame.loc[lung_first, "synchronous"]
    assert math.isnan(frame.loc[no_primary, "dfi_months"]) and pd.isna(frame.loc[no_primary, "synchronous"])
    assert math.isnan(frame.loc[no_primary, "tfi_months"]) and pd.isna(frame.loc[no_primary, "tfi_gt_12m"])
    assert frame.loc[no_primary, "grade"] is None and frame.loc[no_primary, "primary_site"] is None


def test_size_and_lesion_cut_offs_are_strictly_greater_and_follow_the_plan():
    at_cut = case(pms=[{"max_lesion_diameter_mm": 20, "lesions_resected": 1}])
    above = case(pms=[{"max_lesion_diameter_mm": "20.5", "lesions_resected": 2}])
    frame = analysis_frame().set_index("patient_id")
    assert not frame.loc[at_cut, "size_gt_2cm"] and not frame.loc[at_cut, "multiple_lesions"]
    assert frame.loc[above, "size_gt_2cm"] and frame.loc[above, "multiple_lesions"]
    assert frame.loc[above, "max_lesion_diameter_mm"] == 20.5
    wide = analysis_frame(AnalysisPlan(size_cutoff_mm=25, lesions_cutoff=2)).set_index("patient_id")
    assert not wide.loc[above, "size_gt_2cm"] and not wide.loc[above, "multiple_lesions"]


def test_index_operation_and_primary_describe_the_patient():
    pid = case(birth_year=1950, sex="male", primary={"grade": None, "site": "trunk"},
               pms=[{"side": "bilateral", "approach": "thoracotomy", "resection_type": "lobectomy"}])
    r = row(pid)
    assert (r.age_at_pm, r.sex, r.centre, r.histology) == (65, "male", "MUC", "LMS")
    assert r.grade is None and r.primary_site == "trunk"
    assert r.bilateral and (r.approach, r.resection_type) == ("thoracotomy", "lobectomy")


@pytest.mark.parametrize("intent, start, expected", [
    ("pm_neoadjuvant", INDEX - datetime.timedelta(days=182), True),   # 182 days <= 182.625
    ("pm_neoadjuvant", INDEX - datetime.timedelta(days=183), False),
    ("pm_neoadjuvant", INDEX, True),
    ("pm_neoadjuvant", INDEX + datetime.timedelta(days=10), False),   # after the index: not "before"
    ("pm_adjuvant", INDEX, True),
    ("pm_adjuvant", INDEX + datetime.timedelta(days=182), True),
    ("pm_adjuvant", INDEX + datetime.timedelta(days=183), False),
    ("pm_adjuvant", INDEX - datetime.timedelta(days=10), False),
    ("palliative", INDEX + datetime.timedelta(days=30), False),
])
def test_peri_pm_systemic_window_boundaries(intent, start, expected):
    pid = case(therapies=[{"intent": intent, "start_date": start, "end_date": None}])
    assert bool(row(pid).peri_pm_systemic) is expected


def test_peri_pm_window_is_a_plan_parameter():
    pid = case(therapies=[{"intent": "pm_adjuvant", "start_date": INDEX + datetime.timedelta(days=100),
                           "end_date": None}])
    assert not row(pid, AnalysisPlan(systemic_window_months=3)).peri_pm_systemic


def test_peri_pm_therapy_start_is_kept_in_months_from_the_index_for_the_time_dependent_model():
    adjuvant = case(therapies=[{"intent": "pm_adjuvant", "start_date": D(2015, 6, 1), "end_date": None},
                               {"intent": "pm_adjuvant", "start_date": D(2015, 5, 1), "end_date": None}])
    neoadjuvant = case(therapies=[{"intent": "pm_neoadjuvant", "start_date": D(2015, 2, 1), "end_date": D(2015, 3, 1)}])
    untreated = case()
    frame = analysis_frame().set_index("patient_id")
    assert frame.loc[adjuvant, "peri_pm_systemic_start_months"] == pytest.approx(months(D(2015, 5, 1)))
    assert frame.loc[neoadjuvant, "peri_pm_systemic_start_months"] == pytest.approx(-months(INDEX, D(2015, 2, 1)))
    assert math.isnan(frame.loc[untreated, "peri_pm_systemic_start_months"])


def test_first_recurrence_site_is_that_of_the_earliest_recurrence_after_the_index():
    pid = case(follow_ups=[{"event": "recurrence", "recurrence_site": "distant", "event_date": D(2016, 3, 1)},
                           {"event": "recurrence", "recurrence_site": "lung", "event_date": D(2015, 9, 1)}])
    assert row(pid).first_recurrence_site == "lung"
    assert row(case()).first_recurrence_site is None


def test_first_complete_pm_rule_takes_the_earliest_complete_operation_as_the_index():
    pid = case(pms=[{"surgery_date": D(2015, 4, 1), "margin": "R1"},
                    {"surgery_date": D(2016, 2, 1), "margin": "R0", "max_lesion_diameter_mm": 30}])
    default = row(pid)
    assert not default.eligible and default.exclusion_reason == "index margin not R0"
    rule = AnalysisPlan(index_rule="first_complete_pm")
    r = row(pid, rule)
    assert r.eligible and r.index_date == pd.Timestamp(D(2016, 2, 1)) and r.max_lesion_diameter_mm == 30
    # R1 called complete: the first operation is the index again, and counts
    assert row(pid, rule.replace(complete_margins=["R0", "R1"])).index_date == pd.Timestamp(INDEX)
    never_complete = case(pms=[{"margin": "R2"}, {"surgery_date": D(2016, 2, 1), "margin": "R1"}])
    assert row(never_complete, rule).exclusion_reason == "index margin not R0"
    assert row(never_complete, rule).index_date == pd.Timestamp(INDEX)


def test_r1_can_count_as_a_complete_index_margin():
    pid = case(pms=[{"margin": "R1"}])
    r = row(pid, AnalysisPlan(complete_margins=("R0", "R1")))
    assert r.eligible
    assert row(case(pms=[{"margin": "R2"}]), AnalysisPlan(complete_margins=("R0", "R1"))).exclusion_reason \
        == "index margin not R0/R1"


@pytest.mark.parametrize("grade, major", [("none", False), ("II", False), ("IIIa", True), ("V", True)])
def test_major_complication_is_clavien_dindo_iiia_or_worse(grade, major):
    assert bool(row(case(pms=[{"clavien_dindo": grade}])).major_complication) is major


# --- study cohort -----------------------------------------------------------------------------

@pytest.mark.parametrize("fields, pm, reason", [
    ({"histology": "other"}, {}, "histology not LMS/SyS/UPS"),
    ({}, {"margin": "R1"}, "index margin not R0"),
    ({"extrapulmonary_disease_at_pm": True}, {}, "extrapulmonary disease at PM"),
    ({"lung_mets_diagnosis_date": D(2008, 11, 1)}, {"surgery_date": D(2008, 12, 31)},
     "index date outside 2009-01-01..2021-12-31"),
    ({"lung_mets_diagnosis_date": D(2021, 12, 1)}, {"surgery_date": D(2022, 1, 1)},
     "index date outside 2009-01-01..2021-12-31"),
])
def test_each_cohort_criterion_excludes_with_its_reason(fields, pm, reason):
    r = row(case(pms=[pm], **fields))
    assert not r.eligible and r.exclusion_reason == reason


def test_period_bounds_are_inclusive():
    first = case(lung_mets_diagnosis_date=D(2008, 12, 1), pms=[{"surgery_date": D(2009, 1, 1)}])
    last = case(lung_mets_diagnosis_date=D(2021, 12, 1), pms=[{"surgery_date": D(2021, 12, 31)}])
    frame = analysis_frame().set_index("patient_id")
    assert frame.loc[[first, last], "eligible"].all()


def test_patient_without_metastasectomy_is_excluded_first_and_has_no_endpoint():
    pid = case(pms=[], histology="other")
    r = row(pid)
    assert r.exclusion_reason == "no metastasectomy" and not r.eligible
    assert pd.isna(r.index_date) and math.isnan(r.os_months) and pd.isna(r.os_event)
    assert pd.isna(r.size_gt_2cm) and pd.isna(r.peri_pm_systemic) and pd.isna(r.age_at_pm)


def test_the_first_failing_criterion_names_the_exclusion():
    pid = case(histology="other", extrapulmonary_disease_at_pm=True, pms=[{"margin": "R2"}])
    assert row(pid).exclusion_reason == "histology not LMS/SyS/UPS"
    assert row(pid, AnalysisPlan(histologies=("LMS", "other"))).exclusion_reason == "index margin not R0"
    relaxed = AnalysisPlan(histologies=("LMS", "other"), require_r0=False)
    assert row(pid, relaxed).exclusion_reason == "extrapulmonary disease at PM"
    assert row(pid, relaxed.replace(exclude_extrapulmonary=False)).eligible


# --- queries and access -----------------------------------------------------------------------

def bulk_cases(n, centre="MUC"):
    """n patients with a primary, two PMs and a follow-up, bulk-inserted (fixture speed)."""
    f.centre(centre)
    ids = [f"{centre}-Q{i:06d}" for i in range(Patient.objects.count(), Patient.objects.count() + n)]
    Patient.objects.bulk_create([Patient(patient_id=pid, centre_id=centre, **f.patient_values()) for pid in ids])
    PrimaryTumour.objects.bulk_create([f.primary_tumour(Patient(patient_id=pid)) for pid in ids])
    Metastasectomy.objects.bulk_create([f.metastasectomy(Patient(patient_id=pid), surgery_date=day)
                                        for pid in ids for day in (INDEX, D(2016, 1, 1))])
    FollowUp.objects.bulk_create([f.follow_up(Patient(patient_id=pid)) for pid in ids])


def queries_for_frame(**kwargs):
    with CaptureQueriesContext(connection) as captured:
        frame = analysis_frame(**kwargs)
    return len(captured), frame


def test_query_count_is_constant_from_10_to_1000_patients():
    bulk_cases(10)
    small, frame = queries_for_frame()
    assert len(frame) == 10
    bulk_cases(990)
    large, frame = queries_for_frame()
    assert len(frame) == 1000 and frame["eligible"].all()
    assert small == large == 5


def test_query_count_with_a_user_adds_only_the_membership_lookup():
    bulk_cases(20)
    nurse = f.user(memberships=[("MUC", "nurse")])
    count, frame = queries_for_frame(user=nurse)
    assert count == 6 and len(frame) == 20


@pytest.fixture
def three_centres():
    return {code: case(centre=code) for code in ("MUC", "HD", "ESS")}


def test_nurse_frame_contains_only_their_centres_patients(three_centres):
    nurse = f.user(memberships=[("MUC", "nurse")])
    frame = analysis_frame(user=nurse)
    assert list(frame["patient_id"]) == [three_centres["MUC"]]


def test_pi_frame_contains_every_centre(three_centres):
    pi = f.user(memberships=[("HD", "pi")])
    assert set(analysis_frame(user=pi)["centre"]) == {"MUC", "HD", "ESS"}


def test_centres_argument_narrows_the_scope(three_centres):
    pi = f.user(memberships=[("HD", "pi")])
    assert set(analysis_frame(user=pi, centres=["HD", "ESS"])["centre"]) == {"HD", "ESS"}


def test_user_without_membership_gets_an_empty_frame_with_the_columns(three_centres):
    frame = analysis_frame(user=f.user())
    assert frame.empty and list(frame.columns) == COLUMNS


def test_empty_registry_gives_an_empty_frame():
    frame = analysis_frame()
    assert frame.empty and list(frame.columns) == COLUMNS
