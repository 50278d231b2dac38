"""Records imported through the REDCap endpoint go through the registry's one writer: every rule,
lock, reason and access check of the web app, all or nothing, answered in REDCap's formats."""
import csv
import datetime
import io
import json

import pytest
from django.test import Client

from registry import services
from registry.api.models import REDCAP, ApiToken
from registry.models import FollowUp, Metastasectomy, Patient, PrimaryTumour, SecurityEvent, SystemicTherapy
from tests import factories as f
from tests.registry.api.test_api_helpers import fresh_throttles, redcap_token_for  # noqa: F401

pytestmark = pytest.mark.django_db


def send(token, content="record", **fields):
    return Client().post("/redcap/api/", {"token": token, "content": content, **fields})


@pytest.fixture
def token(nurse):
    return redcap_token_for(nurse)


def export(token, **fields):
    return send(token, format="json", **fields).json()


def push(token, rows, **fields):
    """An import of `rows` (JSON), answered in JSON."""
    return send(token, format="json", returnFormat="json", data=json.dumps(rows), **fields)


def row_of(rows, instrument="", instance=""):
    return next(r for r in rows if r["redcap_repeat_instrument"] == instrument and r["redcap_repeat_instance"] == instance)


def error_lines(response):
    """REDCap's import error: one CSV line per problem, "record","field","value","message"."""
    return list(csv.reader(io.StringIO(response.json()["error"])))


def history_rows():
    return sum(model.history.count() for model in (Patient, PrimaryTumour, Metastasectomy, SystemicTherapy, FollowUp))


def test_a_changed_record_is_saved_through_the_services_with_its_audit_row(token, case):
    rows = export(token)
    row_of(rows, "metastasectomies", "1")["side"] = "left"
    response = push(token, rows)
    assert response.status_code == 200 and response.json() == {"count": 1}
    pm = Metastasectomy.objects.get(patient=case)
    assert pm.side == "left" and pm.version == 2
    latest = pm.history.latest()
    assert latest.history_change_reason == "redcap" and latest.history_user.username == "nurse"


def test_an_unchanged_round_trip_writes_nothing_in_json_or_csv(token, case):
    before = history_rows()
    assert push(token, export(token)).json() == {"count": 1}
    text = send(token, format="csv").content.decode()
    assert send(token, format="csv", returnFormat="json", data=text).json() == {"count": 1}
    assert history_rows() == before
    assert Metastasectomy.objects.get(patient=case).version == 1


def test_normal_leaves_a_value_where_a_cell_is_empty_and_overwrite_empties_it(token, case):
    base = {"patient_id": case.pk, "redcap_repeat_instrument": "", "redcap_repeat_instance": "", "ecog": ""}
    assert push(token, [base]).status_code == 200
    assert Patient.objects.get(pk=case.pk).ecog == 0
    assert push(token, [base], overwriteBehavior="overwrite").status_code == 200
    assert Patient.objects.get(pk=case.pk).ecog is None
    # Only the columns the data have are emptied.
    assert Patient.objects.get(pk=case.pk).sex == "female"


def test_overwrite_cannot_empty_a_required_value(token, case):
    base = {"patient_id": case.pk, "sex": ""}
    response = push(token, [base], overwriteBehavior="overwrite")
    assert response.status_code == 400
    assert error_lines(response) == [[case.pk, "sex", "", "This field cannot be null."]]


def test_one_refused_record_writes_nothing_and_the_error_names_record_field_value_and_problem(token, case, nurse):
    other = f.patient("MUC")
    services.record_save(user=nurse, record=f.metastasectomy(other))
    rows = export(token)
    row_of([r for r in rows if r["patient_id"] == other.pk], "metastasectomies", "1")["side"] = "left"
    row_of([r for r in rows if r["patient_id"] == case.pk], "metastasectomies", "1")["surgery_date"] = "2010-01-01"
    before = history_rows()
    response = push(token, rows)
    assert response.status_code == 400
    assert error_lines(response) == [[case.pk, "surgery_date", "2010-01-01",
                                      "metastasectomies instance 1: The first metastasectomy (2010-01-01) is before "
                                      "the diagnosis of lung metastases (2015-03-01)."]]
    assert history_rows() == before and Metastasectomy.objects.get(patient=other).side == "right"
    refused = SecurityEvent.objects.get(event=SecurityEvent.IMPORT_REFUSED)
    assert refused.username == "nurse" and "1 errors" in refused.detail


