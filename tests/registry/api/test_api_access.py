"""Who may do what through the API: every endpoint and method, for every role.

The endpoints and their methods are read from the URL patterns of /api/ and /redcap/api/
(viewset actions, APIView handlers), so an endpoint added without a row in EXPECTED fails
`test_every_endpoint_and_method_is_in_the_matrix`.

Roles: a nurse of the case's centre (MUC), a nurse of another centre (BER: the case does not
exist for her, 404), a PI of MUC (reads, every write 403), a monitor of MUC (reads, every write
403; moves a record's status only as a monitor may: verifying, not completing, see
tests/registry/api/test_api_status.py), a coordinator (everything), an
anonymous client (401; the pages for people send her to sign in) and a deactivated coordinator,
whose tokens and session were made before the deactivation: she is treated as anonymous.

tests/test_access_matrix.py covers every other URL pattern of the site.
"""
import datetime
import json
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver

from analysis.api import urls as analysis_api_urls
from registry import services
from registry.api import redcap_urls
from registry.api import urls as api_urls
from registry.api.models import ApiToken
from registry.api.serializers import TABLES
from registry.models import (
    DeletedRecord,
    FollowUp,
    Metastasectomy,
    Patient,
    PrimaryTumour,
    Query,
    QueryMessage,
    SystemicTherapy,
)
from registry.services import queries
from registry.transfer import jobs
from tests import factories as f
from tests.registry.api.test_api_helpers import (  # noqa: F401,E501
    client_for,
    fresh_throttles,
    patient_payload,
    record_payloads,
    redcap_token_for,
)

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "nurse", "other_nurse", "pi", "monitor", "coordinator", "deactivated"]
MODELS = (Patient, PrimaryTumour, Metastasectomy, SystemicTherapy, FollowUp, Query, QueryMessage)


def walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from walk(pattern.url_patterns, prefix)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield pattern.name, pattern.callback


def endpoint_methods():
    """{(url name, HTTP method)} of every endpoint, from the URL patterns themselves."""
    found = set()
    for name, callback in [*walk(api_urls.urlpatterns), *walk(analysis_api_urls.urlpatterns),
                           *walk(redcap_urls.urlpatterns)]:
        if getattr(callback, "actions", None):  # a viewset route (DRF adds HEAD to GET routes once used)
            methods = [method.upper() for method in callback.actions if method != "head"]
        elif hasattr(callback, "view_class"):  # an APIView
            methods = [m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(callback.view_class, m)]
        else:  # a page for people: its methods are stated here
            methods = PAGE_METHODS[name]
        found.update((name, method) for method in methods)
    return found


PAGE_METHODS = {"guide": ["GET"], "tokens": ["GET", "POST"], "token_revoke": ["POST"]}

EVERYONE = dict.fromkeys(ROLES, 200)
SIGNED_IN = {**EVERYONE, "anonymous": 302}
READ_LIST = {**EVERYONE, "anonymous": 401}
READ_ONE = {**READ_LIST, "other_nurse": 404}
CREATE = {"anonymous": 401, "nurse": 201, "other_nurse": 400, "pi": 403, "monitor": 403, "coordinator": 201}
CREATE_PATIENT = {**CREATE, "other_nurse": 403}
CHANGE = {"anonymous": 401, "nurse": 200, "other_nurse": 404, "pi": 403, "monitor": 403, "coordinator": 200}
DELETE = {**CHANGE, "nurse": 204, "coordinator": 204}
# the dataset export: whoever may export on the export page (a coordinator; a PI only with EXPORT_ALLOW_PI,
# off here); a job is its submitter's alone (the coordinator's here): anyone else's does not exist for her
EXPORT = {"anonymous": 401, "nurse": 403, "other_nurse": 403, "pi": 403, "monitor": 403, "coordinator": 200}
EXPORT_JOB = {**EXPORT, "nurse": 404, "other_nurse": 404, "pi": 404, "monitor": 404}

