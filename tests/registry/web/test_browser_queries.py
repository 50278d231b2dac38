"""The query cycle in a real Chromium: a monitor raises a query on the patient page, the nurse finds
it on her worklist and answers by correcting the field, the monitor finds the answer on his and
closes the query.

Runs against pytest-django's live server, as tests/registry/web/test_browser_entry.py does.
"""
import pytest

from registry import services
from registry.models import Metastasectomy, Query
from tests import factories as f
from tests.registry.web.test_browser_entry import PASSWORD, browser_page, screenshot, sign_in  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_out(page):
    page.get_by_role("button", name="Sign out").click()


def test_a_query_goes_from_the_monitor_to_the_nurse_and_back(live_server, browser_page):  # noqa: F811
    page, base = browser_page, live_server.url
    nurse = f.user("nurse", memberships=[("MUC", "nurse")], password=PASSWORD)
    f.user("monitor", memberships=[("MUC", "monitor")], password=PASSWORD)
    patient = f.patient("MUC", suffix="QU3RY1")
    services.record_save(user=nurse, record=f.metastasectomy(patient, max_lesion_diameter_mm=15))

    sign_in(page, base, "monitor")
    page.goto(f"{base}/patients/{patient.pk}/")
    screenshot(page, "query-patient-page.png")
    page.locator("#metastasectomies").get_by_role("link", name="Raise a query").click()
    page.select_option("#id_field", "max_lesion_diameter_mm")
    page.fill("#id_text", "Is 15 mm the pathology value?")
    page.get_by_role("button", name="Raise the query").click()
    query = Query.objects.get(origin="manual")
    assert page.url.endswith(f"/queries/{query.pk}/")
    sign_out(page)

    sign_in(page, base, "nurse")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Queries").click()
    screenshot(page, "query-worklist.png")
    page.get_by_role("link", name=f"#{query.pk}").click()
    page.get_by_role("link", name="Correct the value").click()
    assert page.get_by_text(f"Answering query {query.pk}").is_visible()
    page.fill("#id_max_lesion_diameter_mm", "18")
    page.get_by_role("button", name="Save").click()
    assert page.url.endswith(f"/queries/{query.pk}/")
    assert page.get_by_text(f"query {query.pk} is answered").is_visible()
    pm = Metastasectomy.objects.get(patient=patient)
    assert pm.max_lesion_diameter_mm == 18
    assert page.get_by_text(f"change: version {pm.version} of the record").is_visible()
    screenshot(page, "query-thread.png")
    sign_out(page)

    sign_in(page, base, "monitor")
    page.goto(f"{base}/queries/")
    assert page.get_by_role("heading", name="My queries").is_visible()
    page.get_by_role("link", name=f"#{query.pk}").click()
    page.fill("#id_text", "Thank you.")
    page.get_by_role("button", name="Close").click()
    assert Query.objects.get(pk=query.pk).state == "closed"
    assert page.get_by_text(f"Query {query.pk} is now closed.").is_visible()
