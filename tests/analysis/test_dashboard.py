"""The survival dashboard (/analysis/): who sees which centres, the cache, the small-group guard,
downloads and saved plans, on one synthetic cohort loaded once for the module.

Computing a survival report costs seconds (two dozen Cox models), so the module's cohort never
changes and the cache is shared between its tests; a test that writes clinical data forgets what
it computed afterwards (on SQLite a rolled-back id can come again, and with it a data version),
and tests about plans and versions rather than numbers use a stand-in for the statistics.
"""
import csv
import datetime
import io
import json
import re
import xml.etree.ElementTree as ET

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analysis import dashboard
from analysis.dashboard import compute
from analysis.dashboard.tables import interval, percent
from analysis.frame import analysis_frame
from analysis.models import SavedPlan
from analysis.plan import FACTORS, AnalysisPlan
from registry import selectors, services, synthetic
from registry.management.commands.generate_cohort import cohort_load
from registry.models import CLINICAL_MODELS, AuditSeal, Centre, FollowUp, Patient, Query, QueryMessage
from tests import factories as f
from tests.audit import empty

pytestmark = pytest.mark.django_db
CENTRES = ["MUC", "BER", "HD"]
URL = "/analysis/"


@pytest.fixture(scope="module", autouse=True)
def cohort(django_db_setup, django_db_blocker):
    """90 synthetic patients at MUC, BER and HD, committed once for the whole module."""
    with django_db_blocker.unblock():
        cache.clear()
        cohort_load(synthetic.generate_cohort(patients=90, centres=CENTRES, seed=11))
        yield
        for model in reversed(CLINICAL_MODELS):
            model.objects.all().delete()
        # After the rows (deleting a row writes an audit row); the audit tables are append-only.
        empty(*[model.history.model for model in CLINICAL_MODELS], AuditSeal, QueryMessage)
        Query.objects.all().delete()  # the soft checks' queries of the cohort (they outlive its patients)
        Centre.objects.all().delete()
        cache.clear()


