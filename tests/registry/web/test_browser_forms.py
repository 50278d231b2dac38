"""The data-entry forms in Chromium: typed dates in English and German (one Tab stop, echoed in
words), "Save and add another" with Ctrl+Enter, and a stale save that keeps the nurse's entries.

Runs against pytest-django's live server; the browser is Debian's Chromium (no download).
"""
import datetime

import pytest

from registry import services
from registry.models import FollowUp, Metastasectomy
from tests import factories as f
from tests.registry.web.test_browser_entry import PASSWORD, browser_page, screenshot, sign_in  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def nurse_case():
    nurse = f.user("nurse", memberships=[("MUC", "nurse")], password=PASSWORD)
    patient = f.patient("MUC")
    services.record_save(user=nurse, record=f.metastasectomy(patient))  # 2015-04-01
    return nurse, patient


def in_german(page, base):
    page.context.add_cookies([{"name": "django_language", "value": "de", "url": base}])


@pytest.mark.parametrize("language,typed,echo", [("en", "2016-03-02", "2 March 2016"),
                                                 ("de", "02.03.2016", "2. März 2016")])
def test_a_nurse_types_a_date_in_her_language_and_sees_it_in_words(
        live_server, browser_page, nurse_case, language, typed, echo):  # noqa: F811
    page, base = browser_page, live_server.url
    _nurse, patient = nurse_case
    if language == "de":
        in_german(page, base)
    sign_in(page, base, "nurse")
    page.goto(f"{base}/patients/{patient.pk}/follow-up/add/")
    page.locator("#id_event_date").focus()
    page.keyboard.type(typed)
    assert page.locator("#id_event_date_echo").inner_text() == echo
    page.keyboard.press("Tab")  # one stop for the date: the next is the event, not the calendar
    assert page.evaluate("document.activeElement.id") == "id_event"
    page.select_option("#id_event", "contact")
    with page.expect_navigation():
        page.press("#id_event_date", "Enter")
    assert FollowUp.objects.get(patient=patient).event_date == datetime.date(2016, 3, 2)


def test_a_date_with_slashes_is_refused_at_the_field_in_german(live_server, browser_page, nurse_case):  # noqa: F811
    page, base = browser_page, live_server.url
    _nurse, patient = nurse_case
    in_german(page, base)
    sign_in(page, base, "nurse")
    page.goto(f"{base}/patients/{patient.pk}/follow-up/add/")
    page.fill("#id_event_date", "03/02/2016")
    page.select_option("#id_event", "contact")
    with page.expect_navigation():
        page.press("#id_event_date", "Enter")
    error = page.locator(".field.has-error", has=page.locator("#id_event_date")).locator(".field-error")
    assert "TT.MM.JJJJ" in error.inner_text()
    assert page.locator("#id_event_date").input_value() == "03/02/2016"  # what she typed is kept
    assert not FollowUp.objects.filter(patient=patient).exists()


def test_ctrl_enter_saves_and_opens_a_new_form_of_the_same_kind(live_server, browser_page, nurse_case):  # noqa: F811
    page, base = browser_page, live_server.url
    _nurse, patient = nurse_case
    sign_in(page, base, "nurse")
    page.goto(f"{base}/patients/{patient.pk}/follow-up/add/")
    assert "Ctrl" in page.locator("#shortcuts").inner_text()
    for day in ("2016-01-10", "2016-06-10"):
        page.fill("#id_event_date", day)
        page.select_option("#id_event", "contact")
        with page.expect_navigation():
            page.press("#id_event_date", "Control+Enter")
        assert page.url.endswith(f"/patients/{patient.pk}/follow-up/add/")
        assert page.locator("#id_event_date").input_value() == ""
    assert FollowUp.objects.filter(patient=patient).count() == 2


def test_a_stale_save_keeps_the_nurses_entries_and_names_who_saved_meanwhile(
        live_server, browser_page, nurse_case):  # noqa: F811
    page, base = browser_page, live_server.url
    _nurse, patient = nurse_case
    colleague = f.user("colleague", memberships=[("MUC", "nurse")], password=PASSWORD)
    pm = Metastasectomy.objects.get(patient=patient)
    sign_in(page, base, "nurse")
    page.goto(f"{base}/patients/{patient.pk}/metastasectomies/{pm.pk}/edit/")
    page.fill("#id_hospital_stay_days", "9")  # hers
    # Meanwhile a colleague changes another field of the same record.
    theirs = Metastasectomy.objects.get(pk=pm.pk)
    theirs.lesions_resected = 3
    services.record_save(user=colleague, record=theirs)
    with page.expect_navigation():
        page.press("#id_hospital_stay_days", "Enter")
    alert = page.get_by_role("alert")
    assert "colleague saved this record" in alert.inner_text()
    assert page.locator("#id_hospital_stay_days").input_value() == "9"  # her entry is kept
    assert page.locator("#id_lesions_resected").input_value() == "3"  # theirs is taken in
    screenshot(page, "stale-save-merge.png")
    # Field by field she may take theirs or keep hers; here she keeps her stay and takes their count.
    page.get_by_role("button", name="Keep mine (lesions resected)").click()
    assert page.locator("#id_lesions_resected").input_value() == "1"
    page.get_by_role("button", name="Use theirs (lesions resected)").click()
    assert page.locator("#id_lesions_resected").input_value() == "3"
    with page.expect_navigation():
        page.press("#id_hospital_stay_days", "Enter")  # saved against the new version
    saved = Metastasectomy.objects.get(pk=pm.pk)
    assert (saved.hospital_stay_days, saved.lesions_resected) == (9, 3)
