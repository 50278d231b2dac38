"""The registry's machine interfaces: the REST API (/api/v1/, OpenAPI schema at /api/schema/) and a
REDCap-compatible export endpoint (/redcap/api/), with the per-user tokens that open them."""
