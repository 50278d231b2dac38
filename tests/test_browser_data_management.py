"""The data-management cycle end to end in Chromium, as a study runs it: a monitor raises a query,
the nurse answers by correcting the field with a reason, the monitor closes the query and verifies
the records, the PI signs the case, the coordinator locks it, and a later import that touches the
locked patient is refused with nothing written."""
import re

import pytest

from registry import services
from registry.models import FollowUp, Metastasectomy, Patient, Query, Signature
from registry.selectors import case_load
from tests import factories as f
from tests.registry.web.test_browser_entry import PASSWORD, browser_page, screenshot, sign_in  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_out(page):
    page.get_by_role("button", name="Sign out").click()


def click_every(page, action):
    """Click the last button named `action` (…) until none is left (each click reloads the page): the
    patient's own button comes first, and a locked patient's records can no longer move."""
    pattern = re.compile(rf"^{action}\b")
    while page.get_by_role("button", name=pattern).count():
        with page.expect_navigation():
            page.get_by_role("button", name=pattern).last.click()


def test_query_answer_verify_sign_lock_and_a_refused_import(live_server, browser_page, tmp_path):  # noqa: F811
    page, base = browser_page, live_server.url
    nurse = f.user("nurse", memberships=[("MUC", "nurse")], password=PASSWORD)
    for role in ("monitor", "pi", "coordinator"):
        f.user(role, memberships=[("MUC", role)], password=PASSWORD)
    patient = f.patient("MUC", suffix="CYCL3A")
    for record in (f.primary_tumour(patient), f.metastasectomy(patient, max_lesion_diameter_mm=15),
                   f.follow_up(patient)):
        services.record_save(user=nurse, record=record)
    for record in case_load(patient).records():  # the nurse has entered the case and marked it complete
        services.record_status_set(user=nurse, record=record, status="complete")

    # 1. The monitor queries the lesion size.
    sign_in(page, base, "monitor")
    page.goto(f"{base}/patients/{patient.pk}/")
    page.locator("#metastasectomies").get_by_role("link", name="Raise a query").click()
    page.select_option("#id_field", "max_lesion_diameter_mm")
    page.fill("#id_text", "The pathology report says 18 mm.")
    page.get_by_role("button", name="Raise the query").click()
    query = Query.objects.get(origin="manual")
    sign_out(page)

    # 2. The nurse corrects the value from her worklist; the record is complete, so she gives a reason.
    sign_in(page, base, "nurse")
    page.goto(f"{base}/queries/")
    page.get_by_role("link", name=f"#{query.pk}").click()
    page.get_by_role("link", name="Correct the value").click()
    page.fill("#id_max_lesion_diameter_mm", "18")
    page.fill("#id_reason", "Pathology report, query")
    page.get_by_role("button", name="Save").click()
    pm = Metastasectomy.objects.get(patient=patient)
    assert pm.max_lesion_diameter_mm == 18 and Query.objects.get(pk=query.pk).state == "answered"
    assert "Pathology report, query" in pm.history.first().history_change_reason
    sign_out(page)

    # 3. The monitor closes the query and verifies every record.
    sign_in(page, base, "monitor")
    page.goto(f"{base}/queries/{query.pk}/")
    page.fill("#id_text", "Thank you.")
    page.get_by_role("button", name="Close").click()
    page.goto(f"{base}/patients/{patient.pk}/")
    click_every(page, "Verify")
    assert {r.status for r in case_load(Patient.objects.get(pk=patient.pk)).records()} == {"verified"}
    sign_out(page)

    # 4. The PI signs the case with her password.
    sign_in(page, base, "pi")
    page.goto(f"{base}/patients/{patient.pk}/sign/")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Sign", exact=True).click()
    assert Signature.objects.filter(patient_id=patient.pk).count() == 1
    sign_out(page)

    # 5. The coordinator locks every record.
    sign_in(page, base, "coordinator")
    page.goto(f"{base}/patients/{patient.pk}/")
    click_every(page, "Lock")
    assert {r.status for r in case_load(Patient.objects.get(pk=patient.pk)).records()} == {"locked"}
    screenshot(page, "data-management-locked.png")

    # 6. An import that changes the locked follow-up is refused at its row, and nothing is written.
    event = FollowUp.objects.get(patient=patient)
    csv = tmp_path / "follow_up.csv"
    csv.write_text(f"patient_id,event_date,event,recurrence_site,cause_of_death\n"
                   f"{patient.pk},{event.event_date.isoformat()},recurrence,lung,\n")
    before = [(r.pk, r.version, r.status) for r in case_load(Patient.objects.get(pk=patient.pk)).records()]
    page.goto(f"{base}/transfer/import/")
    page.set_input_files("#id_file", str(csv))
    with page.expect_navigation():
        page.get_by_role("button", name="Check and import").click()
    page.wait_for_selector("text=nothing was written")
    assert "locked" in page.locator("main").inner_text()
    after = [(r.pk, r.version, r.status) for r in case_load(Patient.objects.get(pk=patient.pk)).records()]
    assert after == before and FollowUp.objects.get(pk=event.pk).event == "contact"
    # The signature still holds: locking changed no value the PI signed, and the import nothing at all.
    page.goto(f"{base}/patients/{patient.pk}/")
    assert page.locator(".signature-valid").first.is_visible()
