"""Missing-data codes over the REST API (`missing_codes`, checked with a 400 naming the field) and the
REDCap endpoint (project-wide missing data codes, @NOMISSING on required fields, the code exported in
place of the value, as REDCap does)."""
import csv
import io

import pytest
from django.test import Client

from registry import services
from registry.models import Patient, PrimaryTumour
from tests import factories as f
from tests.problems import field_errors
from tests.registry.api.test_api_helpers import api, fresh_throttles, patient_payload, redcap_token_for  # noqa: F401

pytestmark = pytest.mark.django_db


# --- REST API ------------------------------------------------------------------------------------

def test_a_patient_is_created_read_and_listed_with_its_codes(api):
    response = api.post("/api/v1/patients/", patient_payload(ecog=None, missing_codes={"ecog": "ND"}), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["ecog"] is None and response.json()["missing_codes"] == {"ecog": "ND"}
    assert Patient.objects.get().missing_codes == {"ecog": "ND"}
    listed = api.get("/api/v1/patients/").json()["results"]
    assert listed[0]["missing_codes"] == {"ecog": "ND"}


@pytest.mark.parametrize("payload, field, words", [
    ({"ecog": 1, "missing_codes": {"ecog": "UNK"}}, "ecog", "ECOG has a value and is marked “Unknown”"),
    ({"missing_codes": {"birth_year": "UNK"}}, "birth_year", "Year of birth is required"),
    ({"ecog": None, "missing_codes": {"ecog": "MAYBE"}}, "missing_codes.ecog", "not a valid choice"),
    ({"missing_codes": ["UNK"]}, "missing_codes", "dictionary"),
])
def test_a_code_that_is_not_allowed_is_a_400_naming_the_field(api, payload, field, words):
    response = api.post("/api/v1/patients/", patient_payload(**payload), format="json")
    assert response.status_code == 400
    assert field in field_errors(response) and words in str(field_errors(response)[field]), field_errors(response)
    assert not Patient.objects.exists()


def test_a_value_sent_for_a_coded_field_replaces_its_code(api, nurse, case):
    tumour = PrimaryTumour.objects.get()
    response = api.patch(f"/api/v1/primary-tumours/{tumour.pk}/", {"grade": None, "missing_codes": {"grade": "UNK"}},
                         format="json", HTTP_IF_MATCH='"1"')
    assert response.status_code == 200 and response.json()["missing_codes"] == {"grade": "UNK"}
    response = api.patch(f"/api/v1/primary-tumours/{tumour.pk}/", {"grade": "G1"}, format="json", HTTP_IF_MATCH='"2"')
    assert response.status_code == 200, response.json()
    assert response.json()["grade"] == "G1" and response.json()["missing_codes"] == {}
    response = api.patch(f"/api/v1/primary-tumours/{tumour.pk}/", {"grade": "G2", "missing_codes": {"grade": "ND"}},
                         format="json", HTTP_IF_MATCH='"3"')
    assert response.status_code == 400 and "grade" in field_errors(response)  # both at once: which is meant?


# --- REDCap ----------------------------------------------------------------------------------------

@pytest.fixture
def post(nurse):
    token = redcap_token_for(nurse)

    def send(content, **fields):
        return Client().post("/redcap/api/", {"token": token, "content": content, **fields})
    return send


@pytest.fixture
def coded_case(nurse, case):
    case.ecog, case.missing_codes = None, {"ecog": "UNK"}
    services.record_save(user=nurse, record=case)
    tumour = PrimaryTumour.objects.get()
    tumour.grade, tumour.surgery_date, tumour.missing_codes = None, None, {"grade": "NA", "surgery_date": "ND"}
    services.record_save(user=nurse, record=tumour)
    return case


def test_redcap_project_info_lists_the_missing_data_codes_as_redcap_does(post):
    info = post("project", format="json").json()
    assert info["missing_data_codes"] == "UNK, Unknown | ND, Not done | NA, Not applicable"


def test_redcap_metadata_tags_every_required_field_nomissing_and_no_optional_one(post):
    metadata = {row["field_name"]: row for row in post("metadata", format="json").json()}
    assert metadata["birth_year"]["field_annotation"] == "registry column: patients.birth_year @NOMISSING"
    assert metadata["patient_id"]["field_annotation"].endswith("@NOMISSING")
    assert metadata["ecog"]["field_annotation"] == "registry column: patients.ecog"
    assert "@NOMISSING" not in metadata["primary_surgery_date"]["field_annotation"]
    assert all(("@NOMISSING" in row["field_annotation"]) == (row["required_field"] == "y")
               for row in metadata.values())


def test_redcap_records_hold_the_code_in_place_of_the_value(post, coded_case):
    rows = post("record", format="json").json()
    base = next(row for row in rows if row["redcap_repeat_instrument"] == "")
    assert (base["ecog"], base["grade"], base["primary_surgery_date"]) == ("UNK", "NA", "ND")
    assert base["sex"] == "female" and base["primary_margin"] == "R0"
    labelled = next(row for row in post("record", format="json", rawOrLabel="label").json()
                    if row["redcap_repeat_instrument"] == "")
    assert (labelled["ecog"], labelled["grade"], labelled["primary_surgery_date"]) == (
        "Unknown", "Not applicable", "Not done")
    csv_rows = list(csv.DictReader(io.StringIO(post("record", format="csv", fields="patient_id,ecog").content.decode())))
    assert csv_rows[0]["ecog"] == "UNK"


def test_redcap_a_blank_stays_blank(post, nurse):
    f.patient("MUC", ecog=None)
    rows = post("record", format="json", fields="patient_id,ecog").json()
    assert rows[0]["ecog"] == ""
