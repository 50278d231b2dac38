"""Sign-in protection: repeated failed sign-ins lock the account, and every sign-in and
failed sign-in is recorded."""
import pytest
from axes.models import AccessAttempt, AccessLog
from django.test import override_settings

from tests import factories as f

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery"


def sign_in(client, username, password):
    return client.post("/accounts/login/", {"username": username, "password": password})


def test_successful_sign_in_is_logged(client):
    f.user("nurse", memberships=[("MUC", "nurse")], password=PASSWORD)
    assert sign_in(client, "nurse", PASSWORD).status_code == 302
    assert AccessLog.objects.filter(username="nurse").count() == 1


@override_settings(AXES_FAILURE_LIMIT=3)
def test_repeated_failed_sign_ins_lock_the_account_even_for_the_right_password(client):
    f.user("nurse", memberships=[("MUC", "nurse")], password=PASSWORD)
    for _ in range(2):
        assert sign_in(client, "nurse", "wrong").status_code == 200  # the form again, with an error
    assert AccessAttempt.objects.get(username="nurse").failures_since_start == 2
    locked = sign_in(client, "nurse", "wrong")
    assert locked.status_code == 429 and "Account locked" in locked.content.decode()
    assert sign_in(client, "nurse", PASSWORD).status_code == 429
    assert "_auth_user_id" not in client.session


@override_settings(AXES_FAILURE_LIMIT=3)
def test_a_successful_sign_in_resets_the_failure_count(client):
    f.user("nurse", memberships=[("MUC", "nurse")], password=PASSWORD)
    sign_in(client, "nurse", "wrong")
    sign_in(client, "nurse", "wrong")
    assert sign_in(client, "nurse", PASSWORD).status_code == 302
    assert not AccessAttempt.objects.filter(username="nurse").exists()