@pytest.fixture(scope="module")
def first_pooled_request(cohort, django_db_blocker):
    """The first request of the pooled default dashboard (a cache miss); later tests reuse its entry."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    with django_db_blocker.unblock():
        cache.clear()  # the module's tests run in random order: another one may have filled it
        client = Client()
        client.force_login(f.user("first_pi", memberships=[("MUC", "pi")]))
        response = client.get(URL)
        yield response
        client.logout()
        get_user_model().objects.filter(username="first_pi").delete()


@pytest.fixture
def quick_report(monkeypatch, first_pooled_request):
    """Stand in for the statistics where a test is about plans, scopes and versions, not numbers:
    the pooled report with the plan, version, cohort flow and event counts of the frame it is
    given (the rest, two dozen Cox models, is what costs seconds)."""
    from analysis.report import cohort_flow

    template = first_pooled_request.context["report"]
    calls = []

    def report_from_frame(frame, version, plan, centres, freeze=None):
        calls.append((plan.hash, version, centres))
        analysed = frame[frame["eligible"]]
        endpoints = {e: {**template["endpoints"][e], "n": len(analysed), "events": int(analysed[f"{e}_event"].sum())}
                     for e in ("dfs", "os")}
        return {**template, "plan": plan.to_dict(), "plan_hash": plan.hash, "data_version": version,
                "cohort": cohort_flow(frame, plan), "endpoints": endpoints}

    monkeypatch.setattr(compute, "report_from_frame", report_from_frame)
    yield calls
    # Never leave a stand-in report (or figures drawn from it) for a test that wants the real one.
    kinds = {kind for factor in dashboard.STRATIFY for name, kind in compute.entry_kinds(factor).items()
             if name != "strata"}
    cache.delete_many([f"{dashboard.CACHE_PREFIX}:{kind}:{plan_hash}:{version}:{dashboard.scope_key(centres)}"
                       for plan_hash, version, centres in calls for kind in kinds])


@pytest.fixture
def writes_data():
    """Forget what a writing test computed: once it is rolled back, SQLite may give its data
    version to different data (ids are reused), and the cache must not answer for them."""
    yield
    version = selectors.data_version()
    kinds = compute.entry_kinds("none").values()
    cache.delete_many([dashboard.cache_key(kind, AnalysisPlan(), version, scope) for kind in kinds
                       for scope in (None, ("MUC",))])


def get(client, user, url=URL, **params):
    client.force_login(user)
    return client.get(url, params)


def svg_documents(html):
    """Every inline <svg> of a page, parsed as XML (so each must be well-formed)."""
    return [ET.fromstring("<svg" + part.split("</svg>")[0] + "</svg>") for part in html.split("<svg")[1:]]


# --- who sees what --------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["", "version", "print/", "figures/km-dfs.svg", "data/km.csv", "report.json",
                                  "plan.json"])
def test_anonymous_visitor_is_sent_to_sign_in(client, path):
    response = client.get(URL + path)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")


def test_pi_sees_the_pooled_registry(client, pi, first_pooled_request):
    assert first_pooled_request.status_code == 200
    response = get(client, pi)
    assert response.status_code == 200
    report = response.context["report"]
    assert report["scope"]["centres_included"] == sorted(CENTRES)
    assert report["cohort"]["registered"] == Patient.objects.count()
    assert "All centres (pooled)" in response.content.decode()
    assert "immortal-time bias" in response.content.decode()  # the caveat beside peri-PM therapy


def test_coordinator_sees_the_pooled_registry_from_the_same_cache_entry(client, pi, coordinator):
    get(client, pi)
    response = get(client, coordinator)
    assert response["X-Dashboard-Cache"] == "hit"
    assert response.context["report"]["scope"]["centres_included"] == sorted(CENTRES)


def test_nurse_sees_only_her_own_centre_and_a_pi_may_open_it_too(client, nurse, pi):
    muc = Patient.objects.filter(centre="MUC").count()
    for user, params in ((nurse, {}), (nurse, {"centre": "MUC"}), (pi, {"centre": "MUC"})):
        response = get(client, user, **params)
        report = response.context["report"]
        assert report["scope"]["centres_included"] == ["MUC"]
        assert report["cohort"]["registered"] == muc
        assert "Centre MUC" in response.content.decode()


@pytest.mark.parametrize("path", ["", "version", "print/", "figures/km-os.png", "data/cohort.csv", "report.json"])
def test_nurse_asking_for_another_centres_view_is_refused(client, nurse, path):
    assert get(client, nurse, URL + path, centre="BER").status_code == 404
    assert get(client, nurse, URL + path, centre="NOPE").status_code == 404


def test_user_of_no_centre_is_refused(client):
    assert get(client, f.user("newcomer")).status_code == 403


# --- cache ----------------------------------------------------------------------------------------

def test_second_request_is_served_from_the_cache_without_reading_the_registry(client, pi, first_pooled_request):
    assert first_pooled_request["X-Dashboard-Cache"] == "miss"
    with CaptureQueriesContext(connection) as queries:
        response = get(client, pi)
    assert response["X-Dashboard-Cache"] == "hit"
    clinical_tables = {model._meta.db_table for model in CLINICAL_MODELS}
    # Only the data version is read (MAX over the audit tables), never a clinical table.
    assert not [q for q in queries if any(f'"{table}"' in q["sql"] for table in clinical_tables)]


def test_a_new_death_changes_the_data_version_and_the_results(client, nurse, quick_report, writes_data):
    before = get(client, nurse).context["report"]
    record_death(nurse)
    response = get(client, nurse)
    after = response.context["report"]
    assert response["X-Dashboard-Cache"] == "miss" and quick_report[-1] == (AnalysisPlan().hash, after["data_version"], ("MUC",))
    assert after["data_version"] == selectors.data_version(["MUC"]) != before["data_version"]
    assert after["endpoints"]["os"]["events"] == before["endpoints"]["os"]["events"] + 1
    assert after["data_version"] in response.content.decode()


def record_death(nurse):
    """A death, the day after the last known date, of an analysed MUC patient who is alive."""
    frame = analysis_frame(centres=["MUC"])
    alive = frame[frame["eligible"] & (frame["os_event"] == 0)].iloc[0]
    last_known = alive["index_date"] + datetime.timedelta(days=round(alive["os_months"] * 365.25 / 12))
    death = FollowUp(patient=Patient.objects.get(pk=alive["patient_id"]), event="death",
                     event_date=last_known.date() + datetime.timedelta(days=1), cause_of_death="sarcoma")
    services.record_save(user=nurse, record=death)


def test_version_endpoint_gives_the_data_version_of_the_pages_scope(client, nurse, pi):
    response = get(client, nurse, URL + "version")
    assert response.json() == {"data_version": selectors.data_version(["MUC"])}  # her centre only
    assert response["Cache-Control"] == "no-store"
    assert get(client, pi, URL + "version").json() == {"data_version": selectors.data_version()}  # pooled


def test_the_page_polls_the_version_of_its_own_scope(client, pi):
    """A PI looking at one centre: the poll asks for that centre's version, which the page shows."""
    page = get(client, pi, centre="MUC")
    poll = page.content.decode().split('data-version-url="')[1].split('"')[0].replace("&amp;", "&")
    assert "centre=MUC" in poll
    assert client.get(poll).json()["data_version"] == page["X-Data-Version"] == selectors.data_version(["MUC"])


