"""Security middleware of the site's own: invalid input refused early, a Content-Security-Policy,
no caching of responses outside the static files, and every refused request recorded."""
import time

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponseBadRequest

from registry.api.problems import problem_json_response
from registry.security import audit

# A Content-Security-Policy on every response: scripts, styles and images only from the
# registry itself, no inline script, no framing. The pages are built for it (no CDN, no inline
# script or style); Swagger UI sets style attributes from its script, so its page may use them.

POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
          "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
SWAGGER_POLICY = POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
SWAGGER_PATH = "/api/docs/"


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = SWAGGER_POLICY if request.path.startswith(SWAGGER_PATH) else POLICY
        response.headers.setdefault("Content-Security-Policy", policy)
        return response


class RefuseNulMiddleware:
    """A NUL character in the path or the query string is a 400 before any view runs: it can be no
    pseudonym, code or date, and PostgreSQL refuses it in a query (it was a 500)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or "%00" in query or "\x00" in query:
            message = "A NUL character is not allowed in the address."
            if request.path.startswith("/api/"):  # the API answers errors as problem details, as documented
                return problem_json_response(400, "parse_error", message, request)
            return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class NoStoreMiddleware:
    """Cache-Control: no-store on every response but the static files (which whitenoise serves
    before this runs): pages, downloads and API answers hold patient data, and no browser,
    proxy or shared computer should keep them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not response.has_header("Cache-Control"):
            response["Cache-Control"] = "no-store"
        return response


class SessionLimitMiddleware:
    """Ends a session SESSION_MAX_HOURS after sign-in, however active it was (the idle limit is
    SESSION_COOKIE_AGE): a session left open on a ward computer does not last for days."""

    KEY = "registry_signed_in_at"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            started = request.session.setdefault(self.KEY, time.time())
            if time.time() - started > settings.SESSION_MAX_HOURS * 3600:
                logout(request)
                return redirect_to_login(request.get_full_path())
        return self.get_response(request)


class RefusedRequestMiddleware:
    """Records every refused request, 401, 403 and 429 (registry.security.audit), unless the view
    recorded it already (an invalid token) or django-axes did (a sign-in while locked out is in
    its AccessFailureLog). A 404 is recorded by the lookups that can tell another centre's
    patient from a missing one (audit.log_if_hidden), not here."""

    REFUSED = (401, 403, 429)

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (response.status_code in self.REFUSED and not audit.already_recorded(request)
                and not getattr(request, "axes_locked_out", False)):
            audit.log_refused(request, response.status_code)
        return response
