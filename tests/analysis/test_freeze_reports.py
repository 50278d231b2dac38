"""Results pinned to a data freeze: the survival report, the analysis frame and the dataset export of
a freeze are the same, byte for byte, however much the live registry changes afterwards; the
dashboard and the API analysis endpoints compute from a freeze under their own access rules, and
say so (freeze name, instant and content hash instead of the live data version)."""
import datetime
import io
import json
import zipfile

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command

from analysis.frame import analysis_frame
from analysis.report import survival_report
from registry import selectors, services, synthetic
from registry.management.commands.generate_cohort import cohort_load
from registry.models import FollowUp, Metastasectomy, Patient, SystemicTherapy
from tests import factories as f
from tests.problems import field_errors
from tests.registry.api.test_api_helpers import client_for, fresh_throttles  # noqa: F401

pytestmark = pytest.mark.django_db
D = datetime.date
PROVENANCE = ("data_version", "generated_at", "freeze")


@pytest.fixture
def registry(coordinator):
    """48 synthetic patients at MUC, BER and HD, and a freeze of them named "paper"."""
    cache.clear()
    cohort_load(synthetic.generate_cohort(patients=48, centres=["MUC", "BER", "HD"], seed=5))
    yield services.freeze_create(user=coordinator, name="paper")
    cache.clear()


def change_the_live_data(coordinator):
    """What happens to a registry after a freeze: deaths, corrections, verification, new and
    deleted patients."""
    patients = list(Patient.objects.order_by("patient_id"))
    alive = [p for p in patients if not FollowUp.objects.filter(patient=p, event="death").exists()
             and Metastasectomy.objects.filter(patient=p).exists()]
    for patient in alive[:4]:
        last = max(FollowUp.objects.filter(patient=patient).values_list("event_date", flat=True),
                   default=Metastasectomy.objects.filter(patient=patient).latest("surgery_date").surgery_date)
        services.record_save(user=coordinator, record=f.follow_up(
            patient, event="death", event_date=min(last + datetime.timedelta(days=30), D(2024, 1, 1)),
            cause_of_death="sarcoma"))
    for pm in Metastasectomy.objects.filter(patient__in=patients[5:15]):
        pm.max_lesion_diameter_mm = 45
        services.record_save(user=coordinator, record=pm, reason="pathology report")
    services.record_status_set(user=coordinator, record=Patient.objects.get(pk=patients[20].pk), status="complete")
    services.record_delete(user=coordinator, record=Patient.objects.get(pk=patients[30].pk), reason="withdrew consent")
    new = services.patient_create(user=coordinator, centre=f.centre("MUC"), **f.patient_values())
    services.record_save(user=coordinator, record=f.metastasectomy(new, max_lesion_diameter_mm=30))