# --- plan controls --------------------------------------------------------------------------------

def test_an_invalid_cut_off_shows_its_error_and_keeps_the_plan(client, pi):
    response = get(client, pi, size_cutoff_mm="-4", stratify="nonsense")
    assert response.status_code == 200
    assert response.context["plan"] == AnalysisPlan()
    assert response.context["form"].errors.keys() == {"size_cutoff_mm", "stratify"}


def test_a_link_with_only_a_stratification_keeps_the_plan(client, pi):
    response = get(client, pi, stratify="histology")
    assert response.context["plan"] == AnalysisPlan() and not response.context["form"].errors


def test_a_pi_moves_the_size_cut_off_saves_the_plan_and_reopens_it(client, pi, coordinator, quick_report):
    client.force_login(pi)
    response = client.post(URL + "plans/?size_cutoff_mm=30&covariates=size_gt_2cm&covariates=histology&stratify=centre",
                           {"name": "Size 30 mm"})
    saved = SavedPlan.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{URL}?plan={saved.pk}&stratify=centre"
    assert saved.owner == pi and saved.name == "Size 30 mm"
    plan = saved.analysis_plan()
    assert (plan.name, plan.size_cutoff_mm, plan.multivariable_covariates) == ("Size 30 mm", 30.0, ("size_gt_2cm", "histology"))

    page = get(client, coordinator, plan=saved.pk, stratify="centre")  # another user reopens it
    assert page.context["report"]["plan_hash"] == plan.hash == quick_report[-1][0]
    html = page.content.decode()
    assert "Size 30 mm" in html and 'value="30"' in html and "Largest lesion &gt; 30 mm" in html
    # Moving the cut-off again starts from the saved plan, keeping its name and covariates.
    moved = get(client, pi, plan=saved.pk, size_cutoff_mm="35").context["plan"]
    assert (moved.name, moved.size_cutoff_mm, moved.multivariable_covariates) == ("Size 30 mm", 35.0, plan.multivariable_covariates)


def test_saving_without_a_name_saves_nothing(client, pi):
    client.force_login(pi)
    assert client.post(URL + "plans/", {"name": " "}).status_code == 302
    assert not SavedPlan.objects.exists()


# --- figures and the small-group guard ------------------------------------------------------------

