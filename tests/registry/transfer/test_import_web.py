"""The upload page: nurses and coordinators import, every error on screen and as CSV, nothing half-written.

An upload becomes a job (registry/transfer/jobs.py); without a worker, as here, it runs at once and
the browser lands on the job's page with the outcome."""
import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from registry.models import ImportRun, Job, Patient
from tests import factories as f
from tests.registry.transfer.test_import_support import centres, cohort, new_patients, workbook_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def nurse(client):
    centres()
    user = f.user("nurse.muc", memberships=[("MUC", "nurse")])
    client.force_login(user)
    return user


def own_centre(tables):
    """The MUC patients of a cohort, as new patients named by local keys."""
    return new_patients({t: [r for r in rows if r["patient_id"].startswith("MUC-")] for t, rows in tables.items()})


def upload(client, data, *, name="muc.xlsx", dry_run=False, **extra):
    """The upload's response, or, when it became a job, the job's page it redirects to."""
    form = {"file": SimpleUploadedFile(name, data), "table": ""}
    if dry_run:
        form["dry_run"] = "on"
    response = client.post(reverse("import_upload"), form, **extra)
    if response.status_code == 302:
        assert response.url.startswith("/transfer/jobs/")
        return client.get(response.url)
    return response


def test_anonymous_visitor_is_sent_to_sign_in(client):
    response = client.get(reverse("import_upload"))
    assert response.status_code == 302 and reverse("login") in response.url
    response = client.post(reverse("import_upload"), {})
    assert response.status_code == 302 and reverse("login") in response.url


def test_pi_gets_403(client):
    centres()
    client.force_login(f.user("pi", memberships=[("MUC", "pi")]))
    assert client.get(reverse("import_upload")).status_code == 403


def test_nurse_sees_the_form(client, nurse):
    response = client.get(reverse("import_upload"))
    assert response.status_code == 200
    assert 'enctype="multipart/form-data"' in response.content.decode()


def test_dry_run_shows_the_counts_and_writes_nothing(client, nurse):
    tables = own_centre(cohort(10))
    response = upload(client, workbook_bytes(tables), dry_run=True)
    page = response.content.decode()
    assert response.status_code == 200
    assert "Dry run: the file passes every check" in page
    assert f"<td>patients</td><td>{len(tables['patients'])}</td>" in page
    assert not Patient.objects.exists() and not ImportRun.objects.exists()


def test_import_writes_and_records_the_run(client, nurse):
    tables = own_centre(cohort(10))
    response = upload(client, workbook_bytes(tables))
    assert response.status_code == 200 and "Imported" in response.content.decode()
    assert Patient.objects.count() == len(tables["patients"])
    assert ImportRun.objects.get().user == nurse
    assert {h.history_user for h in Patient.history.all()} == {nurse}


def test_refused_file_lists_every_error_and_offers_them_as_csv(client, nurse):
    tables = own_centre(cohort(10))
    tables["patients"][1]["sex"] = "<script>x</script>"
    tables["follow_up"][0]["event"] = "lost"
    response = upload(client, workbook_bytes(tables))
    page = response.content.decode()
    assert "2 problems: nothing was written" in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>x" not in page
    download = client.get(reverse("job_errors", args=[response.context["job"].pk]))
    assert download["Content-Type"].startswith("text/csv")
    lines = download.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "sheet,row,column,value,message"
    assert lines[1].startswith("patients,3,sex,<script>x</script>,")
    assert lines[2].startswith("follow_up,2,event,lost,")
    assert not Patient.objects.exists()


