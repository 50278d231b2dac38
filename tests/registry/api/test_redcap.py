"""The REDCap-compatible endpoint speaks REDCap's export protocol: what each `content` answers,
in JSON and CSV, the flat layout with repeating instruments, and REDCap's error messages."""
import csv
import datetime
import io
import json

import pytest
from django.test import Client

from registry import services
from registry.api.redcap_project import METADATA_COLUMNS
from registry.models import FollowUp, Metastasectomy, Patient
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


def test_the_endpoint_answers_a_post_without_its_final_slash_not_a_redirect(nurse):
    # A client given the address without the slash would follow a 301 with a GET and lose the form.
    response = Client().post("/redcap/api", {"token": redcap_token_for(nurse), "content": "version"})
    assert response.status_code == 200 and response.content == b"14.5.0"


def test_project_info_says_classic_with_repeating_instruments(post):
    info = post("project", format="json").json()
    assert info["is_longitudinal"] == 0 and info["has_repeating_instruments_or_events"] == 1
    csv_info = rows_of(post("project", format="csv"))
    assert len(csv_info) == 1 and csv_info[0]["is_longitudinal"] == "0"


def test_project_info_has_every_flag_a_redcap_client_reads(post):
    # A comment once swallowed randomization_enabled and ddp_enabled from the answer.
    info = post("project", format="json").json()
    assert (info["record_autonumbering_enabled"], info["randomization_enabled"], info["ddp_enabled"]) == (1, 0, 0)


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


# --- data access groups, change dates, CSV options, label headers, the log ----------------------

def test_centres_are_data_access_groups(post, case):
    assert post("dag", format="json").json() == [
        {"data_access_group_name": "Centre MUC", "unique_group_name": "muc", "data_access_group_id": 10047}]
    records = post("record", format="json", exportDataAccessGroups="true").json()
    assert list(records[0])[:4] == ["patient_id", "redcap_repeat_instrument", "redcap_repeat_instance",
                                    "redcap_data_access_group"]
    assert {r["redcap_data_access_group"] for r in records} == {"muc"}
    assert "redcap_data_access_group" not in post("record", format="json").json()[0]


def test_date_range_exports_the_records_written_in_it(post, nurse):
    def written_in_2020(record):
        record._history_date = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)  # simple-history's own hook
        return record

    old = services.record_save(user=nurse, record=written_in_2020(Patient(centre_id="MUC", **f.patient_values())))
    services.record_save(user=nurse, record=written_in_2020(f.metastasectomy(old)))
    recent = f.patient("MUC")
    assert {r["patient_id"] for r in post("record", format="json", dateRangeBegin="2024-01-01 00:00:00").json()} == {
        recent.pk}
    assert {r["patient_id"] for r in post("record", format="json", dateRangeEnd="2024-01-01 00:00:00").json()} == {
        old.pk}
    # A deleted metastasectomy is a change of its record too.
    services.record_delete(user=nurse, record=Metastasectomy.objects.get(patient=old), reason="entered twice")
    assert old.pk in {r["patient_id"] for r in post("record", format="json", dateRangeBegin="2024-01-01").json()}
    assert "dateRangeBegin" in post("record", format="json", dateRangeBegin="yesterday").json()["error"]


def test_csv_delimiter_and_decimal_character(post, case):
    text = post("record", format="csv", csvDelimiter="tab", decimalCharacter=",").content.decode()
    header, base = text.splitlines()[:2]
    assert header.startswith("patient_id\tredcap_repeat_instrument\tredcap_repeat_instance\tcentre")
    assert "\t80,0\t" in base
    assert post("record", format="json", decimalCharacter=",").json()[1]["max_lesion_diameter_mm"] == "15,0"
    assert "csvDelimiter" in post("record", format="csv", csvDelimiter="#").content.decode()
    assert "decimalCharacter" in post("record", format="json", decimalCharacter=";").json()["error"]


def test_label_headers_are_unique(post, case):
    header = next(csv.reader(io.StringIO(post("record", format="csv", rawOrLabelHeaders="label").content.decode())))
    assert len(header) == len(set(header))
    assert "Surgery date (Primary tumour)" in header and "Surgery date (Metastasectomies)" in header
    assert "Complete? (Follow-up)" in header and "Registry ID (Metastasectomies)" in header
    assert "Sex" in header  # a label no other column has stays as it is