def test_curves_are_accessible_svg_with_their_numbers_next_to_them(client, pi):
    response = get(client, pi)
    html = response.content.decode()
    documents = svg_documents(html)
    residual_plots = len(response.context["report"]["ph_residuals"])
    # KM DFS, KM OS, forest DFS, OS, multivariable, centre forests DFS and OS, cumulative incidence,
    # a scaled Schoenfeld residual plot per term of the multivariable model
    assert residual_plots == len(response.context["report"]["multivariable"][0]["terms"])
    assert len(documents) == 8 + residual_plots
    for svg in documents:
        assert svg.get("role") == "img" and svg.get("aria-label")
        assert svg.find("{http://www.w3.org/2000/svg}title").text
    assert html.count("<details") >= 2 and "Number at risk" in html
    assert "Numbers of this figure" in html


def test_the_page_shows_the_three_therapy_estimates_ph_tests_centres_and_cumulative_incidence(client, pi):
    response = get(client, pi)
    html = response.content.decode()
    for text in ("Peri-PM systemic therapy: three estimates", "Time-dependent Cox (quote this)",
                 "Landmark at 6 months", "immortal-time biased", "cox.zph", "Centres",
                 "Cumulative incidence of recurrence", "Death without recurrence"):
        assert text in html, text
    assert len(response.context["therapy_rows"]) == 12
    flagged = [row for row in response.context["ph_rows"] if row["violated"]]
    assert html.count("PH doubtful") == len(flagged)
    assert html.count('data-code="ph_violated"') == len(response.context["ph_warnings"])
    # cumulative incidence by site and by each factor's level, and the cause-specific Cox model
    for text in ("Recurrence in the lung", "Recurrence elsewhere", "TFI &gt; 12 months", "peri-PM therapy",
                 "Cause-specific Cox model of recurrence"):
        assert text in html, text
    groups = {row["group"] for row in response.context["cif_rows"]}
    assert len(groups) == 1 + 1 + 4 * 2  # overall, by site, two levels of four factors
    assert len(response.context["cause_specific_rows"]) >= 4


def test_stratified_curves_have_a_k_group_log_rank(client, pi):
    context = get(client, pi, stratify="histology").context
    part = context["results"]["strata"]["endpoints"]["dfs"]
    assert [g["label"] for g in part["groups"]] == ["LMS", "SyS", "UPS"]
    assert part["logrank"]["df"] == 2 and 0 <= part["logrank"]["p"] <= 1
    assert "Log-rank p " in context["km"][0][2]


def test_a_group_smaller_than_the_minimum_draws_no_group_at_all_and_the_page_says_so(client, pi, settings):
    """Drawing the other groups would give the small one away: the unstratified curve minus them."""
    counts = get(client, pi, stratify="centre").context["results"]["strata"]["endpoints"]["os"]["groups"]
    smallest = min(counts, key=lambda g: g["n"])
    settings.DASHBOARD_MIN_STRATUM = smallest["n"] + 1
    response = get(client, pi, stratify="centre")
    strata = response.context["results"]["strata"]
    assert strata["hidden"] == [{"label": smallest["label"], "n": None}]
    assert all(part["groups"] == [] and part["logrank"] is None for part in strata["endpoints"].values())
    html = response.content.decode()
    assert f"No curve drawn: fewer than {smallest['n'] + 1} patients in {smallest['label']}" in html
    assert f"(n = {smallest['n']}" not in response.context["km"][1][2]


def test_the_differencing_attack_recovers_nothing(client, pi, settings):
    """A one-patient group, hidden while the others were drawn, was the unstratified curve minus
    them: its patient's event and censoring times, exactly. Now either every group is drawn (all
    large enough) or none is."""
    settings.DASHBOARD_MIN_STRATUM = 5
    small_seen = False
    for cutoff in ("5", "10", "15", "20", "25", "30", "35", "40", "45", "50", "60"):
        strata = get(client, pi, stratify="size_gt_2cm", size_cutoff_mm=cutoff).context["results"]["strata"]
        small_seen = small_seen or bool(strata["hidden"])
        for part in strata["endpoints"].values():
            drawn = sum(group["n"] for group in part["groups"])
            assert not part["groups"] or (not strata["hidden"] and all(g["n"] >= 5 for g in part["groups"]))
            assert not part["groups"] or strata["unknown"] == 0 or strata["unknown"] >= 5, (cutoff, drawn)
    assert small_seen  # some cut-off made a group too small: the attack was tried


