"""A Content-Security-Policy on every response: scripts, styles and images only from the
registry itself, no inline script, no framing. The pages are built for it (no CDN, no inline
script or style); Swagger UI sets style attributes from its script, so its page may use them."""

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
