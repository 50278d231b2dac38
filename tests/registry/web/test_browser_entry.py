"""A study nurse enters a whole case in a real Chromium, submitting every form with Enter.

Runs against pytest-django's live server; the browser is Debian's Chromium (no download).
"""
import os
from pathlib import Path

import pytest

from registry import services
from registry.models import FollowUp, Patient
from tests import factories as f

# Playwright's sync API runs an event loop in this thread; Django's ORM calls from the test
# body are still synchronous and safe.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[3]  # the repository
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct-horse-battery"


@pytest.fixture
def browser_page():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        message = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):  # .ci/run installs it: in CI a missing browser is a failure
            pytest.fail(message)
        pytest.skip(message)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-GB")
        page = context.new_page()
        page.set_default_timeout(10_000)
        yield page
        browser.close()


def screenshot(page, name):
    """Into test-artifacts/ (the README's docs/screenshots/ come from the demo: make docs)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / name, full_page=True)


def sign_in(page, base, username):
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.press("#id_password", "Enter")
    page.wait_for_load_state()


def fill(page, values):
    """Type text and dates, choose options; the form is then submitted with Enter, not the mouse."""
    for name, value in values.items():
        selector = f"#id_{name}"
        if page.locator(selector).evaluate("el => el.tagName") == "SELECT":
            page.select_option(selector, value)
        else:
            page.fill(selector, value)


def submit_with_enter(page, field):
    with page.expect_navigation():
        page.press(f"#id_{field}", "Enter")


def add(page, button, values, enter_in):
    page.get_by_role("link", name=button).click()
    fill(page, values)
    submit_with_enter(page, enter_in)


def incomplete_patients(nurse):
    """A few MUC cases with typical gaps, so the data-quality page has something to show."""
    bare = f.patient("MUC", suffix="B4RE01", ecog=None)
    stale = f.patient("MUC", suffix="ST4LE2", histology="UPS")
    services.record_save(user=nurse, record=f.primary_tumour(stale, grade=None))
    services.record_save(user=nurse, record=f.metastasectomy(stale))
    services.record_save(user=nurse, record=f.follow_up(stale))
    no_follow_up = f.patient("MUC", suffix="NOFU03", histology="SyS")
    services.record_save(user=nurse, record=f.primary_tumour(no_follow_up, margin=None))
    services.record_save(user=nurse, record=f.metastasectomy(no_follow_up))
    return [bare, stale, no_follow_up]


def test_nurse_enters_a_case_with_the_keyboard(live_server, browser_page):
    page, base = browser_page, live_server.url
    nurse = f.user("nurse", memberships=[("MUC", "nurse")], password=PASSWORD)
    f.user("coordinator", memberships=[("MUC", "coordinator")], password=PASSWORD)
    berlin = f.patient("BER", suffix="B3RL1N")
    incomplete_patients(nurse)

    sign_in(page, base, "nurse")
    assert page.url.endswith("/patients/?centre=MUC")

    add(page, "New patient", {"sex": "female", "birth_year": "1962", "histology": "LMS",
                              "lung_mets_diagnosis_date": "2016-02-10", "extrapulmonary_disease_at_pm": "false",
                              "ecog": "1"}, enter_in="ecog")
    patient = Patient.objects.exclude(pk__in=["MUC-B4RE01", "MUC-ST4LE2", "MUC-NOFU03"]).get(centre="MUC")
    assert page.url.endswith(f"/patients/{patient.pk}/")

    add(page, "Add primary tumour", {"diagnosis_date": "2014-09-15", "site": "uterus", "size_mm": "95",
                                     "depth": "deep", "grade": "G3", "surgery_date": "2014-10-02",
                                     "margin": "R0", "radiotherapy": "none"}, enter_in="size_mm")
    add(page, "Add metastasectomy", {"surgery_date": "2016-03-08", "side": "right", "approach": "vats",
                                     "resection_type": "wedge", "lesions_resected": "2",
                                     "max_lesion_diameter_mm": "18", "margin": "R0", "clavien_dindo": "I",
                                     "hospital_stay_days": "5"}, enter_in="hospital_stay_days")
    add(page, "Add systemic therapy", {"start_date": "2016-04-20", "end_date": "2016-08-10",
                                       "regimen": "doxorubicin_ifosfamide", "intent": "pm_adjuvant", "cycles": "6",
                                       "best_response": "NE"}, enter_in="cycles")
    add(page, "Add follow-up event", {"event_date": "2017-03-01", "event": "contact"}, enter_in="event_date")
    add(page, "Add follow-up event", {"event_date": "2018-01-15", "event": "recurrence",
                                      "recurrence_site": "lung"}, enter_in="event_date")
    assert FollowUp.objects.filter(patient=patient).count() == 2

    # A follow-up dated before the operation: the error is at the field and nothing is saved.
    add(page, "Add follow-up event", {"event_date": "2016-01-01", "event": "contact"}, enter_in="event_date")
    error = page.locator(".field.has-error", has=page.locator("#id_event_date")).locator(".field-error")
    assert "before the first metastasectomy (2016-03-08)" in error.inner_text()
    assert page.locator("#id_event_date").get_attribute("aria-invalid") == "true"
    assert FollowUp.objects.filter(patient=patient).count() == 2
    page.get_by_role("link", name="Cancel").click()

    page.wait_for_selector("text=Index operation (first metastasectomy)")
    screenshot(page, "patient-page.png")

    page.goto(f"{base}/centres/MUC/data-quality/")
    assert page.locator("table.data tbody tr").count() == 4  # the new case: last follow-up is old
    screenshot(page, "data-quality.png")

    # Another centre's patient is refused (and not even confirmed to exist).
    response = page.goto(f"{base}/patients/{berlin.pk}/")
    assert response.status == 404

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, base, "coordinator")
    assert page.get_by_role("heading", name="Choose a centre").is_visible()
    assert page.get_by_role("link", name="Centre MUC").is_visible()
    assert page.get_by_role("link", name="Centre BER").is_visible()
    page.goto(f"{base}/patients/{berlin.pk}/")
    assert page.get_by_role("heading", name=f"Patient {berlin.pk}").is_visible()