EXPECTED = {
    ("guide", "GET"): EVERYONE,
    ("schema", "GET"): EVERYONE,
    ("swagger-ui", "GET"): EVERYONE,
    ("tokens", "GET"): SIGNED_IN,
    # a token is issued only in a session signed in with two factors (none of these is)
    ("tokens", "POST"): {**SIGNED_IN, "nurse": 403, "other_nurse": 403, "pi": 403, "monitor": 403, "coordinator": 403},
    ("token_revoke", "POST"): {**SIGNED_IN, "nurse": 302, "other_nurse": 404, "pi": 404, "monitor": 404,
                               "coordinator": 404},
    ("centres-list", "GET"): READ_LIST,
    ("centres-detail", "GET"): READ_ONE,
    ("analysis-report", "GET"): READ_LIST,
    ("analysis-frame", "GET"): READ_LIST,
    # the freezes' metadata for everyone signed in; freezing for coordinators; the diff names patients, so
    # only those of the centres one may read (the other centre's nurse gets an answer without the case)
    ("freezes-list", "GET"): READ_LIST,
    ("freezes-list", "POST"): {**CREATE, "nurse": 403, "other_nurse": 403},
    ("freezes-diff", "GET"): READ_LIST,
    ("redcap_api", "POST"): {**EVERYONE, "anonymous": 403},
    # deleted records: each reads her centres' tombstones; only a coordinator restores one
    ("deleted-records-list", "GET"): READ_LIST,
    ("deleted-records-restore", "POST"): {"anonymous": 401, "nurse": 403, "other_nurse": 404, "pi": 403,
                                          "monitor": 403, "coordinator": 200},
    **{("not-found", method): dict.fromkeys(ROLES, 404) for method in ("GET", "POST", "PUT", "PATCH", "DELETE")},
    # queries: a monitor or a coordinator raises one (another centre's record does not exist for the
    # other nurse); the nurse answers; a monitor or a coordinator closes and reopens
    ("queries-list", "GET"): READ_LIST,
    ("queries-list", "POST"): {**CREATE, "nurse": 403, "monitor": 201},
    ("queries-detail", "GET"): READ_ONE,
    ("queries-answer", "POST"): {**CHANGE, "monitor": 403},
    ("queries-close", "POST"): {**CHANGE, "nurse": 403, "monitor": 200},
    ("queries-reopen", "POST"): {**CHANGE, "nurse": 403, "monitor": 200},
    ("exports-list", "GET"): EXPORT,
    ("exports-list", "POST"): {**EXPORT, "coordinator": 202},
    ("exports-detail", "GET"): EXPORT_JOB,
    ("exports-download", "GET"): EXPORT_JOB,
}
for _table in TABLES:
    EXPECTED.update({
        (f"{_table.url}-list", "GET"): READ_LIST,
        (f"{_table.url}-list", "POST"): CREATE_PATIENT if _table.is_patient else CREATE,
        (f"{_table.url}-detail", "GET"): READ_ONE,
        (f"{_table.url}-detail", "PUT"): CHANGE,
        (f"{_table.url}-detail", "PATCH"): CHANGE,
        (f"{_table.url}-detail", "DELETE"): DELETE,
        # marking the record complete: the nurse's move (and the coordinator's), not a monitor's
        (f"{_table.url}-status", "POST"): CHANGE,
    })
# A PI of the centre signs, with her password: the case is still in progress, so it is refused (400).
EXPECTED[("patients-signatures", "GET")] = READ_ONE
EXPECTED[("patients-signatures", "POST")] = {"anonymous": 401, "nurse": 403, "other_nurse": 404, "pi": 400,
                                             "monitor": 403, "coordinator": 403}
for _table in TABLES:
    # A monitor of the centre and a coordinator verify fields: the records are in progress (400).
    EXPECTED[(f"{_table.url}-verification", "GET")] = READ_ONE
    EXPECTED[(f"{_table.url}-verification", "POST")] = {"anonymous": 401, "nurse": 403, "other_nurse": 404,
                                                         "pi": 403, "monitor": 400, "coordinator": 400}
for _key, _cell in EXPECTED.items():
    # A deactivated user is anonymous; but a token she sends is refused even where none is needed.
    _token_refused = _key[0] == "not-found" or _key == ("schema", "GET")
    EXPECTED[_key] = {**_cell, "deactivated": 401 if _token_refused else _cell["anonymous"]}

TABLE_BY_URL = {table.url: table for table in TABLES}


def test_every_endpoint_and_method_is_in_the_matrix():
    assert endpoint_methods() == set(EXPECTED)