def test_a_centre_with_fewer_patients_than_the_minimum_draws_no_curve(client, nurse, settings):
    settings.DASHBOARD_MIN_STRATUM = 1000
    response = get(client, nurse)
    analysed = response.context["report"]["cohort"]["analysed"]
    assert response.context["results"]["strata"]["hidden"] == [{"label": "All patients", "n": analysed}]
    assert f"Not drawn, fewer than 1000 patients: All patients (n = {analysed})" in response.content.decode()
    assert "No group large enough to draw." in response.context["km"][0][2]


def test_the_dashboard_agrees_with_the_survival_report_command(client, pi):
    out = io.StringIO()
    call_command("survival_report", "--json", stdout=out)
    command = json.loads(out.getvalue())
    results = get(client, pi).context["results"]
    ours = dict(results["report"], generated_at=None)
    assert ours == dict(command, generated_at=None)
    for endpoint in ("dfs", "os"):
        figure = dashboard.km_figure(results, endpoint)
        (group,) = figure["groups"]
        summary = command["endpoints"][endpoint]
        assert (group["n"], group["events"], group["median"]) == (summary["n"], summary["events"], summary["median_months"])
        risk = dict(zip(figure["risk_times"], group["at_risk"]))
        assert [risk[int(rate["months"])] for rate in summary["rates"]] == [rate["at_risk"] for rate in summary["rates"]]
        # The KM table next to the figure shows the report's survival rates and their CIs.
        (table,) = dashboard.km_summary_rows(figure)
        shown = {at["months"]: (at["survival"], at["ci"]) for at in table["at"]}
        assert [shown[int(rate["months"])] for rate in summary["rates"]] == [
            (percent(rate["survival"]), interval(rate["ci95"], percent)) for rate in summary["rates"]]


# --- downloads ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(dashboard.FIGURES))
def test_figures_download_as_svg_and_png(client, pi, name):
    svg = get(client, pi, f"{URL}figures/{name}.svg")
    assert svg["Content-Type"] == "image/svg+xml" and "attachment" in svg["Content-Disposition"]
    assert ET.fromstring(svg.content).tag == "{http://www.w3.org/2000/svg}svg"
    png = get(client, pi, f"{URL}figures/{name}.png")
    assert png["Content-Type"] == "image/png" and png.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_unknown_figure_or_table_is_404(client, pi):
    assert get(client, pi, f"{URL}figures/pie.svg").status_code == 404
    assert get(client, pi, f"{URL}figures/km-dfs.gif").status_code == 404
    assert get(client, pi, f"{URL}data/secrets.csv").status_code == 404


