"""Both slash forms of an API address work: /api/v1/patients and /api/v1/patients/ are the same
endpoint, for every method; so are /redcap/api and /redcap/api/.

Django's APPEND_SLASH would answer the first with a 301, and clients follow a 301 of a POST with a
GET (the body lost), or not at all; so the path is completed here instead, before any view runs."""
from django.urls import is_valid_path

PREFIXES = ("/api/", "/redcap/api")


class OptionalTrailingSlashMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info
        if path.startswith(PREFIXES) and not path.endswith("/"):
            urlconf = getattr(request, "urlconf", None)
            if not is_valid_path(path, urlconf) and is_valid_path(f"{path}/", urlconf):
                request.path_info, request.path = f"{path}/", f"{request.path}/"
        return self.get_response(request)
