"""A PI reads the survival dashboard in a real Chromium on a demo-like cohort: the curves with
their number-at-risk tables, a moved cut-off, a nurse refused another centre's view, and a death
entered meanwhile showing up as new data.

Runs against pytest-django's live server; the browser is Debian's Chromium (no download).
"""
import datetime
import io
import json

import pytest
from django.core.cache import cache
from django.core.management import call_command

from analysis.frame import analysis_frame
from registry import selectors, services
from registry.models import FollowUp, Patient
from tests import factories as f
from tests.registry.web.test_browser_entry import PASSWORD, browser_page, screenshot, sign_in  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def size_hr(page):
    """The DFS hazard ratio of the size factor, as the univariable table shows it."""
    row = page.locator("table.cox tbody tr", has=page.locator("th", has_text="Largest lesion >"))
    return row.locator("th").inner_text(), row.locator("td").nth(1).inner_text()


def record_death(nurse):
    """A death the day after the last known date of an analysed, living MUC patient."""
    frame = analysis_frame(centres=["MUC"])
    alive = frame[frame["eligible"] & (frame["os_event"] == 0)].iloc[0]
    last_known = alive["index_date"] + datetime.timedelta(days=round(alive["os_months"] * 365.25 / 12))
    services.record_save(user=nurse, record=FollowUp(
        patient=Patient.objects.get(pk=alive["patient_id"]), event="death",
        event_date=last_known.date() + datetime.timedelta(days=1), cause_of_death="sarcoma"))


def test_pi_reads_the_live_dashboard(live_server, browser_page, settings):  # noqa: F811
    page, base = browser_page, live_server.url
    page.set_default_timeout(60_000)  # an uncached page computes two dozen Cox models
    settings.DASHBOARD_POLL_SECONDS = 1
    cache.clear()
    call_command("generate_cohort", patients=120, centres=3, seed=2025, load=True, stdout=io.StringIO())
    f.user("pi", memberships=[("MUC", "pi")], password=PASSWORD)
    nurse = f.user("nurse", memberships=[("MUC", "nurse")], password=PASSWORD)

    sign_in(page, base, "pi")
    page.get_by_role("link", name="Survival dashboard").click()
    page.wait_for_selector("#km-os svg")
    for endpoint in ("dfs", "os"):
        figure = page.locator(f"#km-{endpoint} svg")
        assert figure.get_attribute("role") == "img"
        assert "Number at risk" in figure.inner_html()
    assert page.get_by_text("All centres (pooled)").is_visible()

    # What the page shows is the report's numbers (which test_dashboard holds equal to the
    # survival_report command): medians, events and the numbers at risk under the axis.
    report = json.loads(page.request.get(f"{base}/analysis/report.json").body())["report"]
    dfs = report["endpoints"]["dfs"]
    assert page.locator("#median-dfs").inner_text().startswith(f"{dfs['median_months']:.1f}")
    assert page.locator("#events-dfs").inner_text() == str(dfs["events"])
    risk_texts = page.locator("#km-dfs svg text").all_text_contents()
    start = risk_texts.index("Number at risk") + 2  # after the title and the group label
    at_12 = int(risk_texts[start + 1])
    assert at_12 == next(rate["at_risk"] for rate in dfs["rates"] if rate["months"] == 12)
    screenshot(page, "dashboard.png")

    # Does size outweigh number? Move the size cut-off and draw the curves by size.
    label, hr_20 = size_hr(page)
    assert label == "Largest lesion > 20 mm"
    page.fill("#id_size_cutoff_mm", "30")
    page.select_option("#id_stratify", "size_gt_2cm")
    with page.expect_navigation():
        page.get_by_role("button", name="Recompute").click()
    page.wait_for_selector("#km-os svg")
    label, hr_30 = size_hr(page)
    assert label == "Largest lesion > 30 mm" and hr_30 != hr_20
    legend = page.locator("#km-dfs svg").inner_html()
    assert "≤ 30 mm (n = " in legend and "&gt; 30 mm (n = " in legend and "Log-rank p" in legend
    page.locator("#km-dfs").locator("xpath=ancestor::div[contains(@class,'two')]").screenshot(
        path=str(screenshot_path("dashboard-km.png")))
    assert page.locator("#plan-hash").inner_text() != report["plan_hash"]
    version, os_events = page.locator("#data-version").inner_text(), int(page.locator("#events-os").inner_text())

    # A nurse of MUC meanwhile: another centre's view is refused; then she records a death.
    nurse_page = page.context.browser.new_context().new_page()
    sign_in(nurse_page, base, "nurse")
    assert nurse_page.goto(f"{base}/analysis/?centre=HD").status == 404
    nurse_page.context.close()
    record_death(nurse)

    banner = page.locator("#new-data")
    banner.wait_for(state="visible", timeout=15_000)  # the page polls the data version
    with page.expect_navigation():
        banner.get_by_role("link", name="Refresh").click()
    page.wait_for_selector("#km-os svg")
    assert page.locator("#data-version").inner_text() == selectors.data_version() != version
    assert int(page.locator("#events-os").inner_text()) == os_events + 1
    assert page.locator("#id_size_cutoff_mm").input_value() == "30"  # the plan survived the refresh


def screenshot_path(name):
    """In test-artifacts/ (the README's docs/screenshots/ come from the demo: make docs)."""
    from tests.registry.web.test_browser_entry import ARTIFACTS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


TABLE1_SECTIONS = """() => {
  const sections = [];
  for (const row of document.querySelectorAll("table.table1 tbody tr")) {
    const heading = row.querySelector("th[scope=rowgroup]");
    if (heading) { sections.push([heading.innerText.trim(), []]); }
    else { sections[sections.length - 1][1].push(row.querySelector("th").innerText.trim()); }
  }
  return sections;
}"""


def test_pi_reads_table1_and_the_print_report_whole(live_server, browser_page):  # noqa: F811
    page, base = browser_page, live_server.url
    page.set_default_timeout(60_000)
    cache.clear()
    call_command("generate_cohort", patients=60, centres=2, seed=7, load=True, stdout=io.StringIO())
    f.user("pi", memberships=[("MUC", "pi")], password=PASSWORD)
    sign_in(page, base, "pi")

    page.goto(f"{base}/analysis/?tfi_cutoff_months=18")
    sections = dict(page.evaluate(TABLE1_SECTIONS))
    for heading in ("Age at PM, years", "Disease-free interval (DFI), months", "Treatment-free interval (TFI), months",
                    "Max lesion diameter, mm", "Lesions resected"):
        assert sections[heading] == ["median (IQR)"], heading
    assert set(sections["Sex"]) <= {"female", "male", "diverse", "unknown"}
    assert set(sections["Treatment-free interval > 18 months"]) <= {"yes", "no", "unknown"}
    assert set(sections["Synchronous (disease-free interval ≤ 3 months)"]) <= {"yes", "no", "unknown"}

    # The print report on screen: the survival estimates keep their last column (60 months).
    page.goto(f"{base}/analysis/print/")
    wrap = page.locator("table.estimates").locator("xpath=..")
    assert wrap.evaluate("element => element.scrollWidth <= element.clientWidth")
    last = page.locator("table.estimates thead th").last
    assert last.inner_text() == "60 months"
    box, panel = last.bounding_box(), wrap.bounding_box()
    assert box["x"] + box["width"] <= panel["x"] + panel["width"] + 1
