"""Reading the API's problem details (registry.api.problems) in tests."""


def problem_of(response):
    """The problem body of an error response, checked to be RFC 9457 problem details."""
    assert response["Content-Type"] == "application/problem+json", response["Content-Type"]
    body = response.json()
    assert body["status"] == response.status_code and body["code"] and body["title"] and "detail" in body
    assert body["type"].endswith(f"/api/#problem-{body['code']}")
    return body


def field_errors(response):
    """{field: [message, ...]} of a 400 (nested fields dotted, e.g. missing_codes.sex)."""
    body = problem_of(response)
    assert body["code"] == "invalid", body
    errors = {}
    for error in body["errors"]:
        errors.setdefault(error["field"], []).append(error["detail"])
    return errors