@pytest.mark.parametrize("table", dashboard.CSV_TABLES)
def test_numbers_download_as_csv(client, pi, table):
    response = get(client, pi, f"{URL}data/{table}.csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    lines = response.content.decode().splitlines()
    rows = list(csv.reader(lines[:-1]))
    assert len(rows) > 1 and all(len(row) == len(rows[0]) for row in rows)
    assert lines[-1].startswith("# Source: live; data version ") and "," not in lines[-1]  # what made it


def test_numbers_download_as_json_and_the_plan_reproduces(client, pi):
    data = json.loads(get(client, pi, URL + "report.json").content)
    plan = AnalysisPlan.from_json(get(client, pi, URL + "plan.json").content)
    assert data["report"]["plan_hash"] == plan.hash == AnalysisPlan().hash
    assert data["strata"]["endpoints"]["os"]["groups"]


def test_print_report_is_one_page_with_plan_and_data_version(client, pi):
    response = get(client, pi, URL + "print/")
    html = response.content.decode()
    report = response.context["report"]
    assert report["plan_hash"] in html and report["data_version"] in html
    assert html.count("<svg") == 8 + len(report["ph_residuals"]) and "<form" not in html and "<script" not in html
    assert "<details class=\"panel methods\" open" in html


def test_every_factor_of_the_plan_has_a_label_with_the_plans_cut_off():
    from analysis import factors

    assert set(factors.FACTORS) == set(FACTORS)
    plan = AnalysisPlan().replace(size_cutoff_mm=30, tfi_cutoff_months=18, lesions_cutoff=2)
    assert factors.label("size_gt_2cm", plan) == "Largest lesion > 30 mm"
    assert factors.label("tfi_gt_12m", plan) == "Treatment-free interval > 18 months"
    assert factors.label("multiple_lesions", plan) == "> 2 lesions resected"
    assert factors.levels("size_gt_2cm", plan) == ("≤ 30 mm", "> 30 mm")
    assert dict(compute.covariate_choices(plan))["size_gt_2cm"] == "Largest lesion > 30 mm"


def table1_sections(html):
    """Table 1 as the page shows it: {heading: [labels of the rows under it]}, in page order."""
    from html.parser import HTMLParser

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.inside, self.cell, self.sections, self.text = False, None, {}, ""

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "table" and "table1" in (attrs.get("class") or ""):
                self.inside = True
            elif self.inside and tag == "th" and attrs.get("scope") in ("rowgroup", "row"):
                self.cell, self.text = attrs["scope"], ""

        def handle_endtag(self, tag):
            if tag == "table":
                self.inside = False
            elif tag == "th" and self.cell:
                text = " ".join(self.text.split())
                if self.cell == "rowgroup":
                    self.sections[text] = []
                else:
                    self.sections[list(self.sections)[-1]].append(text)
                self.cell = None

        def handle_data(self, data):
            if self.cell:
                self.text += data

    parser = Rows()
    parser.feed(html)
    return parser.sections


def test_every_table1_row_sits_under_its_own_variables_heading(client, pi):
    from analysis.table1 import VARIABLES
    from registry import codes

    sections = table1_sections(get(client, pi, size_cutoff_mm="30", tfi_cutoff_months="18").content.decode())
    levels = {"sex": codes.SEX, "primary_site": codes.PRIMARY_SITE, "grade": codes.GRADE,
              "approach": codes.APPROACH, "resection_type": codes.RESECTION_TYPE}
    assert len(sections) == len(VARIABLES)
    for (variable, kind, _levels), (heading, rows) in zip(VARIABLES, sections.items()):
        if kind == "continuous":
            assert rows == ["median (IQR)"], (variable, heading, rows)
        elif kind == "binary":
            assert set(rows) <= {"yes", "no", "unknown"} and {"yes", "no"} <= set(rows), (variable, heading, rows)
        else:
            assert set(rows) <= {str(label) for _code, label in levels[variable]} | {"unknown"}, (variable, rows)
    assert list(sections)[:2] == ["Sex", "Age at PM, years"]
    assert "Treatment-free interval > 18 months" in sections and "Largest lesion > 30 mm" in sections
    assert "Treatment-free interval (TFI), months" in sections and "Disease-free interval (DFI), months" in sections


def test_figures_tables_and_cohort_flow_are_drawn_in_the_language_of_the_page(client, pi, monkeypatch):
    """Every text of the figures goes through gettext with the page's language, at render time
    (the figures of the English page, already cached, are not served to a German reader). A
    stand-in German catalogue marks each translated text."""
    from django.utils import translation
    from django.utils.translation import trans_real

    get(client, pi, stratify="size_gt_2cm")  # the English page first: its figures are in the cache
    monkeypatch.setattr(trans_real.translation("de"), "gettext", lambda message: f"‹{message}›")
    client.force_login(pi)
    response = client.get(URL, {"stratify": "size_gt_2cm"}, HTTP_ACCEPT_LANGUAGE="de")
    html = response.content.decode()
    with translation.override("de"):
        assert translation.gettext("Number at risk") == "‹Number at risk›"
        km = response.context["km"][0][2]
        for text in ("‹Number at risk›", "‹Months since first metastasectomy›", "‹Disease-free survival›",
                     "‹lesion size (20 mm)›", "‹Log-rank p"):
            assert text in km, text
        assert "‹Hazard ratio (log scale)›" in response.context["forest_panels"][0][2]
        assert "‹Largest lesion &gt; 20 mm›" in response.context["forest_panels"][0][2]
        assert "‹Months after the index PM›" in response.context["cif_svg"]
    assert "‹no metastasectomy›" in html
    assert "‹Sex›" in table1_sections(html)


def test_the_time_axis_and_bands_follow_the_query_and_a_bad_axis_keeps_the_default(client, pi):
    months = [at["months"] for at in get(client, pi, xmax="24").context["km"][0][3][0]["at"]]
    assert months == [0, 12, 24]
    months = [at["months"] for at in get(client, pi, xmax="24", xstep="6").context["km"][0][3][0]["at"]]
    assert months == [0, 6, 12, 18, 24]
    response = get(client, pi, xmax="5000")
    assert response.context["form"].errors["xmax"]
    default = [at["months"] for at in response.context["km"][0][3][0]["at"]]
    assert default == [at["months"] for at in get(client, pi).context["km"][0][3][0]["at"]] and default[-1] > 24
    assert "fill-opacity" in get(client, pi).context["km"][0][2]
    assert "fill-opacity" not in get(client, pi, bands="off").context["km"][0][2]


def test_downloads_are_named_after_what_they_show(client, pi):
    today = datetime.date.today().isoformat()
    svg = get(client, pi, f"{URL}figures/km-dfs.svg", stratify="size_gt_2cm", size_cutoff_mm="30")
    assert svg["Content-Disposition"] == f'attachment; filename="km_dfs_by-size-gt-30mm_{today}.svg"'
    forest = get(client, pi, f"{URL}figures/forest-multivariable.png", centre="MUC")
    assert forest["Content-Disposition"] == f'attachment; filename="forest_multivariable_MUC_{today}.png"'
    table = get(client, pi, f"{URL}data/table1.csv")
    assert table["Content-Disposition"] == f'attachment; filename="table1_{today}.csv"'


def test_messages_of_the_models_name_factors_as_the_pi_reads_them():
    from analysis.dashboard import tables

    plan = AnalysisPlan().replace(size_cutoff_mm=30)
    assert tables.readable("covariate without variation: size_gt_2cm", plan) == \
        "covariate without variation: Largest lesion > 30 mm"
    assert tables.readable("no covariate can be estimated (histology_SyS: no variation; age_per_10y: collinear)",
                           plan) == ("no covariate can be estimated (SyS vs LMS: no variation; "
                                     "Age at PM (per 10 years): collinear)")
    report = {"plan": plan.to_dict(), "warnings": [
        {"code": "not_estimable", "message": "tfi_gt_12m left out: no variation", "model": "dfs:multivariable"}]}
    assert tables.warnings_for(report)[0]["message"] == "Treatment-free interval > 12 months left out: no variation"


def test_unticking_every_covariate_says_so_and_keeps_the_plans_covariates(client, pi):
    response = get(client, pi, size_cutoff_mm="20", lesions_cutoff="1", tfi_cutoff_months="12",
                   stratify="none", covariates_shown="1")
    assert response.context["plan"] == AnalysisPlan()
    assert "No covariate ticked" in response.context["form"].errors["covariates"][0]
    assert "No covariate ticked" in response.content.decode()


def test_the_numbers_at_risk_download_follows_the_figures_time_axis(client, pi):
    rows = get(client, pi, f"{URL}data/risk.csv", xmax="24", xstep="6").content.decode().splitlines()
    assert {line.split(",")[2] for line in rows[1:-1]} == {"0", "6", "12", "18", "24"}


def test_the_cumulative_incidence_figure_shares_the_kaplan_meier_time_axis(client, pi):
    svg = get(client, pi, xmax="24", xstep="6").context["cif_svg"]
    ticks = re.findall(r">(\d+)</text>", svg)
    assert ticks[-5:] == ["0", "6", "12", "18", "24"] and "60" not in ticks
