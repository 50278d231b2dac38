"""Two-factor sign-in (TOTP): setting it up, the code step after the password, the roles that must
use it, throttling of wrong codes, and the security log that records it all."""
import time

import pytest
from axes.models import AccessFailureLog
from django.test import override_settings
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from registry.models import ExportLog, SecurityEvent
from tests import factories as f

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery"


def sign_in(client, username, password=PASSWORD):
    return client.post("/accounts/login/", {"username": username, "password": password})


def code(device, step=0):
    """The device's code for the current 30-second step (+ step). A code is accepted only once,
    so a test that signs in twice uses the next step's code the second time."""
    return f"{totp(device.bin_key, drift=step):06d}"


def set_up_authenticator(client, user):
    """Signs in and turns two-factor sign-in on through the set-up page; returns the device."""
    sign_in(client, user.username)
    assert client.get("/accounts/two-factor/setup/").status_code == 200
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    response = client.post("/accounts/two-factor/setup/", {"code": code(device)})
    assert response.status_code == 302
    device.refresh_from_db()
    assert device.confirmed
    return device


def test_without_an_authenticator_the_password_is_enough(client):
    f.user("nurse", memberships=[("MUC", "nurse")])
    assert sign_in(client, "nurse").status_code == 302
    assert client.get("/patients/").status_code == 200


def test_set_up_shows_a_qr_code_and_the_key(client):
    f.user("nurse", memberships=[("MUC", "nurse")])
    sign_in(client, "nurse")
    html = client.get("/accounts/two-factor/setup/").content.decode()
    assert "<svg" in html and "<?xml" not in html
    assert 'class="otp-key"' in html


def test_a_wrong_code_does_not_turn_it_on(client):
    nurse = f.user("nurse", memberships=[("MUC", "nurse")])
    sign_in(client, "nurse")
    client.get("/accounts/two-factor/setup/")
    response = client.post("/accounts/two-factor/setup/", {"code": "000000"})
    assert response.status_code == 200 and "That code is not valid" in response.content.decode()
    assert not TOTPDevice.objects.filter(user=nurse, confirmed=True).exists()


