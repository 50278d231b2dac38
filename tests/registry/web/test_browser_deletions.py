"""A nurse deletes a case, giving a reason; a coordinator finds it under Deleted records, reads its
history and restores it, in a real Chromium (the fixtures of test_browser_entry)."""
import pytest

from registry import services
from registry.models import DeletedRecord, Patient
from tests import factories as f
from tests.registry.web.test_browser_entry import PASSWORD, browser_page, screenshot, sign_in  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_deleted_case_is_found_read_and_restored_by_the_coordinator(live_server, browser_page):
    page, base = browser_page, live_server.url
    nurse = f.user("nurse", memberships=[("MUC", "nurse")], password=PASSWORD)
    f.user("coordinator", memberships=[("MUC", "coordinator")], password=PASSWORD)
    patient = f.patient("MUC", suffix="DEL3T3")
    for record in (f.primary_tumour(patient), f.metastasectomy(patient), f.follow_up(patient)):
        services.record_save(user=nurse, record=record)

    sign_in(page, base, "nurse")
    page.goto(f"{base}/patients/{patient.pk}/")
    page.get_by_role("link", name="Delete patient").click()
    page.get_by_role("button", name="Delete").click()  # the browser asks for the reason first
    assert Patient.objects.filter(pk=patient.pk).exists()
    page.fill("#id_reason", "entered for the wrong patient")
    with page.expect_navigation():
        page.get_by_role("button", name="Delete").click()
    assert not Patient.objects.filter(pk=patient.pk).exists()
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, base, "coordinator")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Deleted records").click()
    row = page.locator(f"#deleted-{DeletedRecord.objects.get().pk}")
    assert "entered for the wrong patient" in row.inner_text() and "nurse" in row.inner_text()
    screenshot(page, "deleted-records.png")

    row.get_by_role("link", name=patient.pk).click()
    assert page.get_by_text("This patient was deleted on").is_visible()
    assert page.get_by_text("Reason: entered for the wrong patient").first.is_visible()
    screenshot(page, "deleted-patient-history.png")
    page.go_back()

    page.locator(f"#deleted-{DeletedRecord.objects.get().pk}").get_by_placeholder("Reason for restoring").fill(
        "the right patient after all")
    with page.expect_navigation():
        page.get_by_role("button", name="Restore").click()
    assert page.url.endswith(f"/patients/{patient.pk}/")
    assert page.get_by_text("restored.").is_visible()
    assert Patient.objects.filter(pk=patient.pk).exists()
