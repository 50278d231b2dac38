"""The dataset export through the API (registry/api/exports.py): a job with a status URL, the same
rules and the same archive as the export page."""
import io
import re
import zipfile

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from registry.api.models import ApiToken
from registry.dictionary import TABLES
from registry.management.commands.generate_cohort import cohort_load
from registry.models import ExportLog, Job
from registry.transfer import jobs
from tests import factories as f
from tests.problems import field_errors
from tests.registry.api.test_api_helpers import client_for, fresh_throttles  # noqa: F401
from tests.registry.transfer.test_import_support import centres, cohort

pytestmark = pytest.mark.django_db

STATUS_KEYS = {"id", "state", "step", "format", "centre", "deidentify", "freeze", "created_at", "finished_at", "error",
               "download"}


@pytest.fixture
def registry():
    centres()
    cohort_load(cohort(12, seed=4))


@pytest.fixture
def coordinator_api(registry, coordinator):
    return client_for(coordinator)


def submit(api, **body):
    return api.post("/api/v1/exports/", {"format": "csv", **body}, format="json")


def finished_status(api, location, polls=20):
    """Follow the status URL until the job has ended (in the tests it runs at once: no worker)."""
    for _poll in range(polls):
        response = api.get(location)
        assert response.status_code == 200, response.content
        if response.json()["state"] in ("done", "failed"):
            return response
    raise AssertionError(f"the job did not end: {response.json()}")


def test_coordinator_exports_the_pooled_dataset_follows_location_and_downloads_the_zip(coordinator_api,
                                                                                      coordinator):
    submitted = submit(coordinator_api)

    assert submitted.status_code == 202, submitted.content
    job = Job.objects.get()
    assert submitted["Location"] == f"/api/v1/exports/{job.pk}/"
    assert set(submitted.json()) == STATUS_KEYS and submitted.json()["id"] == str(job.pk)
    status = finished_status(coordinator_api, submitted["Location"]).json()
    assert set(status) == STATUS_KEYS
    assert (status["state"], status["error"], status["format"], status["centre"], status["deidentify"]) == \
        ("done", None, "csv", None, "none")
    assert status["finished_at"] is not None
    assert status["download"] == f"http://testserver/api/v1/exports/{job.pk}/download/"

    download = coordinator_api.get(status["download"])

    assert download.status_code == 200
    assert download["Content-Type"] == "application/zip"
    assert download["Content-Disposition"] == f'attachment; filename="{job.result_name}"'
    assert re.fullmatch(r"registry-pooled-csv-\d{8}-\d{4}\.zip", job.result_name)
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    names = set(archive.namelist())
    assert {f"{table}.csv" for table in TABLES} | {"README.txt"} <= names
    patients = archive.read("patients.csv").decode("utf-8-sig").splitlines()
    assert len(patients) == 1 + 12 and patients[0].startswith("patient_id")
    # the export is recorded as on the web page: one ExportLog row, written when the job ran
    log = ExportLog.objects.get()
    assert (log.user, log.scope, log.file_format, log.deidentify) == (coordinator, "", "csv", "none")


def test_the_api_archive_holds_the_same_files_as_the_web_pages(coordinator_api, coordinator):
    api_zip = coordinator_api.get(finished_status(coordinator_api, submit(coordinator_api, centre="HD",
                                                                          format="dta")["Location"])
                                  .json()["download"])
    web = Client()
    web.force_login(coordinator)
    page = web.post(reverse("export_download"), {"centre": "HD", "file_format": "dta", "deidentify": "none"})
    web_zip = web.get(reverse("job_result", args=[page.url.split("/")[-2]]))

    api_names = zipfile.ZipFile(io.BytesIO(api_zip.content)).namelist()
    assert sorted(api_names) == sorted(zipfile.ZipFile(io.BytesIO(web_zip.content)).namelist())
    assert "patients.dta" in api_names
    assert api_zip["Content-Disposition"].startswith('attachment; filename="registry-HD-dta-')


def test_another_user_gets_404_on_the_status_and_the_download(coordinator_api, registry):
    location = submit(coordinator_api)["Location"]
    other = client_for(f.user("other_coordinator", memberships=[("HD", "coordinator")]))

    for url in (location, location + "download/"):
        response = other.get(url)
        assert response.status_code == 404, url
        assert b"patient_id" not in response.content
    assert other.get("/api/v1/exports/").json() == []
    assert coordinator_api.get(location).status_code == 200


