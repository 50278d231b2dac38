"""The report's warnings list: one helper every part of the report calls."""
from analysis.warnings import warn


def test_warn_creates_the_list_and_records_code_message_and_model():
    report = {}
    warn(report, "low_epv", "3 events per variable", "multivariable dfs")
    assert report["warnings"] == [{"code": "low_epv", "message": "3 events per variable",
                                   "model": "multivariable dfs"}]


def test_warn_records_the_same_warning_once_and_keeps_others_in_order():
    report = {"warnings": [{"code": "ph_violated", "message": "m", "model": "x"}]}
    warn(report, "low_epv", "a", "m1")
    warn(report, "low_epv", "a", "m1")
    warn(report, "separation_firth", "b")
    assert [(w["code"], w["model"]) for w in report["warnings"]] == [
        ("ph_violated", "x"), ("low_epv", "m1"), ("separation_firth", None)]
