"""The paper pack of a data freeze (analysis/paper): the same bytes however the live registry changes
afterwards; tables, figures, methods, de-identified data and the scripts that reproduce the report's
estimates, each naming its freeze, plan and software; reproduce.R (R's survival package alone) and
reproduce.py (lifelines) recompute the report's medians, rates and hazard ratios from the pack; the
dashboard's download for those who may export the pooled dataset, and the provenance of the
dashboard's own downloads."""
import io
import json
import re
import shutil
import subprocess
import sys
import zipfile

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import transaction
from docx import Document
from PIL import Image

from analysis.paper import figures as paper_figures
from analysis.paper import tables as paper_tables
from analysis.plan import AnalysisPlan
from analysis.report import survival_report
from registry import access, selectors, services, synthetic
from registry.management.commands.generate_cohort import cohort_load
from registry.models import SecurityEvent
from tests.analysis.rlive import require_r
from tests.analysis.test_freeze_reports import change_the_live_data

pytestmark = pytest.mark.django_db

TABLES = ("table1", "table2_univariable", "table3_multivariable", "table4_therapy_effects")
FIGURES = ("km_dfs", "km_os", "km_dfs_by_size_gt_2cm", "km_os_by_histology", "cumulative_incidence", "cohort_flow")


@pytest.fixture
def registry(coordinator, settings):
    """48 synthetic patients at MUC, BER and HD, and a freeze of them named "paper"."""
    settings.REGISTRY_VERSION = "9.8.7"
    cache.clear()
    cohort_load(synthetic.generate_cohort(patients=48, centres=["MUC", "BER", "HD"], seed=5))
    yield services.freeze_create(user=coordinator, name="paper")
    cache.clear()


def pack(tmp_path, *options, name="pack.zip", freeze="paper"):
    path = tmp_path / name
    call_command("paper_pack", "--freeze", freeze, "--out", str(path), *options, stdout=io.StringIO())
    return path.read_bytes()


def unpacked(archive):
    """{path inside the pack's folder: bytes}."""
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        folders = {name.split("/")[0] for name in opened.namelist()}
        assert len(folders) == 1
        return {name.split("/", 1)[1]: opened.read(name) for name in opened.namelist()}


def plan_file(tmp_path, **changes):
    path = tmp_path / "plan.json"
    path.write_text(AnalysisPlan().replace(**changes).to_json())
    return str(path)


# --- the same bytes ---------------------------------------------------------------------------------

def test_a_freezes_report_and_pack_stay_the_same_byte_for_byte_after_the_live_data_changed(
        registry, coordinator, tmp_path):
    report = io.StringIO()
    call_command("survival_report", "--freeze", "paper", "--json", stdout=report)
    live_before = survival_report()
    before = pack(tmp_path, name="before.zip")
    assert pack(tmp_path, name="again.zip") == before  # two packs of one freeze and plan: one content hash

    change_the_live_data(coordinator)  # deaths, corrections, a deleted and a new patient
    cohort_load(synthetic.generate_cohort(patients=12, centres=["MUC", "KOE"], seed=9))  # and more patients

    live_after = survival_report()
    assert live_after["cohort"]["registered"] == live_before["cohort"]["registered"] + 12
    assert live_after["endpoints"]["os"]["events"] != live_before["endpoints"]["os"]["events"]
    again = io.StringIO()
    call_command("survival_report", "--freeze", "paper", "--json", stdout=again)
    assert again.getvalue() == report.getvalue()
    assert pack(tmp_path, name="after.zip") == before
    services.freeze_create(user=coordinator, name="later")
    assert pack(tmp_path, name="later.zip", freeze="later") != before  # the new data: another pack


def test_another_plan_gives_another_pack_named_after_it(registry, tmp_path):
    default = pack(tmp_path, name="default.zip")
    other = pack(tmp_path, "--plan", plan_file(tmp_path, size_cutoff_mm=30), name="30mm.zip")
    assert other != default
    with zipfile.ZipFile(io.BytesIO(other)) as archive:
        assert archive.namelist()[0].startswith(f"paper-pack_paper_{AnalysisPlan().replace(size_cutoff_mm=30).hash}/")
    assert b"Largest lesion > 30 mm" in unpacked(other)["tables/table2_univariable.csv"]


# --- what it holds ----------------------------------------------------------------------------------