def command(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().encode()


def export(tmp_path, name, *options):
    path = tmp_path / name
    command("export_registry", "--out", str(path), *options)
    with zipfile.ZipFile(path) as archive:
        files = {member: archive.read(member) for member in archive.namelist()}
    # The one line that says when the file was made, not what it holds.
    files["README.txt"] = b"\n".join(line for line in files["README.txt"].split(b"\n")
                                     if not line.startswith(b"Exported:"))
    return files


def test_a_freeze_gives_the_same_report_frame_and_export_byte_for_byte_after_the_live_data_changed(
        registry, coordinator, tmp_path):
    live_before = survival_report()
    outputs = {
        "report json": lambda: command("survival_report", "--freeze", "paper", "--json"),
        "report text": lambda: command("survival_report", "--freeze", "paper"),
        "frame": lambda: command("analysis_frame", "--freeze", "paper", "--out", "-"),
        "one centre's report": lambda: command("survival_report", "--freeze", "paper", "--json", "--centre", "MUC"),
    }
    before = {name: produce() for name, produce in outputs.items()}
    exports = {"csv": export(tmp_path, "before.zip", "--freeze", "paper"),
               "dta": export(tmp_path, "before-intervals.zip", "--freeze", "paper", "--format", "dta",
                             "--deidentify", "intervals")}

    change_the_live_data(coordinator)

    live_after = survival_report()
    assert live_after["cohort"]["registered"] == live_before["cohort"]["registered"]  # one deleted, one added
    assert live_after["data_version"] != live_before["data_version"]
    assert live_after["endpoints"]["os"]["events"] > live_before["endpoints"]["os"]["events"]
    for name, produce in outputs.items():
        assert produce() == before[name], name
    assert export(tmp_path, "after.zip", "--freeze", "paper") == exports["csv"]
    assert export(tmp_path, "after-intervals.zip", "--freeze", "paper", "--format", "dta",
                  "--deidentify", "intervals") == exports["dta"]
    assert export(tmp_path, "live.zip")["follow_up.csv"] != exports["csv"]["follow_up.csv"]


def test_a_report_of_a_fresh_freeze_has_exactly_the_live_numbers_and_names_the_freeze(registry):
    live, frozen = survival_report(), survival_report(freeze=registry)
    assert {k: v for k, v in frozen.items() if k not in PROVENANCE} == {
        k: v for k, v in live.items() if k not in PROVENANCE}
    assert frozen["freeze"] == {"name": "paper", "frozen_at": registry.created_at.isoformat(), "rule": "all",
                                "content_hash": registry.content_hash,
                                "dictionary_version": registry.dictionary_version,
                                "live_data_version": live["data_version"]}
    assert frozen["data_version"] == registry.content_hash[:12] and frozen["generated_at"] == frozen["freeze"]["frozen_at"]
    assert live["freeze"] is None
    text = command("survival_report", "--freeze", "paper").decode()
    assert f"freeze paper of {registry.created_at.isoformat()}" in text and registry.content_hash in text


def test_the_frame_of_a_freeze_equals_the_live_frame_of_that_instant(registry, coordinator):
    assert analysis_frame(freeze=registry).equals(analysis_frame())
    # Missing-data codes are frozen too: a therapy not given (ND) is ignored from a freeze as from the live data.
    therapy = SystemicTherapy.objects.exclude(end_date=None).order_by("pk").first()
    therapy.end_date, therapy.missing_codes = None, {"end_date": "ND"}
    services.record_save(user=coordinator, record=therapy)
    coded = services.freeze_create(user=coordinator, name="coded")
    assert (therapy.pk, {"end_date": "ND"}) in selectors.FrozenRows(coded).rows("systemic_therapies",
                                                                                 ["id", "missing_codes"])
    assert analysis_frame(freeze=coded).equals(analysis_frame())
    mine = analysis_frame(freeze=registry, centres=["BER"])
    assert set(mine["centre"]) == {"BER"} and len(mine) == len(analysis_frame(centres=["BER"]))


def test_a_verified_only_freeze_analyses_only_the_verified_records(registry, coordinator):
    patient = Patient.objects.order_by("patient_id").first()
    for status in ("complete", "verified"):
        services.record_status_set(user=coordinator, record=patient, status=status)
    verified = services.freeze_create(user=coordinator, name="verified", rule="verified")
    frame = analysis_frame(freeze=verified)
    assert frame["patient_id"].tolist() == [patient.pk]
    # Its operations are not verified yet: the frozen patient has none, so no index date.
    assert frame.loc[0, "exclusion_reason"] == "no metastasectomy"


def test_unknown_freezes_are_refused_by_the_commands(registry):
    for args in (("survival_report", "--freeze", "nope"), ("analysis_frame", "--freeze", "nope", "--out", "-"),
                 ("export_registry", "--freeze", "nope", "--out", "x.zip")):
        with pytest.raises(CommandError, match="There is no freeze 'nope'"):
            command(*args)


# --- the dashboard ---------------------------------------------------------------------------------

def test_the_dashboard_of_a_freeze_shows_a_frozen_banner_and_stays_the_same(client, pi, registry, coordinator):
    client.force_login(pi)
    response = client.get("/analysis/", {"freeze": "paper"})
    html = response.content.decode()
    assert response.status_code == 200 and response.context["report"]["freeze"]["name"] == "paper"
    assert 'id="frozen"' in html and registry.content_hash[:16] in html and 'id="new-data"' not in html
    assert 'id="freeze-name">paper<' in html and registry.content_hash in html  # the provenance line
    assert '<option value="paper" selected>' in html
    assert response["X-Data-Version"] == registry.content_hash[:12]
    numbers = client.get("/analysis/report.json", {"freeze": "paper"}).content

    change_the_live_data(coordinator)
    cache.clear()  # computed again from the freeze, not served from the cache
    assert client.get("/analysis/report.json", {"freeze": "paper"}).content == numbers
    live = client.get("/analysis/")
    assert 'id="new-data"' in live.content.decode() and live.context["report"]["freeze"] is None
    assert client.get("/analysis/version", {"freeze": "paper"}).json() == {"data_version": registry.content_hash[:12]}


def test_the_dashboard_of_a_freeze_keeps_a_nurses_scope_and_refuses_unknown_freezes(client, nurse, registry):
    client.force_login(nurse)
    response = client.get("/analysis/", {"freeze": "paper"})
    assert response.context["report"]["scope"]["centres_included"] == ["MUC"]
    assert client.get("/analysis/", {"freeze": "paper", "centre": "BER"}).status_code == 404
    assert client.get("/analysis/", {"freeze": "nope"}).status_code == 404
    assert client.get("/analysis/print/", {"freeze": "paper"}).content.decode().count(registry.content_hash) >= 1


# --- the API analysis endpoints ---------------------------------------------------------------------

def test_the_api_report_and_frame_of_a_freeze_follow_their_access_rules(registry, pi, coordinator):
    report = client_for(pi).get("/api/v1/analysis/report", {"freeze": "paper"}).json()
    assert report["scope"]["centres_included"] == ["BER", "HD", "MUC"]  # aggregates pool every centre
    assert report["freeze"]["content_hash"] == registry.content_hash
    frame = client_for(pi).get("/api/v1/analysis/frame", {"freeze": "paper"}).json()
    assert {row["patient_id"].split("-")[0] for row in frame["rows"]} == {"MUC"}  # rows: her own centre
    assert frame["freeze"]["name"] == "paper" and frame["data_version"] == registry.content_hash[:12]
    everyone = client_for(coordinator).get("/api/v1/analysis/frame", {"freeze": "paper"}).json()
    assert len(everyone["rows"]) == 48
    refused = client_for(pi).get("/api/v1/analysis/report", {"freeze": "nope"})
    assert refused.status_code == 400 and "freeze" in field_errors(refused)


def test_the_api_report_of_a_freeze_is_byte_identical_after_the_live_data_changed(registry, coordinator):
    before = client_for(coordinator).get("/api/v1/analysis/report", {"freeze": "paper", "centres": "MUC,BER"}).content
    change_the_live_data(coordinator)
    after = client_for(coordinator).get("/api/v1/analysis/report", {"freeze": "paper", "centres": "MUC,BER"}).content
    assert json.loads(after) == json.loads(before) and after == before


def test_the_export_of_a_fresh_freeze_holds_the_live_rows_missing_data_codes_included(registry, coordinator, tmp_path):
    therapy = SystemicTherapy.objects.exclude(end_date=None).order_by("pk").first()
    therapy.end_date, therapy.missing_codes = None, {"end_date": "ND"}
    services.record_save(user=coordinator, record=therapy)
    services.freeze_create(user=coordinator, name="coded")
    live, frozen = export(tmp_path, "live.zip"), export(tmp_path, "frozen.zip", "--freeze", "coded")
    # A freeze keeps no REDCap instance numbers nor history: its export leaves out the REDCap and ODM files.
    interop = {name for name in live if name.startswith("redcap_") or name == "odm.xml"}
    assert set(live) - interop == set(frozen) and interop
    for name in set(frozen) - {"README.txt"}:  # the same rows (their order may follow the database's collation)
        assert sorted(live[name].splitlines()) == sorted(frozen[name].splitlines()), name
    assert b",ND," in frozen["systemic_therapies.csv"]
    assert b"Data freeze:  coded" in frozen["README.txt"]