def test_after_set_up_every_page_asks_for_the_code(client):
    nurse = f.user("nurse", memberships=[("MUC", "nurse")])
    device = set_up_authenticator(client, nurse)
    client.logout()
    assert sign_in(client, "nurse").status_code == 302
    for url in ("/", "/patients/", "/analysis/", "/api/tokens/", "/transfer/import/", "/admin/"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/two-factor/?next=")

    wrong = client.post("/accounts/two-factor/", {"code": "000000", "next": "/patients/"})
    assert wrong.status_code == 200 and "That code is not valid" in wrong.content.decode()
    assert client.get("/patients/").status_code == 302

    time.sleep(1.1)  # a wrong code locks the device for 1 s, doubling with each further one
    right = client.post("/accounts/two-factor/", {"code": code(device, step=1), "next": "/patients/"})
    assert right.status_code == 302 and right["Location"] == "/patients/"
    assert client.get("/patients/").status_code == 200
    events = list(SecurityEvent.objects.exclude(event=SecurityEvent.READ).order_by("id").values_list("event", flat=True))
    assert events == [SecurityEvent.TWO_FACTOR_ENABLED, SecurityEvent.TWO_FACTOR_FAILED,
                      SecurityEvent.TWO_FACTOR_PASSED]


def test_a_code_is_accepted_only_once(client):
    nurse = f.user("nurse", memberships=[("MUC", "nurse")])
    device = set_up_authenticator(client, nurse)
    client.logout()
    sign_in(client, "nurse")
    replay = client.post("/accounts/two-factor/", {"code": code(device)})  # the set-up code again
    assert replay.status_code == 200


def test_repeated_wrong_codes_are_throttled(client):
    nurse = f.user("nurse", memberships=[("MUC", "nurse")])
    device = set_up_authenticator(client, nurse)
    client.logout()
    sign_in(client, "nurse")
    for _ in range(3):
        client.post("/accounts/two-factor/", {"code": "000000"})
    throttled = client.post("/accounts/two-factor/", {"code": code(device, step=1)})
    assert throttled.status_code == 200 and "Too many wrong codes" in throttled.content.decode()
    assert client.get("/patients/")["Location"].startswith("/accounts/two-factor/")


def test_the_next_parameter_cannot_send_the_user_elsewhere(client):
    nurse = f.user("nurse", memberships=[("MUC", "nurse")])
    device = set_up_authenticator(client, nurse)
    client.logout()
    sign_in(client, "nurse")
    response = client.post("/accounts/two-factor/", {"code": code(device, step=1),
                                                     "next": "https://evil.example/"})
    assert response["Location"] == "/"


@override_settings(TWO_FACTOR_REQUIRED_ROLES={"coordinator"})
def test_a_required_role_must_set_it_up_before_anything_else(client):
    coordinator = f.user("coordinator", memberships=[("MUC", "coordinator")])
    sign_in(client, "coordinator")
    for url in ("/", "/transfer/export/", "/admin/", "/api/tokens/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/two-factor/setup/")
    assert not ExportLog.objects.exists()
    assert 'href="/transfer/export/"' not in client.get("/accounts/two-factor/setup/").content.decode()  # no menu yet
    set_up_authenticator(client, coordinator)
    assert 'href="/transfer/export/"' in client.get("/patients/").content.decode()
    assert client.get("/transfer/export/").status_code == 200


@override_settings(TWO_FACTOR_REQUIRED_ROLES={"coordinator"})
def test_superusers_count_as_coordinators_and_other_roles_are_free(client):
    f.user("root", is_superuser=True)
    f.user("nurse", memberships=[("MUC", "nurse")])
    sign_in(client, "root")
    assert client.get("/patients/")["Location"].startswith("/accounts/two-factor/setup/")
    client.logout()
    sign_in(client, "nurse")
    assert client.get("/patients/").status_code == 200


@override_settings(TWO_FACTOR_REQUIRED_ROLES={"coordinator"})
def test_a_required_user_cannot_turn_it_off(client):
    coordinator = f.user("coordinator", memberships=[("MUC", "coordinator")])
    device = set_up_authenticator(client, coordinator)
    page = client.get("/accounts/two-factor/setup/").content.decode()
    assert "cannot be turned off" in page
    client.post("/accounts/two-factor/setup/", {"code": code(device, step=1)})
    assert TOTPDevice.objects.filter(user=coordinator, confirmed=True).exists()


def test_an_optional_user_turns_it_off_with_a_code(client):
    nurse = f.user("nurse", memberships=[("MUC", "nurse")])
    device = set_up_authenticator(client, nurse)
    assert client.post("/accounts/two-factor/setup/", {"code": code(device, step=1)}).status_code == 302
    assert not TOTPDevice.objects.filter(user=nurse).exists()
    assert SecurityEvent.objects.filter(event=SecurityEvent.TWO_FACTOR_REMOVED).count() == 1


def test_the_security_log_lists_sign_ins_failures_two_factor_and_exports(client):
    coordinator = f.user("coordinator", memberships=[("MUC", "coordinator")])
    f.user("nurse", memberships=[("MUC", "nurse")])
    sign_in(client, "nurse", "wrong")
    assert AccessFailureLog.objects.filter(username="nurse").count() == 1
    set_up_authenticator(client, coordinator)
    client.post("/transfer/export/", {"file_format": "csv", "deidentify": "none", "centre": ""})
    html = client.get("/security/").content.decode()
    for text in ("failed sign-in", "signed in", "two-factor sign-in set up", "exported the dataset"):
        assert text in html, text
    only_nurse = client.get("/security/?user=nurse").content.decode()
    assert "failed sign-in" in only_nurse and "exported the dataset" not in only_nurse


def test_the_security_log_is_for_coordinators_only(client):
    f.user("nurse", memberships=[("MUC", "nurse")])
    f.user("pi", memberships=[("MUC", "pi")])
    assert client.get("/security/").status_code == 302
    for username in ("nurse", "pi"):
        sign_in(client, username)
        assert client.get("/security/").status_code == 403
        client.logout()
