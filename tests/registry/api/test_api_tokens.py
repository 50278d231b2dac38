"""API tokens: created and revoked by their user in the web app, shown once, stored as a hash;
and the request rates per token and per user (429 with Retry-After)."""
import re

import pytest
from django.test import Client

from registry.api.models import ApiToken, token_hash
from tests import factories as f
from tests.registry.api.test_api_helpers import (  # noqa: F401 (fresh_throttles is autouse)
    client_for,
    fresh_throttles,
    token_for,
    verify_two_factor,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(nurse):
    """The nurse's browser, signed in with two factors (tokens are issued only then)."""
    return verify_two_factor(Client(), nurse)


def created_key(response):
    return re.search(r'id="token-key">([^<]+)<', response.content.decode()).group(1)


def test_a_new_token_is_shown_once_and_only_its_hash_is_stored(browser, case):
    response = browser.post("/api/tokens/", {"name": "HIS export", "kind": "api"})
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    key = created_key(response)
    token = ApiToken.objects.get()
    assert token.key_hash == token_hash(key) and key not in (token.key_hash, token.prefix)
    assert token.prefix == key[:8]
    listing = browser.get("/api/tokens/").content.decode()
    assert "HIS export" in listing and key[:8] in listing and key not in listing
    api = Client(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get(f"/api/v1/patients/{case.pk}/").status_code == 200


def test_a_redcap_token_is_32_hexadecimal_characters(browser):
    key = created_key(browser.post("/api/tokens/", {"name": "PyCap", "kind": "redcap"}))
    assert re.fullmatch(r"[0-9A-F]{32}", key)


def test_a_token_needs_a_name(browser):
    response = browser.post("/api/tokens/", {"name": "", "kind": "api"})
    assert response.status_code == 200
    assert not ApiToken.objects.exists()


def test_a_revoked_token_opens_nothing(browser, nurse, case):
    key = token_for(nurse)
    api = Client(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/v1/patients/").status_code == 200
    token = ApiToken.objects.get()
    response = browser.post(f"/api/tokens/{token.pk}/revoke/")
    assert response.status_code == 302
    assert api.get("/api/v1/patients/").status_code == 401
    assert "HIS" not in browser.get("/api/tokens/").content.decode()
    assert browser.post(f"/api/tokens/{token.pk}/revoke/").status_code == 404  # already revoked


def test_a_user_cannot_revoke_someone_elses_token(pi, nurse):
    token = ApiToken.issue(user=nurse, kind="api", name="nurse's")[0]
    browser = Client()
    browser.force_login(pi)
    assert browser.post(f"/api/tokens/{token.pk}/revoke/").status_code == 404
    assert ApiToken.objects.active().filter(pk=token.pk).exists()


def test_api_and_redcap_tokens_are_not_interchangeable(nurse):
    redcap_key = token_for(nurse, kind="redcap")
    assert Client(HTTP_AUTHORIZATION=f"Token {redcap_key}").get("/api/v1/patients/").status_code == 401
    api_key = token_for(nurse)
    response = Client().post("/redcap/api/", {"token": api_key, "content": "project", "format": "json"})
    assert response.status_code == 403


def test_an_inactive_users_tokens_open_nothing(nurse):
    key = token_for(nurse)
    nurse.is_active = False
    nurse.save()
    assert Client(HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/patients/").status_code == 401


def test_bearer_is_accepted_and_a_malformed_header_is_a_401(nurse):
    key = token_for(nurse)
    assert Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/v1/centres/").status_code == 200
    assert Client(HTTP_AUTHORIZATION="Token").get("/api/v1/centres/").status_code == 401
    assert Client(HTTP_AUTHORIZATION="Token a b").get("/api/v1/centres/").status_code == 401


def test_last_used_is_recorded(nurse):
    key = token_for(nurse)
    Client(HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/centres/")
    assert ApiToken.objects.get().last_used_at is not None


def set_rates(settings, **rates):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"anon": "100/min", "user": "100/min", "token": "100/min",
                                                          **rates}}


def test_a_token_over_its_rate_gets_429_with_retry_after(settings, nurse):
    set_rates(settings, token="3/min")
    api = client_for(nurse)
    assert [api.get("/api/v1/centres/").status_code for _ in range(4)] == [200, 200, 200, 429]
    response = api.get("/api/v1/centres/")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert client_for(nurse).get("/api/v1/centres/").status_code == 200  # another token has its own rate


def test_a_user_over_the_user_rate_gets_429_whatever_the_token(settings, nurse):
    set_rates(settings, user="4/min")
    statuses = [client_for(nurse).get("/api/v1/centres/").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]


def test_anonymous_clients_of_public_endpoints_are_throttled_too(settings):
    set_rates(settings, anon="2/min")
    assert [Client().get("/api/schema/").status_code for _ in range(3)] == [200, 200, 429]


def test_redcap_tokens_are_throttled_with_redcaps_error(settings, nurse):
    set_rates(settings, token="1/min")
    key = token_for(nurse, kind="redcap")
    post = {"token": key, "content": "project", "format": "json"}
    assert Client().post("/redcap/api/", post).status_code == 200
    response = Client().post("/redcap/api/", post)
    assert response.status_code == 429 and "error" in response.json() and int(response["Retry-After"]) >= 1


def test_an_administrator_revokes_a_token_in_the_admin(nurse):
    token = ApiToken.issue(user=nurse, kind="api", name="left the team")[0]
    admin = Client()
    admin.force_login(f.user("admin", is_superuser=True))
    assert "left the team" in admin.get("/admin/api/apitoken/").content.decode()
    response = admin.post("/admin/api/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    assert response.status_code == 302
    assert not ApiToken.objects.active().exists()



def test_a_token_is_issued_only_in_a_session_signed_in_with_two_factors(client, nurse):
    client.force_login(nurse)
    response = client.post("/api/tokens/", {"name": "HIS export", "kind": "api"})
    assert response.status_code == 403 and not ApiToken.objects.exists()
    assert "two-factor" in response.content.decode()


def test_creating_and_revoking_a_token_is_in_the_security_log(browser, nurse):
    from registry.models import SecurityEvent

    browser.post("/api/tokens/", {"name": "HIS export", "kind": "api"})
    token = ApiToken.objects.get()
    browser.post(f"/api/tokens/{token.pk}/revoke/")
    events = list(SecurityEvent.objects.order_by("at").values_list("event", "username", "detail"))
    assert [e[:2] for e in events] == [("token-created", "nurse"), ("token-revoked", "nurse")]
    assert "HIS export" in events[0][2]


def test_a_read_only_token_reads_but_never_writes(case, nurse):
    token, key = ApiToken.issue(user=nurse, kind="api", name="reader", read_only=True)
    api = Client(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get(f"/api/v1/patients/{case.pk}/").status_code == 200
    response = api.patch(f"/api/v1/patients/{case.pk}/", {"ecog": 1}, content_type="application/json",
                         HTTP_IF_MATCH='"1"')
    assert response.status_code == 403 and "read-only" in response.json()["detail"]


def test_an_expired_token_opens_nothing(case, nurse):
    import datetime

    from django.utils import timezone

    token, key = ApiToken.issue(user=nurse, kind="api", name="old")
    assert token.expires_at > timezone.now() + datetime.timedelta(days=89)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    assert Client(HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/patients/").status_code == 401


def test_a_password_change_revokes_every_token_of_the_user(nurse):
    token, _key = ApiToken.issue(user=nurse, kind="api", name="script")
    nurse.set_password("another-long-password-7")
    nurse.save()
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_wrong_tokens_from_one_address_are_throttled(db, settings):
    settings.API_BAD_TOKEN_LIMIT = 5
    api = Client(HTTP_AUTHORIZATION="Token pmr_wrong")
    statuses = [api.get("/api/v1/patients/").status_code for _ in range(7)]
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]
    assert Client().post("/redcap/api/", {"token": "0" * 32, "content": "record"}).status_code == 429