@pytest.mark.parametrize("pk", ["12", "not-a-job", "0" * 31 + "g"])
def test_an_id_that_names_no_job_is_a_404(coordinator_api, pk):
    for url in (f"/api/v1/exports/{pk}/", f"/api/v1/exports/{pk}/download/"):
        assert coordinator_api.get(url).status_code == 404


def test_an_import_job_is_no_export(coordinator_api, coordinator):
    imported = jobs.submit_import(coordinator, data=b"not a workbook", file_name="muc.xlsx", dry_run=True)
    assert coordinator_api.get(f"/api/v1/exports/{imported.pk}/").status_code == 404
    assert coordinator_api.get(f"/api/v1/exports/{imported.pk}/download/").status_code == 404
    assert coordinator_api.get("/api/v1/exports/").json() == []


@pytest.mark.parametrize("role", ["nurse", "monitor", "pi"])
def test_a_role_that_may_not_export_gets_403(registry, role):
    api = client_for(f.user(role, memberships=[("MUC", role)]))

    assert submit(api, centre="MUC").status_code == 403
    assert api.get("/api/v1/exports/").status_code == 403
    assert not Job.objects.exists() and not ExportLog.objects.exists()


def test_a_read_only_token_exports_since_an_export_only_reads(registry, coordinator):
    api = APIClient()
    key = ApiToken.issue(user=coordinator, kind="api", name="reader", read_only=True)[1]
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")

    submitted = submit(api)
    assert submitted.status_code == 202
    assert api.get(finished_status(api, submitted["Location"]).json()["download"]).status_code == 200
    # ... and still changes nothing else
    assert api.post("/api/v1/patients/", {}, format="json").status_code == 403


@pytest.mark.parametrize("body,field", [
    ({"format": "exe"}, "format"),
    ({"format": None}, "format"),
    ({"deidentify": "blur"}, "deidentify"),
    ({"centre": "XYZ"}, "centre"),  # no such centre: not among the page's scopes
])
def test_a_bad_option_is_a_400_naming_it(coordinator_api, body, field):
    response = submit(coordinator_api, **body)

    assert response.status_code == 400
    assert field in field_errors(response), response.json()
    assert not Job.objects.exists()


def test_a_missing_format_is_a_400_naming_it(coordinator_api):
    response = coordinator_api.post("/api/v1/exports/", {}, format="json")
    assert response.status_code == 400 and "format" in field_errors(response)


def test_pi_exports_only_their_own_centre_and_only_when_the_setting_allows(registry, pi, settings):
    api = client_for(pi)
    settings.EXPORT_ALLOW_PI = False
    assert submit(api, centre="MUC").status_code == 403
    settings.EXPORT_ALLOW_PI = True

    for refused in ({}, {"centre": ""}, {"centre": "HD"}):  # the pooled dataset, another centre: as the web form
        response = submit(api, **refused)
        assert response.status_code == 400 and "centre" in field_errors(response), (refused, response.content)
    accepted = submit(api, centre="MUC", deidentify="intervals")

    assert accepted.status_code == 202
    status = finished_status(api, accepted["Location"]).json()
    assert (status["state"], status["centre"], status["deidentify"]) == ("done", "MUC", "intervals")
    assert api.get(status["download"]).status_code == 200
    assert list(ExportLog.objects.values_list("scope", "deidentify")) == [("MUC", "intervals")]


def test_the_list_holds_the_users_export_jobs_newest_first(coordinator_api, coordinator):
    first = submit(coordinator_api)["Location"]
    second = submit(coordinator_api, format="xlsx", centre="MUC")["Location"]
    jobs.submit_import(coordinator, data=b"x", file_name="muc.csv", dry_run=True)  # an import: not listed
    submit(client_for(f.user("coordinator2", memberships=[("HD", "coordinator")])))  # someone else's

    listed = coordinator_api.get("/api/v1/exports/")

    assert listed.status_code == 200
    assert [f"/api/v1/exports/{row['id']}/" for row in listed.json()] == [second, first]
    assert all(set(row) == STATUS_KEYS and row["download"] for row in listed.json())
    assert listed.json()[0]["format"] == "xlsx" and listed.json()[0]["centre"] == "MUC"


