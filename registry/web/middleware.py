"""With DEBUG on (`make run`, the demo) Django answers a missing page with its technical 404, which
lists every URL pattern of the site. The demo should look like the registry in production, so
there the registry's own 404 page is shown instead (DEBUG_TECHNICAL_404=1 keeps Django's page for
debugging a URL configuration). Added to the middleware only when DEBUG is on."""
from django.conf import settings
from django.shortcuts import render


class RegistryNotFoundPageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (response.status_code == 404 and not settings.DEBUG_TECHNICAL_404
                and response.get("Content-Type", "").startswith("text/html")):
            return render(request, "404.html", status=404)
        return response
