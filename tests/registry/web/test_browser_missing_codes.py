"""In a real Chromium, a nurse marks an optional value unknown with the code choice beside its field,
found by its label as a screen reader finds it, and the patient page says "Unknown"."""
import datetime

import pytest

from registry import services
from registry.models import PrimaryTumour
from tests import factories as f
from tests.registry.web.test_browser_entry import browser_page, screenshot, sign_in  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_nurse_marks_the_grade_unknown_by_its_labelled_choice(live_server, browser_page):  # noqa: F811
    page, base = browser_page, live_server.url
    nurse = f.user("nurse", memberships=[("MUC", "nurse")])
    patient = f.patient("MUC", lung_mets_diagnosis_date=datetime.date(2015, 3, 1))
    tumour = services.record_save(user=nurse, record=f.primary_tumour(patient))
    sign_in(page, base, "nurse")
    page.goto(f"{base}/patients/{patient.pk}/primary-tumour/{tumour.pk}/edit/")

    page.get_by_label("Grade", exact=True).select_option("")
    page.get_by_label("Grade: empty because").select_option(label="Unknown")
    screenshot(page, "missing-code-form.png")
    with page.expect_navigation():
        page.get_by_role("button", name="Save", exact=True).click()

    stored = PrimaryTumour.objects.get()
    assert stored.grade is None and stored.missing_codes == {"grade": "UNK"}
    grade = page.locator("dt", has_text="Grade").locator("xpath=following-sibling::dd[1]")
    assert grade.inner_text().strip() == "Unknown"