def waiting_export(user):
    """An export job a worker has not taken yet (the tests run jobs at once, so it is made by hand)."""
    return Job.objects.create(kind=Job.EXPORT, user=user, options={"centre": "", "file_format": "csv",
                                                                   "deidentify": "none"})


def test_a_job_not_yet_run_says_so_and_has_no_download(coordinator_api, coordinator):
    job = waiting_export(coordinator)

    status = coordinator_api.get(f"/api/v1/exports/{job.pk}/")

    assert status.status_code == 200 and status["Retry-After"] == "2"
    assert (status.json()["state"], status.json()["download"], status.json()["finished_at"]) == ("queued", None, None)
    refused = coordinator_api.get(f"/api/v1/exports/{job.pk}/download/")
    assert refused.status_code == 404 and "not finished" in refused.json()["detail"]


def test_a_failed_job_names_why_and_has_no_download(coordinator_api, coordinator):
    job = waiting_export(coordinator)
    jobs.fail(job.pk, "lost")

    status = coordinator_api.get(f"/api/v1/exports/{job.pk}/").json()

    assert status["state"] == "failed" and "Submit it again" in status["error"] and status["download"] is None
    assert coordinator_api.get(f"/api/v1/exports/{job.pk}/download/").status_code == 404


def test_an_archive_no_longer_kept_is_a_404(coordinator_api):
    location = submit(coordinator_api)["Location"]
    Job.objects.update(result=None)  # as jobs._forget_old_results does after JOB_RESULT_HOURS

    assert coordinator_api.get(location).json()["download"] is None
    response = coordinator_api.get(location + "download/")
    assert response.status_code == 404 and "no longer kept" in response.json()["detail"]


def test_a_client_asking_for_a_zip_gets_it_and_errors_in_json(coordinator_api):
    location = submit(coordinator_api)["Location"]

    archive = coordinator_api.get(location + "download/", HTTP_ACCEPT="application/zip")
    missing = coordinator_api.get("/api/v1/exports/not-a-job/download/", HTTP_ACCEPT="application/zip")

    assert archive.status_code == 200 and archive["Content-Type"] == "application/zip"
    assert missing.status_code == 404 and missing["Content-Type"] == "application/problem+json"


def test_withdrawn_export_rights_refuse_the_download(coordinator_api, coordinator):
    location = submit(coordinator_api)["Location"]
    coordinator.memberships.update(role="nurse")

    assert coordinator_api.get(location + "download/").status_code == 403


def test_the_guide_and_the_schema_describe_the_exports():
    guide = Client().get("/api/").content.decode()
    assert "POST exports/" in guide
    schema = Client().get("/api/schema/?format=json").json()
    submit_operation = schema["paths"]["/api/v1/exports/"]["post"]
    assert submit_operation["tags"] == ["exports"] and "Location" in submit_operation["responses"]["202"]["headers"]
    download = schema["paths"]["/api/v1/exports/{id}/download/"]["get"]
    assert download["responses"]["200"]["content"] == {"application/zip": {"schema": {"type": "string",
                                                                                       "format": "binary"}}}


def test_a_freeze_is_exported_as_it_was_frozen_whatever_changed_since(coordinator_api, coordinator):
    from registry import access, services
    from registry.models import Patient

    services.freeze_create(user=access.SYSTEM, name="interim-2026")
    changed = Patient.objects.order_by("pk").first()
    services.record_delete(user=access.SYSTEM, record=changed, reason="test: changed after the freeze")

    submitted = submit(coordinator_api, freeze="interim-2026")
    status = finished_status(coordinator_api, submitted["Location"]).json()
    assert (status["state"], status["freeze"]) == ("done", "interim-2026")
    job = Job.objects.get()
    assert re.fullmatch(r"registry-pooled-csv-freeze-interim-2026-\d{8}-\d{4}\.zip", job.result_name)
    archive = zipfile.ZipFile(io.BytesIO(coordinator_api.get(status["download"]).content))
    patients = archive.read("patients.csv").decode("utf-8-sig")
    assert changed.pk in patients and len(patients.splitlines()) == 1 + 12  # the deleted patient is in the freeze
    assert "Data freeze:  interim-2026" in archive.read("README.txt").decode()


def test_an_unknown_freeze_is_a_400_naming_it(coordinator_api):
    response = submit(coordinator_api, freeze="no-such-freeze")
    assert "freeze" in field_errors(response) and not Job.objects.exists()
