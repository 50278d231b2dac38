"""The REST contract every endpoint keeps: errors as problem details with a stable code, both slash
forms of every address, and unknown or malformed query parameters refused by name."""
import base64

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator
from rest_framework.views import APIView

from registry.api.query_parameters import KnownQueryParameters
from registry.api.views import NotFoundView
from registry.models import Patient
from tests import factories as f
from tests.problems import field_errors, problem_of
from tests.registry.api.test_api_helpers import api, client_for, fresh_throttles, patient_payload  # noqa: F401

pytestmark = pytest.mark.django_db


def schema_paths():
    """The API's documented paths without path parameters, with their methods."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {path: set(operations) for path, operations in schema["paths"].items()
            if path.startswith("/api/v1/") and "{" not in path}


# --- problem details ------------------------------------------------------------------------------

def test_every_kind_of_error_is_a_problem_with_its_code(api, case, pi):
    cases = [
        (client_for(None).get("/api/v1/patients/"), 401, "not_authenticated"),
        (client_for(pi).post("/api/v1/patients/", patient_payload(), format="json"), 403, "permission_denied"),
        (api.get("/api/v1/patients/MUC-NOSUCH/"), 404, "not_found"),
        (api.get("/api/v1/no-such-table/"), 404, "not_found"),
        (api.put("/api/v1/patients/"), 405, "method_not_allowed"),
        (api.post("/api/v1/patients/", "{", content_type="application/json"), 400, "parse_error"),
        (api.post("/api/v1/patients/", "a=b", content_type="application/x-www-form-urlencoded"), 415,
         "unsupported_media_type"),
        (api.patch(f"/api/v1/patients/{case.pk}/", {"ecog": 1}, format="json"), 428, "precondition_required"),
        (api.get("/api/v1/patients/?centre=%00"), 400, "parse_error"),
    ]
    for response, status, code in cases:
        body = problem_of(response)
        assert (response.status_code, body["code"]) == (status, code), body
        assert body["title"] and body["detail"] and body["instance"] == response.wsgi_request.path


def test_a_stale_change_is_a_412_problem_with_the_current_version(api, case):
    response = api.patch(f"/api/v1/patients/{case.pk}/", {"ecog": 1}, format="json", HTTP_IF_MATCH='"99"')
    body = problem_of(response)
    assert (response.status_code, body["code"], body["current_version"]) == (412, "precondition_failed", case.version)
    assert response["ETag"] == f'"{case.version}"'


def test_a_rule_broken_is_a_400_listing_each_field_with_its_code(api, case):
    response = api.post("/api/v1/metastasectomies/", {"surgery_date": "2017-02-01"}, format="json")
    body = problem_of(response)
    assert response.status_code == 400 and body["code"] == "invalid"
    assert {"field": "patient_id", "code": "required", "detail": "This field is required."} in body["errors"]
    assert "patient_id: This field is required." in body["detail"]


def test_the_code_does_not_depend_on_the_language_but_the_detail_does(api, case):
    english = api.get("/api/v1/patients/MUC-NOSUCH/", HTTP_ACCEPT_LANGUAGE="en")
    german = api.get("/api/v1/patients/MUC-NOSUCH/", HTTP_ACCEPT_LANGUAGE="de")
    assert problem_of(english)["code"] == problem_of(german)["code"] == "not_found"
    assert english.json()["detail"] != german.json()["detail"]
    assert english.json()["title"] == german.json()["title"] == "Not Found"


def test_analysis_errors_are_problems_too(api):
    response = api.get("/api/v1/analysis/report/", {"tfi_cutoff_months": "soon"})
    body = problem_of(response)
    assert response.status_code == 400 and body["code"] == "invalid"
    assert field_errors(response)["plan"]


def test_the_guide_explains_every_code_a_problem_links_to(client):
    from registry.api.problems import CODES

    page = client.get("/api/").content.decode()
    for code, _status, _meaning in CODES:
        assert f'id="problem-{code}"' in page


# --- both slash forms -----------------------------------------------------------------------------

def test_every_documented_address_answers_the_same_with_or_without_its_final_slash(api, case):
    for path in schema_paths():
        with_slash, without = api.get(path), api.get(path.rstrip("/"))
        assert with_slash.status_code not in (301, 302, 308) and without.status_code == with_slash.status_code, path


def test_a_write_without_the_final_slash_is_served_not_redirected(api, case):
    response = api.post("/api/v1/patients", patient_payload(), format="json")
    assert response.status_code == 201, response.content
    pk = response.json()["patient_id"]
    changed = api.patch(f"/api/v1/patients/{pk}", {"ecog": 2}, format="json", HTTP_IF_MATCH='"1"')
    assert changed.status_code == 200 and Patient.objects.get(pk=pk).ecog == 2
    deleted = api.delete(f"/api/v1/patients/{pk}?reason=entered%20twice", HTTP_IF_MATCH='"2"')
    assert deleted.status_code == 204 and not Patient.objects.filter(pk=pk).exists()


# --- query parameters -----------------------------------------------------------------------------

def test_every_documented_get_refuses_an_unknown_query_parameter_by_name(api, case):
    for path, methods in schema_paths().items():
        if "get" not in methods:
            continue
        response = api.get(path, {"centers": "MUC"})
        assert response.status_code == 400, path
        assert problem_of(response)["errors"][0] | {"detail": ""} == {
            "field": "centers", "code": "unknown_parameter", "detail": ""}, path


def test_a_write_with_an_unknown_query_parameter_writes_nothing(api, case):
    response = api.post("/api/v1/patients/?dry_run=1", patient_payload(), format="json")
    assert response.status_code == 400 and "dry_run" in field_errors(response)
    assert Patient.objects.count() == 1


def test_known_parameters_are_named_in_the_refusal(api):
    message = field_errors(api.get("/api/v1/follow-up/", {"updatedsince": "2020-01-01"}))["updatedsince"][0]
    for name in ("centre", "cursor", "page_size", "patient_id", "updated_since"):
        assert name in message


@pytest.mark.parametrize("value", ["abc", "0", "-1", "5001", "1.5", "", "²"])
def test_a_malformed_page_size_is_a_400_naming_it(api, case, value):
    response = api.get("/api/v1/patients/", {"page_size": value})
    assert response.status_code == 400 and "page_size" in field_errors(response)


def test_a_page_size_within_bounds_is_taken(api, case):
    f.patient("MUC")
    body = api.get("/api/v1/patients/", {"page_size": "1"}).json()
    assert len(body["results"]) == 1 and body["next"]


@pytest.mark.parametrize("cursor", ["garbage", base64.b64encode(b"o=x").decode(),
                                    base64.b64encode(b"p=not-a-number").decode()])
def test_a_damaged_cursor_is_a_400_naming_it(api, case, cursor):
    response = api.get("/api/v1/metastasectomies/", {"cursor": cursor})
    assert response.status_code == 400 and "cursor" in field_errors(response)


def test_a_format_the_endpoint_cannot_give_is_a_400_naming_it(api):
    assert "format" in field_errors(api.get("/api/v1/analysis/frame/", {"format": "xml"}))
    assert "format" in field_errors(api.get("/api/v1/patients/", {"format": "csv"}))


def test_a_deletion_takes_its_reason_and_nothing_else(api, case):
    response = api.delete(f"/api/v1/patients/{case.pk}/?reason=duplicate&force=1", HTTP_IF_MATCH=f'"{case.version}"')
    assert response.status_code == 400 and list(field_errors(response)) == ["force"]
    assert Patient.objects.filter(pk=case.pk).exists()


def api_views(patterns=None):
    """Every DRF view class under /api/v1/ (the REDCap endpoint keeps REDCap's protocol)."""
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(pattern, URLResolver):
            yield from api_views(pattern.url_patterns)
        elif isinstance(pattern, URLPattern):
            view = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
            if isinstance(view, type) and issubclass(view, APIView) and view.__module__.split(".")[0] in (
                    "registry", "analysis") and "redcap" not in view.__module__:
                yield view


def test_every_api_view_checks_its_query_parameters():
    views = set(api_views()) - {NotFoundView}
    assert len(views) >= 10
    assert [view.__name__ for view in views if not issubclass(view, KnownQueryParameters)] == []


def test_updated_since_with_any_offset_python_reads_is_answered(api, case):
    # PostgreSQL refuses offsets over 15:59 (it was a 500, found by schemathesis): compared in UTC.
    response = api.get("/api/v1/metastasectomies/", {"updated_since": "2001-02-17T14:26:32+20:37"})
    assert response.status_code == 200 and len(response.json()["results"]) == 1


def test_an_address_no_route_knows_under_api_is_a_problem_and_elsewhere_the_page(client):
    assert problem_of(client.get("/api/nothing/here"))["code"] == "not_found"
    assert client.get("/nothing/here/")["Content-Type"].startswith("text/html")


def test_a_server_error_under_api_is_a_problem_and_elsewhere_the_page(rf):
    from registry.api.problems import server_error

    response = server_error(rf.get("/api/v1/patients/"))
    assert response.status_code == 500 and response["Content-Type"] == "application/problem+json"
    assert server_error(rf.get("/patients/"))["Content-Type"].startswith("text/html")


def test_a_number_where_the_schema_says_text_is_refused(api, case):
    response = api.post("/api/v1/follow-up/", {"patient_id": case.pk, "event_date": "2018-01-01", "event": "contact",
                                               "reason": 0}, format="json")
    assert field_errors(response) == {"reason": ["Not a valid string."]}


def test_an_empty_updated_since_is_a_400_not_every_record(api, case):
    assert "updated_since" in field_errors(api.get("/api/v1/follow-up/", {"updated_since": ""}))
    assert "updated_since" in field_errors(api.get("/api/v1/deleted-records/", {"updated_since": ""}))


def test_a_number_where_the_schema_says_true_or_false_is_refused(api):
    response = api.post("/api/v1/patients/", patient_payload(extrapulmonary_disease_at_pm=0), format="json")
    assert list(field_errors(response)) == ["extrapulmonary_disease_at_pm"] and not Patient.objects.exists()


def test_a_method_the_endpoint_does_not_take_is_a_405_whatever_its_parameters(api):
    response = api.generic("TRACE", "/api/v1/deleted-records/?bogus=1")
    assert response.status_code == 405 and problem_of(response)["code"] == "method_not_allowed"
