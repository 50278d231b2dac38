"""Every page carries a Content-Security-Policy that allows nothing from outside the registry
and no inline script; the pages need nothing else."""
import pytest

from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["/accounts/login/", "/", "/patients/", "/analysis/", "/api/", "/api/docs/"])
def test_pages_send_a_strict_content_security_policy(client, url):
    client.force_login(f.user(memberships=[("MUC", "coordinator")]))
    response = client.get(url, follow=True)
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "script-src 'self';" in policy  # no inline script anywhere
    assert response.headers["X-Frame-Options"] == "DENY"


def test_swagger_ui_page_loads_its_script_from_a_file(client):
    client.force_login(f.user(memberships=[("MUC", "coordinator")]))
    page = client.get("/api/docs/").content.decode()
    assert "<script>" not in page and 'src="/api/docs/?script=' in page
    assert client.get("/api/docs/?script=").status_code == 200