def test_the_pack_holds_tables_figures_methods_the_report_data_and_scripts_each_naming_its_source(
        registry, tmp_path):
    archive = pack(tmp_path)
    files = unpacked(archive)
    for table in TABLES:
        assert {f"tables/{table}.docx", f"tables/{table}.csv"} <= set(files)
    for figure in FIGURES:
        for width in (85, 180):
            assert files[f"figures/{figure}_{width}mm.pdf"].startswith(b"%PDF")
            assert b"<svg" in files[f"figures/{figure}_{width}mm.svg"]
    report = json.loads(files["report.json"])
    assert report == json.loads(json.dumps(survival_report(freeze=registry)))
    assert AnalysisPlan.from_json(files["plan.json"]) == AnalysisPlan()
    assert {"README.txt", "methods.md", "methods.docx", "data/analysis_data.csv", "data/data_dictionary.csv",
            "reproduce.R", "reproduce.py"} <= set(files)

    methods = files["methods.md"].decode()
    for fact in ("paper", registry.content_hash, AnalysisPlan().hash, "lifelines 0.30.3", "version 9.8.7",
                 "analysis/stats/cox.py", "Efron"):
        assert fact in methods, fact
    table2 = Document(io.BytesIO(files["tables/table2_univariable.docx"]))
    header = [cell.text for cell in table2.tables[0].rows[0].cells]
    assert header == ["Factor", "DFS HR (95% CI)", "p", "OS HR (95% CI)", "p"]
    size = [cell.text for cell in table2.tables[0].rows[1].cells]
    univariable = {(r["endpoint"], r["factor"]): r for r in report["univariable"]}
    dfs = univariable[("dfs", "size_gt_2cm")]
    assert size[0] == "Largest lesion > 20 mm" and size[1].startswith(f"{dfs['hr']:.2f} ({dfs['ci95'][0]:.2f}–")
    assert re.fullmatch(r"<0\.001|\d\.\d{3}", size[2])  # p to 3 decimals
    notes = " ".join(p.text for p in table2.paragraphs).replace(",", "")
    assert f"{dfs['n']} patients" in notes and f"{dfs['events']} events" in notes  # n and events in the footnotes

    # every file names its freeze, plan and software
    short_hash, plan_hash = registry.content_hash[:16], AnalysisPlan().hash
    for name, content in files.items():
        if name.endswith(".csv"):
            footer = content.decode().splitlines()[-1]
            assert footer.startswith("# Source: freeze paper") and plan_hash in footer and "9.8.7" in footer, name
        elif name.endswith(".docx"):
            document = Document(io.BytesIO(content))
            footer = document.sections[0].footer.paragraphs[0].text
            assert short_hash in footer and plan_hash in footer and "9.8.7" in footer, name
            assert document.core_properties.comments == footer
            assert document.core_properties.created == registry.created_at.replace(microsecond=0)
        elif name.endswith(".svg"):
            description = re.search(r"<dc:description>(.*?)</dc:description>", content.decode()).group(1)
            assert short_hash in description and plan_hash in description and "9.8.7" in description, name
        elif name.endswith(".pdf"):  # the subject, as UTF-16 (it holds quotation marks)
            assert short_hash.encode("utf-16-be") in content and b"/Subject" in content, name
            assert b"/CreationDate" not in content, name
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:  # the archive itself: dated by the freeze
        assert {info.date_time[:5] for info in opened.infolist()} == {registry.created_at.timetuple()[:5]}


def test_the_analysis_data_hold_no_calendar_date_unless_the_plan_says_so(registry, tmp_path):
    files = unpacked(pack(tmp_path))
    data = files["data/analysis_data.csv"].decode()
    header = data.splitlines()[0].split(",")
    assert "index_date" not in header and {"patient_id", "dfs_months", "os_event", "eligible"} <= set(header)
    assert not re.search(r"\d{4}-\d{2}-\d{2}", data)
    dictionary = files["data/data_dictionary.csv"].decode().splitlines()
    assert [line.split(",")[0] for line in dictionary[1:-1]] == header  # one entry per column, in order

    kept = unpacked(pack(tmp_path, "--plan", plan_file(tmp_path, pack_deidentify="none"), name="dates.zip"))
    assert "index_date" in kept["data/analysis_data.csv"].decode().splitlines()[0].split(",")
    assert "de-identification: none" in kept["README.txt"].decode()