def test_the_log_shows_the_records_changes_in_redcaps_shape(post, case, nurse, coordinator):
    pm = Metastasectomy.objects.get(patient=case)
    pm.side = "left"
    services.record_save(user=nurse, record=pm, source="web", reason="")
    services.record_delete(user=nurse, record=FollowUp.objects.get(patient=case), source="web", reason="dup")
    log = post("log", format="json").json()
    assert list(log[0]) == ["timestamp", "username", "action", "details", "record"]
    assert log[0]["action"] == f"Updated Record {case.pk}" and log[0]["details"] == "[instance = 1], Deleted the data " \
                                                                                     "of follow_up [web: dup]"
    assert log[1]["details"] == "[instance = 1], side = 'left' [web]" and log[1]["username"] == "nurse"
    assert log[-1]["action"] == f"Created Record {case.pk}" and "sex = 'female'" in log[-1]["details"]
    for status in ("complete", "verified", "locked"):
        services.record_status_set(user=coordinator, record=case, status=status)
    locks = post("log", format="json", logtype="lock_record").json()
    assert [(r["action"], r["details"]) for r in locks] == [(f"Lock/Unlock Record {case.pk}", "Lock patients")]
    assert post("log", format="json", logtype="record_add").json() == [log[-1]]
    assert post("log", format="json", logtype="export").json() == []
    assert post("log", format="json", user="coordinator", logtype="record_edit").json()[0]["username"] == "coordinator"
    assert post("log", format="json", beginTime="2999-01-01 00:00").json() == []
    assert "logtype" in post("log", format="json", logtype="everything").json()["error"]


def test_the_log_holds_only_the_centres_the_user_may_read(case, other_nurse):
    berlin = f.patient("BER")
    log = Client().post("/redcap/api/", {"token": redcap_token_for(other_nurse), "content": "log",
                                         "format": "json"}).json()
    assert {row["record"] for row in log} == {berlin.pk}
    assert Client().post("/redcap/api/", {"token": redcap_token_for(other_nurse), "content": "log", "format": "json",
                                          "dag": "muc"}).json() == []


# --- every body a client may send ---------------------------------------------------------------

@pytest.mark.parametrize("content_type,body,status", [
    ("application/json", json.dumps({"token": "A" * 32, "content": "record"}), 415),
    ("text/xml", '<?xml version="1.0"?><request><content>record</content></request>', 415),
    ("text/plain", "token=abc&content=record", 415),
    ("", "token=abc&content=record", 415),
    ("application/octet-stream", bytes(range(256)) * 4, 415),
    ("application/x-www-form-urlencoded", bytes(range(256)) * 4, 403),
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nnot a part", 403),
    ("multipart/form-data", b"no boundary at all", 400),
    ("application/x-www-form-urlencoded", b"token=" + b"A" * 3_000_000, 413),
    ("application/x-www-form-urlencoded", "&".join(f"f{i}=1" for i in range(1200)), 400),
])
def test_every_body_gets_a_redcap_error_never_a_server_error(db, content_type, body, status):
    response = Client(raise_request_exception=False).generic("POST", "/redcap/api/", body, content_type=content_type)
    assert response.status_code == status
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8" ?>\n<hash>\n  <error>')


def test_a_nul_character_in_any_parameter_is_refused(post, case):
    for fields in ({"records": "MUC-\x00"}, {"fields": "sex\x00"}, {"\x00": "x"}):
        response = post("record", format="json", **fields)
        assert response.status_code == 400 and "NUL" in response.json()["error"]
    assert post("log", format="json", record="MUC-\x00").status_code == 400


def test_a_body_that_is_no_form_is_refused_even_with_a_valid_token(nurse):
    token = redcap_token_for(nurse)
    response = Client().generic("POST", "/redcap/api/", json.dumps({"token": token, "content": "version"}),
                                content_type="application/json")
    assert response.status_code == 415 and b"form" in response.content
