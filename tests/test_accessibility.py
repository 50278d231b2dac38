"""Every page type, in English and German, checked with axe-core in Chromium against WCAG 2.1 A
and AA: any violation fails, and the message lists the rule, the page and the elements. The German
pages, figures included, are also scanned for English text left untranslated.

axe-core comes from the npm registry (package.json, `npm ci`, which `make test` runs) and is
injected from the repository's node_modules into each page, never fetched from a CDN.
"""
import io
import json
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.urls import reverse

from registry import services
from registry.models import Patient
from registry.selectors import case_load
from registry.services import queries
from registry.services.freezes import freeze_create
from tests import factories as f
from tests.registry.web.test_browser_entry import PASSWORD, browser_page, sign_in  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def pages(patient, pm, query):
    """(role, path) of every page type; the role is the one who sees the page at its fullest."""
    return [
        ("anonymous", reverse("login")),
        ("coordinator", reverse("home")),
        ("nurse", reverse("patient_list")),
        ("nurse", reverse("patient_detail", args=[patient])),
        ("nurse", reverse("patient_edit", args=[patient])),
        ("nurse", reverse("record_add", args=[patient, "follow-up"])),
        ("nurse", reverse("record_edit", args=[patient, "metastasectomies", pm])),
        ("nurse", reverse("record_delete", args=[patient, "metastasectomies", pm])),
        ("nurse", reverse("patient_history", args=[patient])),
        ("nurse", reverse("data_quality", args=["MUC"])),
        ("nurse", reverse("follow_up_due")),
        ("nurse", reverse("query_list")),
        ("nurse", reverse("query_detail", args=[query])),
        ("nurse", reverse("deleted_records")),
        ("monitor", reverse("query_new", args=[patient, "metastasectomies", pm])),
        ("monitor", reverse("record_verify", args=[patient, "metastasectomies", pm])),
        ("pi", reverse("patient_sign", args=[patient])),
        ("pi", reverse("centre_sign", args=["MUC"])),
        ("coordinator", reverse("freeze_list")),
        ("coordinator", reverse("freeze_diff") + "?freeze=first&against=live"),
        ("coordinator", reverse("study_progress")),
        ("coordinator", reverse("import_upload")),
        ("coordinator", reverse("export_download")),
        ("pi", reverse("analysis:dashboard")),
        ("pi", reverse("analysis:print")),
        ("nurse", reverse("api:guide")),
        ("nurse", reverse("api:tokens")),
        ("coordinator", reverse("security_log")),
        ("coordinator", reverse("audit_export")),
        ("nurse", reverse("two_factor_setup")),
        ("nurse", reverse("password_change")),
        ("nurse", reverse("password_change_done")),
        ("nurse", "/no-such-page/"),
    ]


TEXT_NODES = """() => {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const texts = [];
  while (walker.nextNode()) {
    const parent = walker.currentNode.parentElement;
    // the user name (a login, not a word), the languages by their own names and code values stay as they are
    if (parent && !parent.closest("script, style, .user, .language, .code, pre, code")) texts.push(walker.currentNode.nodeValue.trim());
  }
  return texts.filter(Boolean);
}"""


def english_left(page):
    """Texts of the page (figures included) that are an English message with a German translation."""
    from django.utils import translation

    catalog = translation.trans_real.translation("de")._catalog
    # A message is judged by its translation in effect (catalog[msgid]): several catalogues may hold
    # one message (django-import-export's has "Import"), and the registry's own comes first.
    english = {msgid for msgid, _msgstr in catalog.items()
               if isinstance(msgid, str) and catalog[msgid] != msgid and len(msgid) > 3
               and any(c.isalpha() for c in msgid)}
    return sorted({text for text in page.evaluate(TEXT_NODES) if text in english})


def violations(page):
    # Evaluated through the DevTools protocol: the registry's CSP rightly refuses an inline script tag.
    page.evaluate(AXE.read_text() + "\n;true")
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_21_AA)
    assert len(result["passes"]) > 10, "axe-core checked nothing"
    return [(v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:5]) for v in result["violations"]]


@pytest.mark.parametrize("language", ["en", "de"])
def test_every_page_type_has_no_wcag_21_aa_violation(live_server, browser_page, language, settings):  # noqa: F811
    if not AXE.exists():
        pytest.fail("axe-core is not installed: run `npm ci` (make test does)")
    page, base = browser_page, live_server.url
    page.set_default_timeout(60_000)  # the dashboard computes its models on the first visit
    cache.clear()
    call_command("generate_cohort", patients=60, centres=2, seed=7, load=True, stdout=io.StringIO())
    # User names unlike any word of the interface (the security log lists them).
    users = {role: f.user(f"{role}.muc", memberships=[("MUC", role)], password=PASSWORD)
             for role in ("nurse", "pi", "monitor", "coordinator")}
    patient = Patient.objects.filter(centre="MUC", metastasectomies__isnull=False).order_by("pk").first()
    pm = patient.metastasectomies.first()
    event = services.record_save(user=users["nurse"], record=f.follow_up(patient, event_date=pm.surgery_date))
    services.record_delete(user=users["nurse"], record=event, reason="entered twice")  # for the deleted records page
    for record in case_load(patient).records():  # complete, so the monitor may verify it
        services.record_status_set(user=users["nurse"], record=record, status="complete")
    query = queries.query_raise(user=users["monitor"], record=pm, field="max_lesion_diameter_mm", text="Please check.")
    freeze_create(user=users["coordinator"], name="first")
    found = {}
    signed_in_as = None
    for role, path in pages(patient.pk, pm.pk, query.pk):
        if role != signed_in_as:
            page.context.clear_cookies()
            page.context.add_cookies([{"name": "django_language", "value": language, "url": base}])
            if role != "anonymous":
                sign_in(page, base, f"{role}.muc")
            signed_in_as = role
        page.goto(base + path)
        page.wait_for_load_state("networkidle")
        assert page.locator("html").get_attribute("lang") == language, path
        if problems := violations(page):
            found[f"{role} {path}"] = problems
        if language == "de" and (left := english_left(page)):
            found[f"{role} {path}: English left in the German page"] = left
    assert not found, json.dumps(found, indent=1, ensure_ascii=False)