def test_a_plan_in_another_language_writes_the_tables_and_figures_in_it(registry, tmp_path, monkeypatch):
    from django.utils import translation

    def tagged(text):  # what gettext returns, marked with the language active when it was asked
        return f"[{translation.get_language()}]{text}"

    monkeypatch.setattr(paper_tables, "_", tagged)
    monkeypatch.setattr(paper_figures, "_", tagged)
    files = unpacked(pack(tmp_path, "--plan", plan_file(tmp_path, language="de")))
    table2 = Document(io.BytesIO(files["tables/table2_univariable.docx"]))
    assert table2.tables[0].rows[0].cells[0].text == "[de]Factor"
    assert "[de]Months since first metastasectomy" in files["figures/km_dfs_85mm.svg"].decode()
    assert Document(io.BytesIO(files["methods.docx"])).core_properties.language == "de"
    assert json.loads(files["report.json"])["plan"]["language"] == "de"


# --- reproduce.R and reproduce.py on a 2,000-patient registry ---------------------------------------

@pytest.fixture(scope="module")
def reproducible_pack(django_db_setup, django_db_blocker, tmp_path_factory):
    """The unpacked paper pack of a freeze of a 2,000-patient synthetic registry (written inside a
    transaction that is rolled back: the other tests never see these patients)."""
    folder = tmp_path_factory.mktemp("pack")
    with django_db_blocker.unblock(), transaction.atomic():
        cohort_load(synthetic.generate_cohort(patients=2000, centres=6, seed=7))
        freeze = services.freeze_create(user=access.SYSTEM, name="reproduce")
        buffer = io.BytesIO()
        from analysis.paper.pack import paper_pack

        paper_pack(freeze=freeze, out=buffer)
        transaction.set_rollback(True)
    with zipfile.ZipFile(buffer) as archive:
        archive.extractall(folder)
    (inner,) = folder.iterdir()
    return inner


def run_in_copy(pack_folder, tmp_path, command):
    """Run ``command`` in a copy of the unpacked pack; its reproduced.json and report.json."""
    folder = shutil.copytree(pack_folder, tmp_path / "pack")
    run = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads((folder / "reproduced.json").read_text()), json.loads((folder / "report.json").read_text())


def assert_reproduced(reproduced, report, *, p_tolerance):
    """Every number of reproduced.json equals the report's to R's printed precision (7 significant
    digits: relative 1e-6), p values to ``p_tolerance`` (relative); the same n and events; nothing
    estimable on one side only."""
    problems = []

    def check(ours, theirs, label, tolerance=1e-6):
        if ours is None or theirs is None:
            if ours is not theirs:
                problems.append(f"{label}: report {ours}, reproduced {theirs}")
        elif abs(ours - theirs) > tolerance * abs(ours):
            problems.append(f"{label}: report {ours}, reproduced {theirs}")

    def check_model(ours, theirs, label):
        check(ours["hr"], theirs["hr"], f"{label} HR")
        check(ours["p"], theirs["p"], f"{label} p", p_tolerance)
        for bound in (0, 1):
            check(ours["ci95"][bound], theirs["ci95"][bound], f"{label} CI")

    for endpoint, summary in report["endpoints"].items():
        theirs = reproduced["endpoints"][endpoint]
        assert (theirs["n"], theirs["events"]) == (summary["n"], summary["events"])
        check(summary["median_months"], theirs["median_months"], f"{endpoint} median")
        for bound in (0, 1):
            check(summary["median_ci95"][bound], theirs["median_ci95"][bound], f"{endpoint} median CI")
        assert [r["months"] for r in theirs["rates"]] == [r["months"] for r in summary["rates"]]
        for ours, rate in zip(summary["rates"], theirs["rates"]):
            check(ours["survival"], rate["survival"], f"{endpoint} {ours['months']:g} months")
            for bound in (0, 1):
                check(ours["ci95"][bound], rate["ci95"][bound], f"{endpoint} {ours['months']:g} months CI")
    univariable = {(r["endpoint"], r["factor"]): r for r in reproduced["univariable"]}
    assert set(univariable) == {(r["endpoint"], r["factor"]) for r in report["univariable"]}
    for row in report["univariable"]:
        theirs = univariable[(row["endpoint"], row["factor"])]
        assert (theirs["n"], theirs["events"]) == (row["n"], row["events"]), row["factor"]
        check_model(row, theirs, f"univariable {row['endpoint']} {row['factor']}")
    assert len(reproduced["multivariable"]) == len(report["multivariable"])
    for model, theirs in zip(report["multivariable"], reproduced["multivariable"]):
        assert (theirs["endpoint"], theirs["n"], theirs["events"]) == (model["endpoint"], model["n"], model["events"])
        assert [t["factor"] for t in theirs["terms"]] == [t["factor"] for t in model["terms"]]
        for ours, term in zip(model["terms"], theirs["terms"]):
            check_model(ours, term, f"multivariable {model['endpoint']} {ours['factor']}")
    assert not problems, "\n".join(problems)