def test_cell_errors_are_all_reported_before_anything_is_written(token, case):
    rows = [{"patient_id": case.pk, "birth_year": "19x0", "sex": "unknown"},
            {"patient_id": case.pk, "redcap_repeat_instrument": "metastasectomies", "redcap_repeat_instance": "1",
             "surgery_date": "2015-02-30"}]
    lines = error_lines(push(token, rows))
    assert [line[:3] for line in lines] == [[case.pk, "birth_year", "19x0"], [case.pk, "sex", "unknown"],
                                            [case.pk, "surgery_date", "2015-02-30"]]
    assert "There is no such date." in lines[2][3]


def test_changes_that_hold_only_together_are_saved_in_an_order_that_works(token, case):
    """The first PM moves after the contact; the contact moves after it: each alone breaks a rule."""
    rows = [{"patient_id": case.pk, "redcap_repeat_instrument": "metastasectomies", "redcap_repeat_instance": "1",
             "surgery_date": "2016-02-01"},
            {"patient_id": case.pk, "redcap_repeat_instrument": "follow_up", "redcap_repeat_instance": "1",
             "event_date": "2016-03-01"}]
    response = push(token, rows)
    assert response.status_code == 200, response.content
    assert Metastasectomy.objects.get(patient=case).surgery_date == datetime.date(2016, 2, 1)
    assert FollowUp.objects.get(patient=case).event_date == datetime.date(2016, 3, 1)


def test_new_instances_by_a_free_number_or_new_and_the_registry_id_guards_the_merge(token, case):
    therapy = {"patient_id": case.pk, "redcap_repeat_instrument": "systemic_therapies", "start_date": "2016-02-01",
               "regimen": "gemcitabine", "intent": "palliative"}
    assert push(token, [{**therapy, "redcap_repeat_instance": "5"}]).status_code == 200
    assert push(token, [{**therapy, "redcap_repeat_instance": "new", "start_date": "2016-06-01"}]).status_code == 200
    numbers = dict(SystemicTherapy.objects.filter(patient=case).values_list("start_date", "redcap_instance"))
    assert numbers == {datetime.date(2015, 5, 1): 1, datetime.date(2016, 2, 1): 5, datetime.date(2016, 6, 1): 6}
    first = SystemicTherapy.objects.get(patient=case, redcap_instance=1)
    wrong = push(token, [{**therapy, "redcap_repeat_instance": "5", "systemic_therapies_id": str(first.pk)}])
    assert error_lines(wrong)[0][1:] == ["systemic_therapies_id", str(first.pk),
                                         f"The registry ID {first.pk} is instance 1 of systemic_therapies of this "
                                         "record, not instance 5."]


def test_an_earlier_record_entered_later_moves_no_instance(token, case, nurse):
    """A data manager's merge on (record, instrument, instance) meets each record under its number."""
    first = SystemicTherapy.objects.get(patient=case)
    services.record_save(user=nurse, record=f.systemic_therapy(case, start_date=f.D(2014, 1, 1),
                                                               end_date=f.D(2014, 3, 1), intent="palliative"))
    therapies = [r for r in export(token) if r["redcap_repeat_instrument"] == "systemic_therapies"]
    assert [(r["redcap_repeat_instance"], r["start_date"]) for r in therapies] == [
        ("1", "2015-05-01"), ("2", "2014-01-01")]
    assert therapies[0]["systemic_therapies_id"] == str(first.pk)


def test_force_auto_number_creates_new_patients_with_issued_pseudonyms(token, nurse):
    rows = [{"patient_id": "1", "centre": "MUC", "sex": "male", "birth_year": "1970", "histology": "UPS",
             "lung_mets_diagnosis_date": "2018-01-05", "extrapulmonary_disease_at_pm": "0",
             "diagnosis_date": "2017-03-01", "site": "trunk"},
            {"patient_id": "1", "redcap_repeat_instrument": "metastasectomies", "redcap_repeat_instance": "1",
             "surgery_date": "2018-02-01", "side": "left", "approach": "vats", "resection_type": "wedge",
             "lesions_resected": "2", "max_lesion_diameter_mm": "12.5", "margin": "R0", "clavien_dindo": "none"}]
    response = push(token, rows, forceAutoNumber="true", returnContent="auto_ids")
    assert response.status_code == 200, response.content
    [pair] = response.json()
    pid, given = pair.split(",")
    assert given == "1" and pid.startswith("MUC-")
    patient = Patient.objects.get(pk=pid)
    assert patient.primary_tumour.site == "trunk"
    assert patient.metastasectomies.get().redcap_instance == 1


