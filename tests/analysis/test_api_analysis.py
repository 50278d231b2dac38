"""The analysis endpoints: the survival report and the analysis frame under a plan given as query
parameters, scoped like the web app's analysis (access.patients_for_analysis)."""
import csv
import io

import pytest

from analysis.frame import COLUMNS
from analysis.plan import AnalysisPlan
from tests import factories as f
from tests.problems import problem_of
from tests.registry.api.test_api_helpers import client_for, fresh_throttles  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def berlin(db):
    patient = f.patient("BER")
    f.metastasectomy(patient).save()
    return patient


def test_report_takes_the_plan_from_query_parameters(case, nurse):
    response = client_for(nurse).get("/api/v1/analysis/report",
                                      {"size_cutoff_mm": "30", "histologies": "LMS,SyS", "require_r0": "false"})
    assert response.status_code == 200
    report = response.json()
    expected = AnalysisPlan().replace(size_cutoff_mm=30.0, histologies=["LMS", "SyS"], require_r0=False)
    assert report["plan"] == expected.to_dict() and report["plan_hash"] == expected.hash
    assert report["scope"]["centres_included"] == ["MUC"]


def test_row_level_data_are_a_nurses_and_a_pis_own_centres_and_a_coordinators_all(case, berlin, nurse, pi,
                                                                                    coordinator):
    for user, expected in ((nurse, [case.pk]), (pi, [case.pk]), (coordinator, sorted([case.pk, berlin.pk]))):
        frame = client_for(user).get("/api/v1/analysis/frame").json()
        assert sorted(row["patient_id"] for row in frame["rows"]) == expected, user
        csv_rows = client_for(user).get("/api/v1/analysis/frame?format=csv").content.decode().splitlines()[1:]
        assert sorted(line.split(",")[0] for line in csv_rows) == expected, user


def test_a_pi_asking_for_another_centres_rows_gets_none(case, berlin, pi):
    assert client_for(pi).get("/api/v1/analysis/frame", {"centres": "BER"}).json()["rows"] == []


def test_a_pis_report_still_pools_every_centre(case, berlin, pi):
    """Aggregates are not row-level data: a PI's survival report pools the registry."""
    report = client_for(pi).get("/api/v1/analysis/report").json()
    assert report["scope"]["centres_included"] == ["BER", "MUC"]


def test_frame_as_json_has_the_frames_columns_and_iso_dates(case, coordinator):
    body = client_for(coordinator).get("/api/v1/analysis/frame", {"centres": "MUC"}).json()
    assert body["columns"] == COLUMNS
    row = body["rows"][0]
    assert row["index_date"] == "2015-04-01" and row["max_lesion_diameter_mm"] == 15.0
    assert body["plan_hash"] == AnalysisPlan().hash and len(body["data_version"]) == 12


def test_frame_as_csv(case, coordinator):
    response = client_for(coordinator).get("/api/v1/analysis/frame?format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert list(rows[0]) == COLUMNS and rows[0]["patient_id"] == case.pk and rows[0]["index_date"] == "2015-04-01"
    assert response["X-Data-Version"]
    assert client_for(coordinator).get("/api/v1/analysis/frame", HTTP_ACCEPT="text/csv")["Content-Type"] \
        .startswith("text/csv")


@pytest.mark.parametrize("query", [
    {"size_cutoff_mm": "big"}, {"size_cutoff_mm": "inf"}, {"require_r0": "maybe"}, {"histologies": "XYZ"},
    {"period_start": "2020-13-01"}, {"unknown_parameter": "1"}, {"lesions_cutoff": "1.5"},
])
def test_an_unusable_plan_is_a_400_naming_the_parameter(coordinator, query, db):
    response = client_for(coordinator).get("/api/v1/analysis/frame?format=csv", query)
    assert response.status_code == 400
    # errors are problem details whatever format was asked; an unknown parameter is named on its own
    assert next(iter(query)) in problem_of(response)["detail"]


def test_a_user_without_a_centre_gets_an_empty_report(db):
    loner = f.user("loner")
    response = client_for(loner).get("/api/v1/analysis/report")
    assert response.status_code == 200
    assert response.json()["cohort"]["registered"] == 0


def test_a_covariate_named_twice_is_a_400_not_a_500(coordinator, db):
    response = client_for(coordinator).get("/api/v1/analysis/report",
                                           {"multivariable_covariates": "histology,histology,histology"})
    assert response.status_code == 400 and "twice" in str(response.json())


def test_a_report_of_fewer_patients_than_the_minimum_withholds_every_estimate(case, nurse, settings):
    """A one-patient centre's curve, median and models would describe that patient."""
    settings.DASHBOARD_MIN_STRATUM = 5
    report = client_for(nurse).get("/api/v1/analysis/report", {"require_r0": "false"}).json()
    assert report["cohort"]["analysed"] == 1 and "Fewer than 5 patients" in report["withheld"]
    assert report["curves"]["os"]["time"] == [] and report["endpoints"]["os"]["median_months"] is None
    assert not any(row["estimable"] for row in report["univariable"])


def test_the_analyst_permission_opens_every_centres_rows_and_nothing_else(case, berlin):
    from django.contrib.auth.models import Permission

    analyst = f.user("statistician")
    analyst.user_permissions.add(Permission.objects.get(codename="analyse_every_centre"))
    frame = client_for(analyst).get("/api/v1/analysis/frame").json()
    assert sorted(row["patient_id"] for row in frame["rows"]) == sorted([case.pk, berlin.pk])
    assert client_for(analyst).get(f"/api/v1/patients/{case.pk}/").status_code == 404  # no records
