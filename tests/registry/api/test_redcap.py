"""The REDCap-compatible endpoint speaks REDCap's export protocol: what each `content` answers,
in JSON and CSV, the flat layout with repeating instruments, and REDCap's error messages."""
import csv
import io
import json

import pytest
from django.test import Client

from registry import services
from registry.api.redcap_project import METADATA_COLUMNS
from tests import factories as f
from tests.registry.api.test_api_helpers import fresh_throttles, redcap_token_for  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def post(nurse):
    token = redcap_token_for(nurse)

    def send(content, **fields):
        return Client().post("/redcap/api/", {"token": token, "content": content, **fields})
    return send


def rows_of(response):
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_version_is_plain_text(post):
    response = post("version")
    assert response.status_code == 200 and response.content == b"14.5.0"


def test_project_info_says_classic_with_repeating_instruments(post):
    info = post("project", format="json").json()
    assert info["is_longitudinal"] == 0 and info["has_repeating_instruments_or_events"] == 1
    csv_info = rows_of(post("project", format="csv"))
    assert len(csv_info) == 1 and csv_info[0]["is_longitudinal"] == "0"


def test_form_event_mapping_is_refused_as_for_a_classic_project(post):
    response = post("formEventMapping", format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["error"]


def test_unknown_content_is_a_redcap_error_in_the_requested_format(post):
    assert post("nonsense", format="json").json() == {"error": 'The value of the parameter "content" is not valid'}
    assert post("nonsense", format="csv", returnFormat="xml").content.startswith(b'<?xml')
    assert post("nonsense", format="csv").content.startswith(b"ERROR:")


def test_metadata_has_redcaps_columns_and_patient_id_first(post):
    metadata = post("metadata", format="json").json()
    assert list(metadata[0]) == METADATA_COLUMNS
    assert metadata[0]["field_name"] == "patient_id" and metadata[0]["form_name"] == "patients"
    by_name = {row["field_name"]: row for row in metadata}
    assert len(by_name) == len(metadata)  # REDCap field names are unique across instruments
    assert by_name["sex"]["field_type"] == "dropdown"
    assert by_name["sex"]["select_choices_or_calculations"] == "female, female | male, male | diverse, diverse"
    assert by_name["centre"]["select_choices_or_calculations"] == "MUC, Centre MUC"
    assert by_name["extrapulmonary_disease_at_pm"]["field_type"] == "yesno"
    assert by_name["surgery_date"]["form_name"] == "metastasectomies"
    assert by_name["primary_surgery_date"]["text_validation_type_or_show_slider_number"] == "date_ymd"
    assert by_name["primary_surgery_date"]["field_annotation"] == "registry column: primary_tumours.surgery_date"
    assert by_name["max_lesion_diameter_mm"]["text_validation_min"] == "1"
    assert by_name["ecog"]["required_field"] == "" and by_name["event"]["required_field"] == "y"
    assert by_name["recurrence_site"]["branching_logic"] == "[event] = 'recurrence'"
    assert [row["field_name"] for row in post("metadata", format="json", **{"forms[0]": "follow_up"}).json()] == [
        "event_date", "event", "recurrence_site", "cause_of_death", "follow_up_id"]
    assert by_name["follow_up_id"]["field_annotation"].startswith("@READONLY")


def test_export_field_names_and_instruments(post):
    names = post("exportFieldNames", format="json").json()
    assert names[0] == {"original_field_name": "patient_id", "choice_value": "", "export_field_name": "patient_id"}
    assert "follow_up_complete" in [row["export_field_name"] for row in names]
    instruments = post("instrument", format="json").json()
    assert [row["instrument_name"] for row in instruments] == [
        "patients", "primary_tumours", "metastasectomies", "systemic_therapies", "follow_up"]
    repeating = post("repeatingFormsEvents", format="json").json()
    assert [row["form_name"] for row in repeating] == ["metastasectomies", "systemic_therapies", "follow_up"]


def test_records_in_the_flat_layout_with_repeating_instruments(post, case, nurse):
    services.record_save(user=nurse, record=f.metastasectomy(case, surgery_date="2017-01-10", side="left"))
    records = post("record", format="json", type="flat").json()
    assert [(r["redcap_repeat_instrument"], r["redcap_repeat_instance"]) for r in records] == [
        ("", ""), ("metastasectomies", "1"), ("metastasectomies", "2"), ("systemic_therapies", "1"),
        ("follow_up", "1")]
    base, first_pm, second_pm = records[0], records[1], records[2]
    assert base["patient_id"] == case.pk and base["sex"] == "female" and base["birth_year"] == "1960"
    assert base["extrapulmonary_disease_at_pm"] == "0" and base["ecog"] == "0"
    assert base["primary_surgery_date"] == "2012-06-01" and base["size_mm"] == "80.0"
    assert base["surgery_date"] == "" and base["patients_complete"] == "2" and base["follow_up_complete"] == ""
    assert first_pm["surgery_date"] == "2015-04-01" and first_pm["sex"] == "" and first_pm["side"] == "right"
    assert second_pm["surgery_date"] == "2017-01-10" and second_pm["metastasectomies_complete"] == "2"
    assert set(records[0]) == set(records[4])  # every row has every column


def test_records_as_csv_and_as_labels(post, case):
    rows = rows_of(post("record", format="csv", rawOrLabel="label", rawOrLabelHeaders="raw"))
    assert rows[0]["histology"] == "leiomyosarcoma" and rows[0]["extrapulmonary_disease_at_pm"] == "No"
    assert rows[0]["centre"] == "Centre MUC" and rows[1]["redcap_repeat_instrument"] == "Metastasectomies"
    header = post("record", format="csv", rawOrLabelHeaders="label").content.decode().splitlines()[0]
    assert header.startswith("Patient ID,Repeat Instrument,Repeat Instance,Centre,Sex")


def test_records_fields_forms_and_records_filters_in_every_array_notation(post, case):
    other = f.patient("MUC")
    only_other = post("record", format="json", **{"records[0]": other.pk}).json()
    assert [r["patient_id"] for r in only_other] == [other.pk]
    assert len(post("record", format="json", **{"records[]": [case.pk, other.pk]}).json()) == 5
    assert len(post("record", format="json", records=f"{case.pk},{other.pk}").json()) == 5
    fields = post("record", format="json", **{"fields[0]": "patient_id", "fields[1]": "sex"}).json()
    assert [list(r) for r in fields] == [["patient_id", "redcap_repeat_instrument", "redcap_repeat_instance", "sex"]] * 2
    forms = post("record", format="json", forms="follow_up").json()
    assert [r["redcap_repeat_instrument"] for r in forms] == ["follow_up"]
    assert list(forms[0])[3:] == ["event_date", "event", "recurrence_site", "cause_of_death", "follow_up_id",
                                  "follow_up_complete"]


def test_unknown_fields_or_forms_are_errors(post):
    response = post("record", format="json", fields="sex,nonsense")
    assert response.status_code == 400 and "nonsense" in response.json()["error"]
    assert "nothing" in post("record", format="json", forms="nothing").json()["error"]


def test_records_are_those_the_token_user_may_read(case, other_nurse):
    f.patient("BER")
    response = Client().post("/redcap/api/", {"token": redcap_token_for(other_nurse), "content": "record",
                                              "format": "json", "records": case.pk})
    assert response.json() == []
    everything = Client().post("/redcap/api/", {"token": redcap_token_for(other_nurse), "content": "record",
                                                "format": "json"}).json()
    assert {r["patient_id"][:3] for r in everything} == {"BER"}


def test_deletions_other_imports_unsupported_formats_and_filters_are_refused(post):
    assert post("record", action="delete", **{"records[0]": "MUC-X"}, format="json").status_code == 403
    assert post("metadata", format="json", data=json.dumps([{"field_name": "x"}])).status_code == 403
    assert post("record", format="xml").content.startswith(b"<?xml")
    assert "eav" in post("record", format="json", type="eav").json()["error"]
    assert "filterLogic" in post("record", format="json", filterLogic="[sex] = 'male'").json()["error"]


def test_a_wrong_token_gets_redcaps_permission_error(db):
    response = Client().post("/redcap/api/", {"token": "A" * 32, "content": "version", "format": "json"})
    assert response.status_code == 403
    assert response.json() == {"error": "You do not have permissions to use the API"}
    assert Client().get("/redcap/api/").status_code in (403, 405)


def test_csv_records_neutralise_text_a_spreadsheet_would_run(post, case, nurse):
    services.record_save(user=nurse, record=f.systemic_therapy(case, start_date=f.D(2015, 9, 1), end_date=None, regimen="other",
                                                                regimen_other='=HYPERLINK("http://x","y")'))
    text = post("record", format="csv").content.decode()
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text
    assert post("record", format="json").json()  # JSON keeps the value as entered
