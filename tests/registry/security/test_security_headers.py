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


@pytest.mark.parametrize("url", ["/patients/%00/", "/patients/?q=%00", "/api/v1/patients/?patient_id=%00",
                                 "/api/v1/patients/MUC-%00/", "/analysis/?centre=%00"])
def test_a_nul_in_the_address_is_a_400_not_a_500(client, coordinator, url):
    client.force_login(coordinator)
    assert client.get(url).status_code == 400


def test_patient_data_responses_are_not_stored_by_browsers_or_proxies(client, nurse, case):
    from tests.registry.api.test_api_helpers import client_for

    client.force_login(nurse)
    for response in (client.get(f"/patients/{case.pk}/"), client.get("/patients/"),
                     client_for(nurse).get("/api/v1/patients/")):
        assert response.status_code == 200 and response["Cache-Control"] == "no-store"


def test_the_admin_never_shows_a_totp_secret(client, db):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests import factories as f

    admin = f.user("root", is_superuser=True)
    device = TOTPDevice.objects.create(user=admin, name="phone", confirmed=True)
    client.force_login(admin)
    session = client.session
    session["otp_device_id"] = device.persistent_id
    session.save()
    page = client.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/").content.decode()
    assert device.key not in page


def test_the_api_answers_a_nul_in_the_address_as_json(client, coordinator):
    from tests.registry.api.test_api_helpers import client_for

    response = client_for(coordinator).get("/api/v1/analysis/report?lesions_cutoff=%00")
    assert response.status_code == 400 and response.json()["detail"].startswith("A NUL character")
