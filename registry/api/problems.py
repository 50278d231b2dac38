"""Errors of the REST and analysis API as RFC 9457 (formerly 7807) problem details.

Every error answer is `application/problem+json`:

    {"type": "https://registry.example/api/#problem-record_locked", "title": "Conflict", "status": 409,
     "code": "record_locked", "detail": "Patient MUC-0001 is locked ...", "instance": "/api/v1/patients/MUC-0001/"}

- `code` is stable and independent of the language (a client tests it); `detail` is for people, in
  the request's language. `title` is the HTTP reason phrase, always English, as the RFC asks.
- A request that breaks rules (400, code `invalid`) lists them in `errors`, one object per message:
  `{"field": "size_mm", "code": "max_value", "detail": "..."}` (nested fields dotted:
  `missing_codes.sex`; rules on the whole record `non_field_errors`); `detail` joins them.
- Some problems carry more members: `current_version` (412, 428), `wait` (429).

The REDCap endpoint keeps REDCap's own error format (registry.api.redcap_protocol).
"""
from http import HTTPStatus

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import defaults
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

MEDIA_TYPE = "application/problem+json"

# The codes of DRF's own exceptions are already stable words (not_found, permission_denied,
# not_authenticated, authentication_failed, method_not_allowed, not_acceptable,
# unsupported_media_type, throttled, parse_error); a ValidationError's is `invalid`.
VALIDATION = "invalid"

# Every code a problem may carry, with its status: the API guide explains each (its `type` links there).
CODES = [
    (VALIDATION, 400, gettext_lazy("The request breaks a rule, or a query parameter is unknown or malformed: "
                                   "`errors` lists each (field, code such as required, max_value or "
                                   "unknown_parameter, and message). Nothing was written.")),
    ("parse_error", 400, gettext_lazy("The body is not valid JSON.")),
    ("not_authenticated", 401, gettext_lazy("No credentials: send Authorization: Token <key>.")),
    ("authentication_failed", 401, gettext_lazy("The token is wrong, revoked or expired.")),
    ("permission_denied", 403, gettext_lazy("Your role may not do this.")),
    ("not_found", 404, gettext_lazy("No such record or page among those you may read.")),
    ("method_not_allowed", 405, gettext_lazy("The endpoint does not take this method (see Allow).")),
    ("not_acceptable", 406, gettext_lazy("The endpoint cannot answer in the format asked for in Accept.")),
    ("record_locked", 409, gettext_lazy("The record or its patient is locked; only a coordinator can unlock it.")),
    ("precondition_failed", 412, gettext_lazy("The record changed since the version named in If-Match: "
                                              "`current_version` is the stored one.")),
    ("unsupported_media_type", 415, gettext_lazy("Send the body as application/json.")),
    ("precondition_required", 428, gettext_lazy("Send the record's ETag in If-Match.")),
    ("throttled", 429, gettext_lazy("Too many requests: wait the seconds in Retry-After (`wait`).")),
    ("server_error", 500, gettext_lazy("The registry failed; the error is in its log. Try again later.")),
]


def problem(status, code, detail, request=None, **members):
    """The problem-details object of one error."""
    body = {"type": f"{type_base(request)}#problem-{code}", "title": HTTPStatus(status).phrase,
            "status": status, "code": code, "detail": str(detail)}
    if request is not None:
        body["instance"] = request.path
    body.update(members)
    return body


def type_base(request):
    """The API guide, where every code is explained (absolute when the request is known)."""
    return request.build_absolute_uri("/api/") if request is not None else "/api/"


def problem_json_response(status, code, detail, request=None, **members):
    """A plain Django response (for middleware, which runs outside DRF)."""
    return JsonResponse(problem(status, code, detail, request, **members), status=status, content_type=MEDIA_TYPE)


def field_errors(detail, field=""):
    """A ValidationError's detail (nested dicts and lists of messages) as flat error objects; a
    nested field is dotted (missing_codes.sex, or 0.sex for an item of a list)."""
    def inner(name):
        return f"{field}.{name}" if field else str(name)

    if isinstance(detail, dict):
        return [error for key, value in detail.items() for error in field_errors(value, inner(key))]
    if isinstance(detail, list):  # messages of this field, or the items of a list field
        return [error for index, item in enumerate(detail)
                for error in field_errors(item, field if isinstance(item, str) else inner(index))]
    return [{"field": field or "non_field_errors", "code": getattr(detail, "code", None) or VALIDATION,
             "detail": str(detail)}]


def _as_api_exception(exc):
    # As DRF's handler does: Django's 404 and 403 become the API's.
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, PermissionDenied):
        return exceptions.PermissionDenied(*exc.args)
    return exc


def exception_handler(exc, context):
    """REST_FRAMEWORK["EXCEPTION_HANDLER"]: DRF's handler (status, headers), the body as a problem."""
    exc = _as_api_exception(exc)
    response = drf_exception_handler(exc, context)
    if response is None:  # not an API error: a 500, left to Django
        return None
    request = context.get("request")
    members = dict(getattr(exc, "problem_members", {}))
    if isinstance(exc, exceptions.ValidationError):
        errors = field_errors(exc.detail)
        code = VALIDATION
        detail = "; ".join(error["detail"] if error["field"] == "non_field_errors"
                           else f"{error['field']}: {error['detail']}" for error in errors)
        members["errors"] = errors
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        detail = exc.detail
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            members["wait"] = exc.wait
    response.data = problem(response.status_code, code, detail or _("The request failed."), request, **members)
    response.content_type = MEDIA_TYPE
    for name, value in getattr(exc, "problem_headers", {}).items():
        response[name] = value
    return response


class Problem(exceptions.APIException):
    """An API error with its own status, a stable code and extra members (e.g. current_version)."""

    def __init__(self, status, code, detail, headers=None, **members):
        super().__init__(detail, code)
        self.status_code, self.problem_members, self.problem_headers = status, members, headers or {}


def _is_api(request):
    return request.path.startswith("/api/")


def page_not_found(request, exception):
    """handler404: under /api/ a problem (an address no route knows), elsewhere the site's page."""
    if _is_api(request):
        return problem_json_response(404, "not_found", _("Not found."), request)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """handler500: under /api/ a problem (the error itself is in the server's log), elsewhere the page."""
    if _is_api(request):
        return problem_json_response(500, "server_error", _("The registry failed to answer; the error is "
                                                            "logged. Try again later."), request)
    return defaults.server_error(request)