def test_reproduce_r_recomputes_the_reports_estimates_with_r_survival_alone(reproducible_pack, tmp_path):
    require_r()  # skipped without R, failed under CI
    reproduced, report = run_in_copy(reproducible_pack, tmp_path, ["Rscript", "--vanilla", "reproduce.R"])
    assert report["cohort"]["analysed"] > 1000 and len(report["univariable"]) == 22
    assert_reproduced(reproduced, report, p_tolerance=1e-6)


def test_reproduce_py_recomputes_the_reports_estimates_with_lifelines(reproducible_pack, tmp_path):
    reproduced, report = run_in_copy(reproducible_pack, tmp_path, [sys.executable, "reproduce.py"])
    # lifelines' Wald standard errors differ from R's (and the registry's) in the 6th digit
    assert_reproduced(reproduced, report, p_tolerance=1e-3)


# --- the dashboard ----------------------------------------------------------------------------------

def test_a_coordinator_downloads_the_paper_pack_of_the_freeze_chosen_on_the_dashboard(
        client, coordinator, registry, tmp_path):
    client.force_login(coordinator)
    page = client.get("/analysis/", {"freeze": "paper"}).content.decode()
    assert 'id="paper-pack"' in page and "/analysis/paper-pack.zip?freeze=paper" in page
    assert 'id="paper-pack"' not in client.get("/analysis/").content.decode()  # live data: no pack
    response = client.get("/analysis/paper-pack.zip", {"freeze": "paper"})
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    name = f"paper-pack_paper_{AnalysisPlan().hash}.zip"
    assert response["Content-Disposition"] == f'attachment; filename="{name}"'
    assert response.content == pack(tmp_path)  # the command's pack, byte for byte
    read = SecurityEvent.objects.filter(event=SecurityEvent.READ, user=coordinator).latest("pk")
    assert (read.what, read.rows, read.centres) == ("analysis:paper_pack", 48, "BER HD MUC")


def test_the_paper_pack_is_only_for_those_who_may_export_the_pooled_data_and_only_of_a_freeze(
        client, pi, coordinator, registry):
    client.force_login(pi)
    assert 'id="paper-pack"' not in client.get("/analysis/", {"freeze": "paper"}).content.decode()
    assert client.get("/analysis/paper-pack.zip", {"freeze": "paper"}).status_code == 403
    client.force_login(coordinator)
    assert client.get("/analysis/paper-pack.zip").status_code == 400
    assert client.get("/analysis/paper-pack.zip", {"freeze": "nope"}).status_code == 404


# --- provenance of the dashboard's downloads --------------------------------------------------------

def test_the_dashboards_figures_and_tables_name_their_data_plan_and_software(client, pi, registry):
    client.force_login(pi)
    plan_hash = AnalysisPlan().hash
    svg = client.get("/analysis/figures/km-dfs.svg", {"freeze": "paper"}).content.decode()
    source = re.search(r"<metadata>(.*?)</metadata>", svg).group(1)
    assert f"freeze paper (content hash {registry.content_hash[:16]})" in source
    assert plan_hash in source and "9.8.7" in source
    png = Image.open(io.BytesIO(client.get("/analysis/figures/forest-dfs.png", {"freeze": "paper"}).content))
    assert registry.content_hash[:16] in png.info["Source"]
    table = client.get("/analysis/data/univariable.csv").content.decode().splitlines()[-1]
    version = selectors.data_version()
    assert table.startswith(f"# Source: live; data version {version}") and plan_hash in table
    page = client.get("/analysis/", {"freeze": "paper"}).content.decode()
    assert 'id="software">Sarcoma PM registry 9.8.7' in page
    assert json.loads(client.get("/analysis/report.json", {"freeze": "paper"}).content)["report"]["software"][
        "registry"] == "9.8.7"


def test_the_dataset_export_names_the_software_beside_its_freeze(registry, tmp_path):
    path = tmp_path / "export.zip"
    call_command("export_registry", "--freeze", "paper", "--out", str(path), stdout=io.StringIO())
    with zipfile.ZipFile(path) as archive:
        readme = archive.read("README.txt").decode()
    assert "Data freeze:  paper" in readme and "Software:     Sarcoma PM registry 9.8.7" in readme
