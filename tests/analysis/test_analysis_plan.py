"""The analysis plan holds endpoints.md's defaults, round-trips through JSON, hashes stably and
refuses bad input with a message naming the parameter."""
import datetime
import json

import pytest

from analysis.plan import AnalysisPlan, PlanError

# The plan is pure data, but the project runs every test file with the database available.
pytestmark = pytest.mark.django_db


def test_defaults_are_those_of_endpoints_md():
    plan = AnalysisPlan()
    assert (plan.size_cutoff_mm, plan.lesions_cutoff, plan.tfi_cutoff_months) == (20.0, 1, 12.0)
    assert (plan.synchronous_cutoff_months, plan.systemic_window_months) == (3.0, 6.0)
    assert plan.histologies == ("LMS", "SyS", "UPS") and plan.require_r0 and plan.exclude_extrapulmonary
    assert (plan.period_start, plan.period_end) == (datetime.date(2009, 1, 1), datetime.date(2021, 12, 31))
    assert plan.multivariable_covariates == ("size_gt_2cm", "multiple_lesions", "tfi_gt_12m", "histology")
    assert plan.rate_times_months == (12.0, 36.0, 60.0)


def test_plan_is_immutable():
    with pytest.raises(AttributeError):
        AnalysisPlan().size_cutoff_mm = 30


def test_json_round_trip_gives_an_equal_plan():
    plan = AnalysisPlan(name="wide", size_cutoff_mm=25.5, histologies=("LMS", "other"),
                        period_start=datetime.date(2010, 1, 1))
    text = plan.to_json()
    assert json.loads(text)["period_start"] == "2010-01-01"
    assert AnalysisPlan.from_json(text) == plan


def test_missing_keys_take_the_defaults():
    assert AnalysisPlan.from_json('{"tfi_cutoff_months": 24}') == AnalysisPlan(tfi_cutoff_months=24)


def test_hash_is_stable_and_changes_with_a_parameter():
    plan = AnalysisPlan()
    assert plan.hash == AnalysisPlan().hash == AnalysisPlan.from_json(plan.to_json()).hash
    assert len(plan.hash) == 12 and int(plan.hash, 16) >= 0
    assert plan.replace(size_cutoff_mm=30).hash != plan.hash
    assert plan.replace(name="other name").hash != plan.hash  # a result names its plan


def test_hash_ignores_key_order_and_int_versus_float():
    data = AnalysisPlan().to_dict()
    reordered = dict(reversed(list(data.items())), size_cutoff_mm=20)
    assert AnalysisPlan.from_dict(reordered).hash == AnalysisPlan().hash


def test_replace_changes_only_the_given_parameters():
    plan = AnalysisPlan().replace(systemic_window_months=3, require_r0=False)
    assert plan.systemic_window_months == 3.0 and not plan.require_r0
    assert plan.size_cutoff_mm == 20.0


def test_lists_given_to_the_constructor_become_tuples():
    plan = AnalysisPlan(histologies=["LMS"])
    assert plan.histologies == ("LMS",) and hash(plan)


def test_v2_options_default_to_endpoints_md_and_round_trip():
    plan = AnalysisPlan()
    assert (plan.index_rule, plan.complete_margins, plan.landmark_months, plan.centre_adjustment) == \
        ("first_pm", ("R0",), 6.0, "none")
    changed = plan.replace(index_rule="first_complete_pm", complete_margins=["R0", "R1"], landmark_months=12,
                           centre_adjustment="robust", centre_factor="peri_pm_systemic")
    assert AnalysisPlan.from_json(changed.to_json()) == changed and changed.hash != plan.hash


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"size_cutoff": 20}', "unknown plan parameter(s): size_cutoff"),
    ('{"size_cutoff_mm": "20"}', "'size_cutoff_mm' must be a number"),
    ('{"lesions_cutoff": 1.5}', "'lesions_cutoff' must be a whole number"),
    ('{"require_r0": "yes"}', "'require_r0' must be true or false"),
    ('{"period_start": "2009-13-01"}', "'period_start' must be an ISO date"),
    ('{"histologies": "LMS"}', "'histologies' must be a list"),
    ('{"histologies": ["LMS", "ABC"]}', "'histologies' must list distinct codes"),
    ('{"multivariable_covariates": ["size"]}', "'multivariable_covariates' must name factors"),
    ('{"period_start": "2022-01-01"}', "period_start is after period_end"),
    ('{"size_cutoff_mm": -1}', "'size_cutoff_mm' must be >= 0"),
    ('{"index_rule": "last_pm"}', "'index_rule' must be one of first_pm, first_complete_pm"),
    ('{"complete_margins": ["R0", "R2"]}', "'complete_margins' must be [R0] or [R0, R1]"),
    ('{"complete_margins": ["R1"]}', "'complete_margins' must be [R0] or [R0, R1]"),
    ('{"centre_adjustment": "frailty"}', "'centre_adjustment' must be one of none, stratified, robust"),
    ('{"centre_factor": "histology"}', "'centre_factor' must name a one-column factor"),
    ('{"landmark_months": -6}', "'landmark_months' must be >= 0"),
    ("[" * 100_000, "nested too deeply"),
])
def test_bad_plans_are_refused_with_a_clear_message(text, message):
    with pytest.raises(PlanError) as error:
        AnalysisPlan.from_json(text)
    assert message in str(error.value)
