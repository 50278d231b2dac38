"""The analysis reads missing-data codes as missing (endpoints.md v2): a coded value is missing for
every model, and each model's complete-case n says so; for the TFI a treatment marked not done (ND)
is ignored and a treatment that happened with its end unknown (UNK) leaves the TFI missing, not 0."""
import datetime
import math

import pandas as pd
import pytest
from django.db import transaction

from analysis.frame import analysis_frame
from analysis.report import survival_report
from registry.models import Patient
from tests import factories as f
from tests.analysis.test_analysis_frame import case, months, row
from tests.analysis.test_analysis_report import small_registry

pytestmark = pytest.mark.django_db
D = datetime.date
LUNG = D(2015, 3, 1)  # the factories' diagnosis of lung metastases
SURGERY = D(2012, 6, 1)  # the factories' primary resection


def test_a_coded_value_is_missing_in_the_frame():
    pid = case(primary={"grade": None, "missing_codes": {"grade": "UNK"}})
    assert row(pid).grade is None


def test_a_therapy_ended_on_an_unknown_date_makes_the_tfi_missing_not_zero():
    pid = case(therapies=[{"start_date": D(2013, 1, 1), "end_date": None, "intent": "primary_adjuvant",
                           "missing_codes": {"end_date": "UNK"}}])
    r = row(pid)
    assert math.isnan(r.tfi_months) and pd.isna(r.tfi_gt_12m)


def test_a_radiotherapy_given_with_its_end_unknown_makes_the_tfi_missing():
    pid = case(primary={"radiotherapy": "adjuvant", "radiotherapy_end_date": None,
                        "missing_codes": {"radiotherapy_end_date": "UNK"}})
    assert math.isnan(row(pid).tfi_months)


def test_a_therapy_marked_not_done_is_ignored_for_the_tfi_and_the_peri_pm_therapy():
    not_given = {"end_date": None, "missing_codes": {"end_date": "ND"}}
    pid = case(therapies=[{**not_given, "start_date": D(2014, 1, 1), "intent": "primary_adjuvant"},
                          {**not_given, "start_date": D(2015, 5, 1), "intent": "pm_adjuvant"}])
    given = case(therapies=[{"start_date": D(2015, 5, 1), "end_date": D(2015, 8, 1), "intent": "pm_adjuvant"}])
    frame = analysis_frame().set_index("patient_id")
    assert frame.loc[pid, "tfi_months"] == pytest.approx(months(LUNG, SURGERY))  # from the resection
    assert frame.loc[pid, "peri_pm_systemic"] == False  # noqa: E712 (a nullable boolean)
    assert frame.loc[given, "peri_pm_systemic"] == True  # noqa: E712
    # A therapy not given is no contact either: the last known date is the operation's.
    assert frame.loc[pid, "os_months"] == 0.0


def test_a_primary_not_resected_or_a_radiotherapy_not_given_is_ignored_for_the_tfi():
    not_resected = case(primary={"surgery_date": None, "missing_codes": {"surgery_date": "ND"}})
    unknown = case(primary={"surgery_date": None, "missing_codes": {"surgery_date": "UNK"}})
    no_radiotherapy = case(primary={"radiotherapy": "adjuvant", "radiotherapy_end_date": None,
                                    "missing_codes": {"radiotherapy_end_date": "ND"}})
    frame = analysis_frame().set_index("patient_id")
    assert frame.loc[not_resected, "tfi_months"] == 0.0  # no treatment ended before the lung metastases
    assert math.isnan(frame.loc[unknown, "tfi_months"])  # resected on an unknown date: unknown
    assert frame.loc[no_radiotherapy, "tfi_months"] == pytest.approx(months(LUNG, SURGERY))


def univariable_n(report, endpoint, factor):
    return next(r["n"] for r in report["univariable"] if r["endpoint"] == endpoint and r["factor"] == factor)


def test_each_model_states_its_complete_case_n_which_the_codes_lower():
    with transaction.atomic():
        small_registry()
        before = survival_report()
        transaction.set_rollback(True)
    with transaction.atomic():
        small_registry()
        patients = list(Patient.objects.order_by("patient_id")[:3])
        for patient in patients[:2]:  # grade unknown and not done: missing for the grade model
            tumour = patient.primary_tumour
            tumour.grade, tumour.missing_codes = None, {"grade": ("UNK", "ND")[patients.index(patient)]}
            tumour.save()
        f.systemic_therapy(patients[2], start_date=D(2013, 1, 1), end_date=None, intent="primary_adjuvant",
                           missing_codes={"end_date": "UNK"}).save()  # TFI unknown: missing for the TFI model
        after = survival_report()
        transaction.set_rollback(True)
    for endpoint in ("dfs", "os"):
        assert univariable_n(after, endpoint, "grade_G3") == univariable_n(before, endpoint, "grade_G3") - 2
        assert univariable_n(after, endpoint, "tfi_gt_12m") == univariable_n(before, endpoint, "tfi_gt_12m") - 1
        assert univariable_n(after, endpoint, "size_gt_2cm") == univariable_n(before, endpoint, "size_gt_2cm")
    for model, earlier in zip(after["multivariable"], before["multivariable"]):
        assert model["n"] == earlier["n"] - 1  # tfi_gt_12m is a default covariate