@pytest.fixture
def world(case, nurse, other_nurse, pi, monitor, coordinator):
    """The case (MUC) with a second, later PM (added after the freeze "before": the change the freeze's diff
    names), a deleted follow-up event, and a user for every role."""
    services.freeze_create(user=coordinator, name="before")
    services.record_save(user=nurse, record=f.metastasectomy(case, surgery_date=datetime.date(2017, 1, 10)))
    extra = services.record_save(user=nurse, record=f.follow_up(case, event_date=datetime.date(2017, 2, 1)))
    services.record_delete(user=nurse, record=extra, reason="entered twice")
    deactivated = f.user("deactivated", memberships=[("MUC", "coordinator")], is_active=False)
    queries.query_raise(user=monitor, record=case.systemic_therapies.get(), field="cycles", text="How many cycles?")
    return {"case": case, "nurse": nurse, "other_nurse": other_nurse, "pi": pi, "monitor": monitor,
            "coordinator": coordinator, "anonymous": None, "deactivated": deactivated}


def target(table, case):
    """The record of the case that detail requests address (the later PM: deleting it breaks no rule)."""
    if table.is_patient:
        return case
    return table.model.objects.filter(patient=case).order_by("-pk").first()


def writable_values(table, record):
    row = table.row(f.user("reader", is_superuser=True), record.pk)
    read_only = {"id", "version", "created_at", "updated_at"} | ({"patient_id"} if table.is_patient else set())
    return {key: (value.isoformat() if hasattr(value, "isoformat") else float(value) if isinstance(value, Decimal)
                  else value) for key, value in row.items() if key not in read_only}


def request_for(name, method, world):
    """(url, data) of one request in the matrix."""
    case = world["case"]
    resource, _sep, kind = name.rpartition("-")
    table = TABLE_BY_URL.get(resource)
    if table and kind == "list":
        if method == "GET":
            return f"/api/v1/{table.url}/", None
        if table.is_patient:
            return "/api/v1/patients/", patient_payload()
        payload = record_payloads(case.pk)[table.url]
        if table.model is PrimaryTumour:
            payload["patient_id"] = f.patient("MUC").pk  # a patient without a primary yet
        return f"/api/v1/{table.url}/", payload
    if table and kind == "detail":
        record = target(table, case)
        data = {"PUT": lambda: writable_values(table, record), "PATCH": dict}.get(method, lambda: None)()
        query = "?reason=entered%20in%20error" if method == "DELETE" else ""
        return f"/api/v1/{table.url}/{record.pk}/{query}", data, {"HTTP_IF_MATCH": f'"{record.version}"'}
    if table and kind == "status":
        return f"/api/v1/{table.url}/{target(table, case).pk}/status/", {"status": "complete"}
    if table and kind == "signatures":
        return f"/api/v1/{table.url}/{case.pk}/signatures/", {"password": "correct-horse-battery"} if method == "POST" \
            else None
    if table and kind == "verification":
        record = target(table, case)
        field = {"patients": "sex", "primary-tumours": "site", "metastasectomies": "side",
                 "systemic-therapies": "regimen", "follow-up": "event"}[table.url]
        return (f"/api/v1/{table.url}/{record.pk}/verification/", {"fields": [field]} if method == "POST" else None,
                {"HTTP_IF_MATCH": f'"{record.version}"'})
    if resource == "queries":
        query = Query.objects.get(origin="manual")
        if kind == "reopen":  # an answered query (the nurse's answer is rolled back with the request)
            queries.query_answer(user=world["nurse"], query=query, text="Six cycles.")
        if kind == "list":
            therapy = case.systemic_therapies.get()
            return "/api/v1/queries/", {"table": "systemic_therapies", "record_id": str(therapy.pk), "field": "cycles",
                                        "text": "How many cycles?"} if method == "POST" else None
        return f"/api/v1/queries/{query.pk}/" + ("" if kind == "detail" else f"{kind}/"), \
            {"text": "Six cycles."} if method == "POST" else None
    if resource == "exports":
        if kind == "list":
            return "/api/v1/exports/", {"format": "csv"} if method == "POST" else None
        return f"/api/v1/exports/{world['export'].pk}/" + ("" if kind == "detail" else "download/"), None
    return {
        "centres-list": ("/api/v1/centres/", None),
        "centres-detail": ("/api/v1/centres/MUC/", None),
        "analysis-report": ("/api/v1/analysis/report/", None),
        "analysis-frame": ("/api/v1/analysis/frame/", None),
        "freezes-list": ("/api/v1/freezes/", {"name": "api-matrix", "rule": "all"} if method == "POST" else None),
        "freezes-diff": ("/api/v1/freezes/before/diff/?against=live", None),
        "guide": ("/api/", None),
        "schema": ("/api/schema/", None),
        "swagger-ui": ("/api/docs/", None),
        "tokens": ("/api/tokens/", {"name": "script", "kind": "api"} if method == "POST" else None),
        "token_revoke": (f"/api/tokens/{world['token'].pk}/revoke/", None) if "token" in world else None,
        "redcap_api": ("/redcap/api/", None),
        "not-found": ("/api/v1/no-such-thing/", None),
        "deleted-records-list": ("/api/v1/deleted-records/", None),
        "deleted-records-restore": (f"/api/v1/deleted-records/{DeletedRecord.objects.get().pk}/restore/",
                                    {"reason": "deleted by mistake"}),
    }[name]