def test_force_auto_number_refuses_a_registry_id_and_new_records_need_force_auto_number(token, case):
    response = push(token, [{"patient_id": case.pk, "sex": "male"}], forceAutoNumber="true")
    assert "forceAutoNumber=true creates new records" in error_lines(response)[0][3]
    response = push(token, [{"patient_id": "MUC-NEW123", "sex": "male"}])
    assert error_lines(response)[0][:2] == ["MUC-NEW123", "patient_id"]
    assert "forceAutoNumber=true" in error_lines(response)[0][3]
    assert not Patient.objects.filter(pk="MUC-NEW123").exists()


def test_another_centres_record_is_unknown_to_a_nurse(case, other_nurse):
    response = push(redcap_token_for(other_nurse), [{"patient_id": case.pk, "sex": "male"}])
    assert response.status_code == 400 and "that you may see" in error_lines(response)[0][3]
    assert Patient.objects.get(pk=case.pk).sex == "female"


@pytest.mark.parametrize("role", ["pi", "monitor"])
def test_roles_that_may_not_write_have_no_import_privileges(case, role, request):
    response = push(redcap_token_for(request.getfixturevalue(role)), [{"patient_id": case.pk, "sex": "male"}])
    assert response.status_code == 403
    assert response.json() == {"error": "You do not have API Import/Update privileges"}
    assert Patient.objects.get(pk=case.pk).sex == "female"


def test_a_record_the_user_reads_but_may_not_write_is_refused(case):
    reader = f.user("monitor_and_nurse", memberships=[("MUC", "monitor"), ("BER", "nurse")])
    response = push(redcap_token_for(reader), [{"patient_id": case.pk, "sex": "male"}])
    assert error_lines(response) == [[case.pk, "patient_id", case.pk, "You may not change patients of centre MUC."]]
    assert Patient.objects.get(pk=case.pk).sex == "female"


def test_an_unknown_token_imports_nothing(case):
    response = push("0" * 32, [{"patient_id": case.pk, "sex": "male"}])
    assert response.status_code == 403 and Patient.objects.get(pk=case.pk).sex == "female"


def test_a_read_only_token_has_no_import_privileges(case, nurse):
    key = ApiToken.issue(user=nurse, kind=REDCAP, name="read only", read_only=True)[1]
    assert push(key, [{"patient_id": case.pk, "sex": "male"}]).status_code == 403
    assert export(key)  # it still reads


def test_a_coordinator_imports_for_every_centre(case, coordinator):
    assert push(redcap_token_for(coordinator), [{"patient_id": case.pk, "ecog": "2"}]).json() == {"count": 1}
    assert Patient.objects.get(pk=case.pk).ecog == 2


def test_a_locked_record_is_refused(token, case, coordinator):
    for status in ("complete", "verified", "locked"):
        services.record_status_set(user=coordinator, record=case, status=status)
    response = push(token, [{"patient_id": case.pk, "ecog": "2"}])
    assert response.status_code == 400 and "is locked" in error_lines(response)[0][3]


def test_a_complete_record_changes_only_with_a_reason(token, case, nurse):
    services.record_status_set(user=nurse, record=case, status="complete")
    response = push(token, [{"patient_id": case.pk, "ecog": "2"}])
    [line] = error_lines(response)
    assert line[:2] == [case.pk, ""] and "give a reason" in line[3] and "parameter reason" in line[3]
    assert push(token, [{"patient_id": case.pk, "ecog": "2"}], reason="ECOG corrected").status_code == 200
    assert Patient.objects.get(pk=case.pk).history.latest().history_change_reason == "redcap: ECOG corrected"
    # In the query string, where PyCap can send it (Project(url, token, params={"reason": ...})).
    response = Client().post("/redcap/api/?reason=ECOG+rechecked", {
        "token": token, "content": "record", "format": "json", "returnFormat": "json",
        "data": json.dumps([{"patient_id": case.pk, "ecog": "3"}])})
    assert response.status_code == 200 and Patient.objects.get(pk=case.pk).ecog == 3


