"""Sign-in lockout in two tiers: failures from one address lock that (user name, address) pair
only; many more from all addresses together lock the user name; an administrator unlocks, and
the unlock is recorded."""
import pytest
from axes.models import AccessAttempt
from django.test import Client, override_settings

from registry.models import SecurityEvent
from tests import factories as f

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery"


def sign_in(address, username, password):
    return Client(REMOTE_ADDR=address).post("/accounts/login/", {"username": username, "password": password})


def test_failures_from_one_address_do_not_lock_the_user_out_at_another():
    f.user("nurse", memberships=[("MUC", "nurse")])
    for _ in range(4):
        assert sign_in("203.0.113.9", "nurse", "guess").status_code == 200
    assert sign_in("203.0.113.9", "nurse", "guess").status_code == 429  # the fifth locks the pair
    assert sign_in("203.0.113.9", "nurse", PASSWORD).status_code == 429
    assert sign_in("10.1.1.20", "nurse", PASSWORD).status_code == 302  # the nurse at her ward computer


@override_settings(AXES_PAIR_FAILURE_LIMIT=3, AXES_USERNAME_FAILURE_LIMIT=6)
def test_failures_from_many_addresses_lock_the_user_name_everywhere():
    f.user("nurse", memberships=[("MUC", "nurse")])
    for _ in range(3):
        sign_in("203.0.113.1", "nurse", "guess")
    for _ in range(2):  # five in all: below the user name's limit, and this pair is not locked
        assert sign_in("203.0.113.2", "nurse", "guess").status_code == 200
    assert sign_in("203.0.113.3", "nurse", "guess").status_code == 429  # the sixth locks the user name
    assert sign_in("10.1.1.20", "nurse", PASSWORD).status_code == 429


def test_an_administrator_unlocks_a_user_and_the_unlock_is_recorded():
    nurse = f.user("nurse", memberships=[("MUC", "nurse")])
    for _ in range(5):
        sign_in("203.0.113.9", "nurse", "guess")
    assert sign_in("203.0.113.9", "nurse", PASSWORD).status_code == 429
    admin = Client()
    admin.force_login(f.user("root", is_superuser=True))
    response = admin.post("/admin/auth/user/", {"action": "unlock_sign_in", "_selected_action": [nurse.pk]})
    assert response.status_code == 302
    assert not AccessAttempt.objects.filter(username="nurse").exists()
    assert sign_in("203.0.113.9", "nurse", PASSWORD).status_code == 302
    event = SecurityEvent.objects.get(event=SecurityEvent.UNLOCKED)
    assert event.username == "root" and event.detail.startswith("nurse:")


def test_the_lockout_counters_cannot_be_deleted_past_the_recorded_unlock():
    f.user("nurse", memberships=[("MUC", "nurse")])
    sign_in("203.0.113.9", "nurse", "guess")
    attempt = AccessAttempt.objects.get()
    admin = Client()
    admin.force_login(f.user("root", is_superuser=True))
    assert admin.get(f"/admin/axes/accessattempt/{attempt.pk}/delete/").status_code == 403
    assert AccessAttempt.objects.exists()


@override_settings(TRUSTED_PROXIES=2)
def test_behind_the_proxies_the_client_address_counts_and_a_forged_header_does_not_help():
    """Behind nginx and a TLS terminator every request comes from the proxy's address; the client is
    the second address from the right of X-Forwarded-For, whatever the client wrote further left."""
    f.user("nurse", memberships=[("MUC", "nurse")])

    def through_proxies(client_address, forged=""):
        chain = ", ".join(part for part in (forged, client_address, "172.18.0.5") if part)
        return Client(REMOTE_ADDR="172.18.0.7", HTTP_X_FORWARDED_FOR=chain).post(
            "/accounts/login/", {"username": "nurse", "password": "guess"})

    for number in range(5):  # a guesser who forges a new "address" each time is still one address
        through_proxies("203.0.113.9", forged=f"198.51.100.{number}")
    assert through_proxies("203.0.113.9").status_code == 429
    good = Client(REMOTE_ADDR="172.18.0.7", HTTP_X_FORWARDED_FOR="10.1.1.20, 172.18.0.5")
    assert good.post("/accounts/login/", {"username": "nurse", "password": PASSWORD}).status_code == 302
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.9"}