def table_counts():
    return [model.objects.count() for model in MODELS]


def request_as(role, name, method, world):
    """One request of the matrix; returns (response, counts before)."""
    user = world[role]
    if name == "token_revoke":  # a token of the nurse: only she may revoke it
        world["token"] = ApiToken.issue(user=world["nurse"], kind="api", name="nurse's script")[0]
    if name in ("exports-detail", "exports-download"):  # the coordinator's export (run at once: no worker)
        world["export"] = jobs.submit_export(world["coordinator"])
    url, data, *headers = request_for(name, method, world)
    headers = headers[0] if headers else {}
    before = table_counts()
    if name in PAGE_METHODS or name == "swagger-ui":  # pages for people: a browser session
        client = Client()
        if user is not None:
            client.force_login(user)
        return client.generic(method, url, data=_form(data), content_type="application/x-www-form-urlencoded"), before
    if name == "redcap_api":
        token = redcap_token_for(user) if user else "0" * 32
        return Client().post(url, {"token": token, "content": "record", "format": "json"}), before
    return client_for(user).generic(method, url, data=_json(data), content_type="application/json", **headers), before


def shown_beyond_the_request(response, pid):
    """The response without what only echoes the request: a problem's `instance` (the path asked for)
    and the message that the patient named in the request does not exist (as for any unknown one)."""
    if not response["Content-Type"].startswith("application/problem+json"):
        return response.content.decode(errors="replace")
    body = response.json()
    body.pop("instance", None)
    absent = f"There is no patient {pid}."
    body["errors"] = [error for error in body.get("errors", []) if error["detail"] != absent]
    body["detail"] = body["detail"].replace(f"patient_id: {absent}", "")
    return json.dumps(body)


def problems_of(role, name, method, world, response, before):
    expected = EXPECTED[(name, method)][role]
    problems = []
    if response.status_code != expected:
        problems.append(f"status {response.status_code}, expected {expected}: {response.content[:200]!r}")
    if (expected >= 400 or method == "GET") and table_counts() != before:
        problems.append("a refused request or a read changed the data")
    pid = world["case"].pk.encode()
    if role == "other_nurse" and world["case"].pk in shown_beyond_the_request(response, world["case"].pk):
        problems.append("the other centre's case shows")
    if role in ("nurse", "pi", "monitor") and expected == 200 and not name.startswith(("centres", "freezes")) \
            and (name.endswith("-list") or name == "redcap_api") and pid not in response.content:
        problems.append("the own centre's case is missing")
    if name == "freezes-diff" and role in ("nurse", "pi", "monitor", "coordinator") and pid not in response.content:
        problems.append("the own centre's change is missing from the diff")
    if name == "token_revoke" and expected == 404 and not ApiToken.objects.active().filter(pk=world["token"].pk):
        problems.append("someone else revoked the nurse's token")
    return [f"{role} {method} {name}: {problem}" for problem in problems]


@pytest.mark.parametrize("name,method", sorted(EXPECTED))
def test_matrix(world, name, method):
    """Each role in turn, each on the same data (a savepoint is rolled back after each)."""
    problems = []
    for role in ROLES:
        savepoint = transaction.savepoint()
        cache.clear()
        response, before = request_as(role, name, method, world)
        problems += problems_of(role, name, method, world, response, before)
        transaction.savepoint_rollback(savepoint)
    assert not problems, "\n".join(problems)


def _json(data):
    import json
    return None if data is None else json.dumps(data)


def _form(data):
    from urllib.parse import urlencode
    return "" if data is None else urlencode(data)


def test_anonymous_api_requests_are_told_how_to_authenticate(db):
    response = client_for(None).get("/api/v1/patients/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_pages_send_anonymous_visitors_to_sign_in(db):
    response = Client().get("/api/tokens/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