def test_the_nurse_downloads_the_issued_pseudonyms_by_her_local_keys_and_the_database_keeps_none(client, nurse):
    tables = own_centre(cohort(6))
    tables["patients"][0]["local_id"] = "ward-7-bed-3"
    for table in ("primary_tumours", "metastasectomies", "systemic_therapies", "follow_up"):
        for row in tables[table]:
            if row["local_id"] == "P1":
                row["local_id"] = "ward-7-bed-3"
    page = upload(client, workbook_bytes(tables))
    new = len(tables["patients"])
    assert new > 1 and f"The registry issued pseudonyms to {new} new patients." in page.content.decode()

    download = client.get(reverse("job_pseudonyms", args=[page.context["job"].pk]))

    lines = download.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "local_id,patient_id,centre" and len(lines) == new + 1
    local_id, pseudonym, centre = lines[1].split(",")
    assert local_id == "ward-7-bed-3" and Patient.objects.filter(pk=pseudonym, centre_id="MUC").exists()
    stored = Job.objects.filter(pk=page.context["job"].pk).values_list("report", "payload", "result").get()
    assert "ward-7-bed-3" not in repr(stored)


def test_a_job_and_its_error_report_are_not_found_by_another_user(client, nurse):
    tables = own_centre(cohort(3))
    tables["patients"][0]["sex"] = "x"
    job = upload(client, workbook_bytes(tables)).context["job"]
    assert client.get(reverse("job_errors", args=[job.pk])).status_code == 200
    client.force_login(f.user("other", memberships=[("MUC", "nurse")]))
    assert client.get(reverse("job_detail", args=[job.pk])).status_code == 404
    assert client.get(reverse("job_errors", args=[job.pk])).status_code == 404


def test_the_uploaded_file_is_not_kept_after_its_job(client, nurse):
    job = upload(client, workbook_bytes(own_centre(cohort(3))), dry_run=True).context["job"]
    assert Job.objects.filter(pk=job.pk, state=Job.DONE, payload=None).exists()


def test_recent_jobs_are_listed_on_the_upload_page(client, nurse):
    upload(client, workbook_bytes(own_centre(cohort(3))), name="first.xlsx", dry_run=True)
    page = client.get(reverse("import_upload")).content.decode()
    assert "first.xlsx (dry run)" in page and "finished" in page


def test_nurse_uploading_another_centres_patients_is_refused(client, nurse):
    response = upload(client, workbook_bytes(new_patients(cohort(10))))
    assert "You may not write patients of centre HD." in response.content.decode()
    assert not Patient.objects.exists()


def test_broken_file_gets_a_message_not_a_500(client, nurse):
    response = upload(client, b"PK\x03\x04 broken", name="muc.xlsx")
    assert response.status_code == 200
    assert "damaged or truncated" in response.content.decode()


def test_oversized_upload_is_refused_before_reading(client, nurse, settings):
    settings.IMPORT_MAX_UPLOAD_BYTES = 10
    response = upload(client, workbook_bytes(own_centre(cohort(3))), CONTENT_LENGTH=str(5 * 2**20))
    assert response.status_code == 413
    assert "larger than the limit" in response.content.decode()
    response = upload(client, workbook_bytes(own_centre(cohort(3))))
    assert response.status_code == 413
    assert not Patient.objects.exists()


def test_why_a_job_failed_is_told_in_the_readers_language_with_the_workers_limits(client, nurse):
    """The worker has no language: the job keeps a code and the limits it ran under."""
    job = Job.objects.create(kind=Job.IMPORT, user=nurse, state=Job.FAILED, options={"file_name": "big.xlsx"},
                             error="too_long 5 700")
    page = client.get(reverse("job_detail", args=[job.pk]), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "länger als die Grenze von 5 Sekunden" in page
    page = client.get(reverse("job_detail", args=[job.pk]), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "took longer than the limit of 5 seconds" in page


def test_importing_an_unchanged_file_again_says_that_nothing_changed(client, nurse):
    from registry.transfer.exporting import dataset_export  # the registry's own export, re-imported

    first = upload(client, workbook_bytes(own_centre(cohort(6))))
    assert "created" in first.content.decode()
    archive = io.BytesIO()
    dataset_export(user=nurse_as_coordinator(), out=archive, file_format="xlsx", centre="MUC")
    with zipfile.ZipFile(archive) as exported:
        workbook = exported.read("registry.xlsx")  # every table, one sheet each
    again = upload(client, workbook, name="registry.xlsx").content.decode()
    assert "nothing changed" in again and "rows imported" not in again


def nurse_as_coordinator():
    return f.user("coordinator", memberships=[("MUC", "coordinator")])
