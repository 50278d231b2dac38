"""OpenAPI additions drf-spectacular cannot infer: the error responses every endpoint can give."""
from registry.api.serializers import TABLES

ERROR_SCHEMA = {
    "type": "object",
    "description": "`detail` says what went wrong; a validation error (400) maps each column it concerns "
                   "(or `non_field_errors`) to a list of messages.",
    "properties": {"detail": {"type": "string"},
                   "code": {"type": "string", "description": "A stable error code, e.g. `record_locked` (409)."}},
    "additionalProperties": True,
}

DESCRIPTIONS = {
    "400": "The request breaks a rule: each column concerned with its messages. Nothing was written.",
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
    response = {"description": DESCRIPTIONS[code],
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if code == "429":
        response["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                               "description": "Seconds until the next request is accepted."}}
    return response


def document_error_responses(result, generator, request, public):
    """Postprocessing hook: add the error responses of the registry API to each of its operations."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            codes = ["401", "403", "429"]
            if method in ("post", "put", "patch", "delete") or operation.get("parameters") and method == "get" \
                    and any(p["in"] == "query" for p in operation["parameters"]):
                codes.append("400")
            # 404: no such record, a tampered page cursor, or an unknown ?format= (DRF's answer)
            if "{" in path or any(p["name"] in ("cursor", "format") for p in operation.get("parameters", [])):
                codes.append("404")
            if method in ("put", "patch", "delete"):
                codes += ["412", "428"]
            if method in ("post", "put", "patch", "delete") and path.removeprefix("/api/v1/").split("/")[0] in RECORD_URLS:
                codes.append("409")
            for code in sorted(codes):
                operation["responses"].setdefault(code, _error(code))
    return result
