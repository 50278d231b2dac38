"""The download page: coordinators (and PIs when allowed) export; nurses get 403; visitors sign in."""
import io
import zipfile

import pytest
from django.urls import reverse

from registry.management.commands.generate_cohort import cohort_load
from registry.models import ExportLog
from tests import factories as f
from tests.registry.transfer.test_import_support import centres, cohort

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry():
    centres()
    cohort_load(cohort(12, seed=4))


def download(client, **options):
    """The export request's response; when it became a job (run at once here: no worker), the job's file."""
    response = client.post(reverse("export_download"), {"centre": "", "file_format": "csv", "deidentify": "none",
                                                        **options})
    if response.status_code != 302 or not response.url.startswith("/transfer/jobs/"):
        return response
    job_page = client.get(response.url)
    assert job_page.context["job"].state == "done", job_page.context["job"].error
    return client.get(reverse("job_result", args=[job_page.context["job"].pk]))


def test_anonymous_visitor_is_sent_to_sign_in(client):
    for response in (client.get(reverse("export_download")), download(client)):
        assert response.status_code == 302 and reverse("login") in response.url


def test_nurse_cannot_download_the_pooled_export(client, registry):
    client.force_login(f.user("nurse", memberships=[("MUC", "nurse")]))
    assert client.get(reverse("export_download")).status_code == 403
    assert download(client).status_code == 403
    assert not ExportLog.objects.exists()


def test_pi_may_download_only_their_own_centre_and_only_when_the_setting_allows(client, registry, settings):
    client.force_login(f.user("pi", memberships=[("MUC", "pi")]))
    settings.EXPORT_ALLOW_PI = False
    assert download(client, centre="MUC").status_code == 403
    settings.EXPORT_ALLOW_PI = True
    page = client.get(reverse("export_download")).content.decode()
    assert "pooled" not in page and 'value="HD"' not in page  # row-level data: own centres only
    assert download(client, centre="MUC").status_code == 200
    for other in ("", "HD"):  # the pooled dataset, another centre
        assert download(client, centre=other).status_code in (200, 403)
        assert ExportLog.objects.filter(scope=other).count() == 0
    assert list(ExportLog.objects.values_list("scope", flat=True)) == ["MUC"]


def test_coordinator_downloads_a_zip_and_the_export_is_logged(client, registry):
    coordinator = f.user("coordinator", memberships=[("MUC", "coordinator")])
    client.force_login(coordinator)
    page = client.get(reverse("export_download"))
    assert page.status_code == 200 and "Stata (.dta)" in page.content.decode()

    response = download(client, centre="HD", file_format="sav", deidentify="intervals")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert 'filename="registry-HD-sav-intervals-' in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert "patients.sav" in archive.namelist() and "README.txt" in archive.namelist()
    log = ExportLog.objects.get()
    assert (log.user, log.scope, log.file_format, log.deidentify) == (coordinator, "HD", "sav", "intervals")


def test_unknown_option_is_a_form_error_not_a_500(client, registry):
    client.force_login(f.user("coordinator", memberships=[("MUC", "coordinator")]))
    response = download(client, file_format="exe")
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not ExportLog.objects.exists()


def test_the_page_exports_a_data_freeze_as_it_was_frozen(client, registry):
    from registry import access, services
    from registry.models import Patient

    client.force_login(f.user("coordinator", memberships=[("MUC", "coordinator")]))
    services.freeze_create(user=access.SYSTEM, name="paper")
    page = client.get(reverse("export_download")).content.decode()
    assert 'value="paper"' in page and "the live registry, now" in page
    gone = Patient.objects.order_by("pk").first()
    services.record_delete(user=access.SYSTEM, record=gone, reason="test: deleted after the freeze")

    frozen = zipfile.ZipFile(io.BytesIO(download(client, freeze="paper").content))
    live = zipfile.ZipFile(io.BytesIO(download(client).content))
    assert gone.pk in frozen.read("patients.csv").decode("utf-8-sig")
    assert gone.pk not in live.read("patients.csv").decode("utf-8-sig")
    assert list(ExportLog.objects.order_by("pk").values_list("freeze", flat=True)) == ["paper", ""]
