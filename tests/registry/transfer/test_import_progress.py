"""An import's progress: the steps and rows the import reports, the job page's bar with its
estimate of the time left, and in Chromium a page that follows the job by itself to its result."""
import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from registry import access
from registry.models import Job
from registry.transfer import jobs
from registry.transfer.importing import STEP_SHARES, file_import
from tests import factories as f
from tests.registry.transfer.test_import_support import centres, cohort, new_cohort, new_patients, workbook_bytes
from tests.registry.web.test_browser_entry import PASSWORD, browser_page, sign_in  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def test_an_import_reports_each_step_and_the_rows_checked_with_a_growing_share_done():
    centres()
    tables = new_cohort(patients=12)
    seen = []
    file_import(user=access.SYSTEM, data=workbook_bytes(tables), filename="cohort.xlsx",
                on_step=lambda step, rows, fraction: seen.append((step, rows, fraction)))
    steps = [step for step, _rows, _fraction in seen]
    assert steps[0] == "read" and steps[-2:] == ["merge", "write"]
    assert steps.count("check") == len(tables) + 1  # the step's start, then after each sheet
    fractions = [fraction for _step, _rows, fraction in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1 - STEP_SHARES["write"])
    assert seen[-1][1] == sum(len(rows) for rows in tables.values())


def running_job(user, *, fraction, rows, seconds):
    return Job.objects.create(kind=Job.IMPORT, user=user, state=Job.RUNNING, step="check",
                              started_at=timezone.now() - datetime.timedelta(seconds=seconds),
                              options={"file_name": "big.xlsx", "table": "", "dry_run": False},
                              report={"progress": {"rows": rows, "fraction": fraction}})


def test_the_job_page_shows_the_share_done_the_rows_and_the_time_left(client):
    nurse = f.user("nurse", memberships=[("MUC", "nurse")])
    client.force_login(nurse)
    job = running_job(nurse, fraction=0.25, rows=5000, seconds=10)
    html = client.get(reverse("job_detail", args=[job.pk])).content.decode()
    assert 'value="25"' in html and "5000 rows checked" in html
    left = int(re.search(r"about (\d+) seconds left", html).group(1))
    assert 30 <= left <= 60  # 10 s (and the request's own time) for a quarter: three times that left
    assert "nothing was written" not in html  # no outcome before the end


def test_no_estimate_is_shown_before_five_percent_are_done(client):
    nurse = f.user("nurse", memberships=[("MUC", "nurse")])
    client.force_login(nurse)
    job = running_job(nurse, fraction=0.02, rows=0, seconds=3)
    html = client.get(reverse("job_detail", args=[job.pk])).content.decode()
    assert 'value="2"' in html and "left" not in html


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_job_page_shows_a_progress_bar_and_follows_the_job_to_its_result(live_server, browser_page):  # noqa: F811
    page, base = browser_page, live_server.url
    nurse = f.user("nurse", memberships=[("MUC", "nurse")], password=PASSWORD)
    job = running_job(nurse, fraction=0.5, rows=1200, seconds=8)
    sign_in(page, base, "nurse")
    page.goto(f"{base}{reverse('job_detail', args=[job.pk])}")
    assert page.locator("#job-progress").get_attribute("value") == "50"
    assert "1200 rows checked" in page.locator(".job-progress").inner_text()
    page.reload()  # the page is the job's: a reload shows it again
    assert page.locator("#job-progress").is_visible()
    # The worker finishes; the page, reloading itself, shows the outcome without the nurse acting.
    job.state, job.finished_at = Job.DONE, timezone.now()
    job.report = {"ok": True, "dry_run": False, "written": True, "rows": 1200, "counts": {},
                  "totals": {"created": 1200, "updated": 0, "unchanged": 0}, "seconds": 9.0, "error_count": 0,
                  "new_patients": 0}
    job.save()
    page.wait_for_selector("text=Imported", timeout=15_000)
    assert page.locator("#job-progress").count() == 0
    assert jobs.job_of(nurse, job.pk).state == Job.DONE


def muc_patients():
    """New MUC patients of a synthetic cohort, named by local keys, as a MUC nurse's file."""
    tables = cohort(patients=8)
    return new_patients({t: [r for r in rows if r["patient_id"].startswith("MUC-")] for t, rows in tables.items()})


def dry_run(client, tables):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post(reverse("import_upload"), {
        "file": SimpleUploadedFile("muc.xlsx", workbook_bytes(tables)), "table": "", "dry_run": "on"})
    return Job.objects.get(pk=response.url.split("/")[-2])


def test_after_a_clean_dry_run_import_now_imports_the_same_file_once(client):
    from registry.models import Patient

    centres()
    nurse = f.user("nurse", memberships=[("MUC", "nurse")])
    client.force_login(nurse)
    checked = dry_run(client, muc_patients())
    page = client.get(reverse("job_detail", args=[checked.pk])).content.decode()
    assert "Import now" in page and not Patient.objects.exists()
    response = client.post(reverse("job_import_now", args=[checked.pk]))
    imported = Job.objects.get(pk=response.url.split("/")[-2])
    assert imported.pk != checked.pk and imported.options["dry_run"] is False and imported.report["written"]
    assert Patient.objects.count() == imported.report["counts"]["patients"]["created"] > 0
    again = client.post(reverse("job_import_now", args=[checked.pk]))
    assert again.url == reverse("import_upload")  # the kept file went with the import: no second one
    assert Patient.objects.count() == imported.report["counts"]["patients"]["created"]


def test_another_user_cannot_import_a_nurses_checked_file(client):
    centres()
    nurse = f.user("nurse", memberships=[("MUC", "nurse")])
    client.force_login(nurse)
    checked = dry_run(client, muc_patients())
    client.force_login(f.user("coordinator", memberships=[("MUC", "coordinator")]))
    assert client.post(reverse("job_import_now", args=[checked.pk])).status_code == 404


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_nurse_dry_runs_a_file_then_imports_it_without_choosing_it_again(live_server, browser_page, tmp_path):  # noqa: F811
    from registry.models import Patient

    page, base = browser_page, live_server.url
    centres()
    f.user("nurse", memberships=[("MUC", "nurse")], password=PASSWORD)
    path = tmp_path / "muc.xlsx"
    path.write_bytes(workbook_bytes(muc_patients()))
    sign_in(page, base, "nurse")
    page.goto(f"{base}{reverse('import_upload')}")
    page.set_input_files("#id_file", str(path))
    page.check("#id_dry_run")
    with page.expect_navigation():
        page.get_by_role("button", name="Check and import").click()
    page.wait_for_selector("text=Dry run: the file passes every check")
    assert not Patient.objects.exists()
    with page.expect_navigation():
        page.get_by_role("button", name="Import now").click()
    page.wait_for_selector("text=Imported")
    assert Patient.objects.filter(centre="MUC").exists()
