"""Frame + report recover the known truth of synthetic cohorts (registry/synthetic/:
exponential, exactly proportional hazards).

Within the study cohort (R0, isolated lung disease, LMS/SyS/UPS) the generating model's
covariates are exactly the default multivariable covariates (size_gt_2cm, multiple_lesions,
tfi_gt_12m, histology), so the multivariable Cox model is correctly specified and its 95% CIs
should cover the generating hazard ratios. Univariable HRs would not: leaving out the other
covariates attenuates a Cox HR (non-collapsibility), so they are not checked against the truth.

Coverage, not luck: the 95% intervals of many independent cohorts must cover the truth about
95% of the time. A binomial test of the number that cover (p > 0.001) fails when intervals are
too narrow (a halved standard error covers ~67%) or the estimates biased, and a seed cannot be
picked to pass it.
"""
import math

import pytest
from django.db import transaction
from scipy import stats

from analysis.frame import analysis_frame
from analysis.plan import AnalysisPlan
from analysis.report import model_data, multivariable
from registry import cases as rows
from registry.models import Centre
from registry.synthetic import CohortModel, generate_cohort

pytestmark = pytest.mark.django_db
PATIENTS = 1000  # per cohort; ~770 in the study cohort
SEEDS = range(1, 17)  # 16 cohorts x 2 endpoints x 5 terms = 160 intervals


def bulk_load(cohort):
    """Insert a generated cohort straight into the tables (no validation, no audit rows).

    The validated, audited path (services.cases_create) takes ~25 s for 5,000 patients on
    SQLite; it is exercised by the demo-cohort test. Here only the analysis is under test.
    """
    for code in sorted({row["centre"] for row in cohort["patients"]}):
        Centre.objects.get_or_create(code=code, defaults={"name": f"Synthetic centre {code}"})
    for table, model in rows.TABLE_MODELS.items():
        records = [rows.instance_from_row(model, row) for row in cohort[table]]
        if hasattr(model, "redcap_instance"):  # a repeating table: numbers unique per patient, as required
            for number, record in enumerate(records, start=1):
                record.redcap_instance = number
        model.objects.bulk_create(records, batch_size=2000)


def truth(log_hr):
    return {"size_gt_2cm": math.exp(log_hr.size_gt_2cm), "multiple_lesions": math.exp(log_hr.multiple_lesions),
            "tfi_gt_12m": math.exp(log_hr.tfi_gt_12m), "histology_SyS": math.exp(log_hr.histology_sys),
            "histology_UPS": math.exp(log_hr.histology_ups)}


def intervals(seed, plan):
    """(endpoint, term, true HR, 95% CI) of both multivariable models on one generated cohort."""
    with transaction.atomic():  # each cohort alone in the tables
        bulk_load(generate_cohort(patients=PATIENTS, centres=4, seed=seed))
        frame = analysis_frame(plan)
        transaction.set_rollback(True)
    analysed = frame[frame["eligible"]]
    assert len(frame) == PATIENTS and len(analysed) > 0.7 * PATIENTS
    data = model_data(analysed, plan)
    model = CohortModel()
    for endpoint, log_hr in (("dfs", model.dfs_log_hr), ("os", model.os_log_hr)):
        fit = multivariable(data, endpoint, plan)
        # complete cases: a TFI whose treatment end is unknown (a blank primary surgery date) is missing
        assert fit["estimable"] and fit["n"] == int(analysed["tfi_months"].notna().sum()) > 0.9 * len(analysed)
        assert [term["factor"] for term in fit["terms"]] == list(truth(log_hr))
        for term in fit["terms"]:
            yield endpoint, term["factor"], truth(log_hr)[term["factor"]], term["ci95"]


def test_multivariable_intervals_cover_the_generating_hazard_ratios_95_percent_of_the_time():
    plan = AnalysisPlan(multivariable_endpoints=("dfs", "os"))
    results = [row for seed in SEEDS for row in intervals(seed, plan)]
    covered = [low <= true <= high for _endpoint, _term, true, (low, high) in results]
    assert len(covered) == 160
    test = stats.binomtest(sum(covered), len(covered), 0.95)
    missed = [(endpoint, term) for (endpoint, term, _t, _ci), c in zip(results, covered) if not c]
    assert test.pvalue > 0.001, f"{sum(covered)} of {len(covered)} intervals cover the truth; missed: {missed}"