def test_unknown_fields_misplaced_fields_and_duplicates_are_refused(token, case):
    response = push(token, [{"patient_id": case.pk, "nonsense": "1", "redcap_event_name": "baseline_arm_1"}])
    assert response.json() == {"error": "The following fields were not found in the project as real data fields: "
                                        "nonsense, redcap_event_name"}
    rows = [{"patient_id": case.pk, "side": "left"},
            {"patient_id": case.pk, "redcap_repeat_instrument": "follow_up", "redcap_repeat_instance": "1",
             "sex": "male"},
            {"patient_id": case.pk, "redcap_repeat_instrument": "patients", "redcap_repeat_instance": "1"},
            {"patient_id": case.pk, "ecog": "1"}]
    lines = error_lines(push(token, rows))
    assert [line[1] for line in lines] == ["side", "sex", "redcap_repeat_instrument", "patient_id"]


def test_csv_with_a_semicolon_delimiter_decimal_commas_and_day_month_year_dates(token, case):
    data = ("patient_id;redcap_repeat_instrument;redcap_repeat_instance;surgery_date;max_lesion_diameter_mm\n"
            f"{case.pk};metastasectomies;1;02/04/2015;17,5\n")
    response = send(token, format="csv", returnFormat="csv", data=data, csvDelimiter=";", dateFormat="DMY")
    assert response.status_code == 200 and response.content.decode() == "count\n1\n"
    pm = Metastasectomy.objects.get(patient=case)
    assert pm.surgery_date == datetime.date(2015, 4, 2) and str(pm.max_lesion_diameter_mm) == "17.5"


def test_data_access_groups_name_a_new_patients_centre_and_a_stored_patient_stays(token, case):
    base = {"sex": "male", "birth_year": "1970", "histology": "UPS", "lung_mets_diagnosis_date": "2018-01-05",
            "extrapulmonary_disease_at_pm": "0"}
    response = push(token, [{"patient_id": "a", "redcap_data_access_group": "muc", **base}], forceAutoNumber="true",
                     returnContent="ids")
    assert Patient.objects.get(pk=response.json()[0]).centre_id == "MUC"
    response = push(token, [{"patient_id": case.pk, "redcap_data_access_group": "ber"}])
    assert "cannot move" in error_lines(response)[0][3]


@pytest.mark.parametrize("returned,expected", [("count", {"count": 1}), ("ids", None), ("nothing", b"")])
def test_return_content(token, case, returned, expected):
    response = push(token, [{"patient_id": case.pk, "ecog": "1"}], returnContent=returned)
    assert response.status_code == 200
    if returned == "ids":
        assert response.json() == [case.pk]
    elif returned == "nothing":
        assert response.content == expected
    else:
        assert response.json() == expected


@pytest.mark.parametrize("data,fmt,message", [
    ("not json", "json", "not valid JSON"),
    ('{"patient_id": "x"}', "json", "send a list of records"),
    ('[{"patient_id": ["x"]}]', "json", "holds a list or an object"),
    ("[]", "json", "hold no records"),
    ("patient_id,sex\nMUC-A,male,extra\n", "csv", "line 2 has 3 values"),
    ("sex\nmale\n", "csv", 'record ID field "patient_id" is missing'),
    ("[" * 100_000 + "]" * 100_000, "json", "not valid JSON"),
    ("patient_id,sex\n" + "x" * 200_000 + ",male\n", "csv", "not valid CSV"),
    ('[{"patient_id": "MUC-A\u0000"}]', "json", "NUL character"),  # a NUL in the request
    (r'[{"patient_id": "MUC-A\u0000"}]', "json", "NUL character"),  # a NUL in the JSON only
    (r'[{"patient_id": "MUC-A", "sex\u0000": ""}]', "json", "NUL character"),
])
def test_malformed_data_get_a_redcap_error(token, data, fmt, message):
    response = send(token, format=fmt, returnFormat="json", data=data)
    assert response.status_code == 400 and message in response.json()["error"]


def test_xml_and_eav_imports_and_bad_parameters_are_refused(token, case):
    assert "use json or csv" in send(token, format="xml", returnFormat="json", data="<records/>").json()["error"]
    rows = [{"patient_id": case.pk, "ecog": "1"}]
    for name, value in (("type", "eav"), ("overwriteBehavior", "replace"), ("dateFormat", "YDM"),
                        ("returnContent", "everything"), ("csvDelimiter", "#")):
        response = send(token, format="csv" if name == "csvDelimiter" else "json", returnFormat="json",
                        data=json.dumps(rows), **{name: value})
        assert response.status_code == 400, name
    assert Patient.objects.get(pk=case.pk).ecog == 0
