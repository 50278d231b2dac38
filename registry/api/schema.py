"""OpenAPI additions drf-spectacular cannot infer: the error responses every endpoint can give, each
as problem details (registry.api.problems)."""
from registry.api.problems import MEDIA_TYPE
from registry.api.serializers import TABLES

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details. `code` is stable whatever the language; `detail` is for people. "
                   "A 400 with code `invalid` lists each broken rule in `errors`.",
    "properties": {
        "type": {"type": "string", "description": "Where the code is explained (the API guide)."},
        "title": {"type": "string", "description": "The HTTP status in words."},
        "status": {"type": "integer"},
        "code": {"type": "string", "description": "A stable error code, e.g. `invalid`, `not_found`, "
                                                  "`record_locked`, `precondition_failed`."},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The path of the request."},
        "errors": {"type": "array", "description": "What is wrong, one object per message (400 only).",
                   "items": {"type": "object", "required": ["field", "code", "detail"],
                             "properties": {"field": {"type": "string"}, "code": {"type": "string"},
                                            "detail": {"type": "string"}}}},
        "current_version": {"type": "integer", "description": "The stored record's version (412, 428)."},
        "wait": {"type": "integer", "description": "Seconds to wait (429)."},
    },
    "required": ["type", "title", "status", "code", "detail"],
    "additionalProperties": True,
}


def problem_content():
    return {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}

DESCRIPTIONS = {
    "400": "The request breaks a rule, or names a query parameter this endpoint does not know or gives one a "
           "malformed value: `errors` names each. Nothing was written.",
    "401": "No valid credentials: send `Authorization: Token <key>` or sign in.",
    "403": "Your role may not do this (e.g. a PI changing a record).",
    "404": "No such record among those you may read (or an unknown page cursor or format).",
    "409": "The record, or its patient, is locked: `code` is `record_locked` and `detail` names the lock. "
           "Only a coordinator can unlock it. Nothing was written.",
    "412": "The record has a newer version than the one named in If-Match. Nothing was written.",
    "428": "If-Match is missing: send the record's ETag. Nothing was written.",
    "429": "Too many requests: wait the seconds given in Retry-After.",
}


# The record tables: every write to them meets the locks (registry.services.status).
RECORD_URLS = {table.url for table in TABLES}


def _error(code):
    response = {"description": DESCRIPTIONS[code], "content": problem_content()}
    if code == "429":
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                               "description": "Seconds until the next request is accepted."}}
    return response


def document_error_responses(result, generator, request, public):
    """Postprocessing hook: add the error responses of the registry API to each of its operations."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            codes = ["400", "401", "403", "429"]  # 400: any request may name an unknown query parameter
            if "{" in path:
                codes.append("404")
            if method in ("put", "patch", "delete"):
                codes += ["412", "428"]
            if method in ("post", "put", "patch", "delete") and path.removeprefix("/api/v1/").split("/")[0] in RECORD_URLS:
                codes.append("409")
            for code in sorted(codes):
                operation["responses"].setdefault(code, _error(code))
            for code, response in operation["responses"].items():
                if code.startswith("4"):  # an error a view declared itself is a problem too
                    response["content"] = problem_content()
    return result
