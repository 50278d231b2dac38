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


@override_settings(AXES_PAIR_FAILURE_LIMIT=3)
def test_repeated_failed_sign_ins_lock_the_account_even_for_the_right_password(client):
    f.user("nurse", memberships=[("MUC", "nurse")], password=PASSWORD)
    for _ in range(2):
        assert sign_in(client, "nurse", "wrong").status_code == 200  # the form again, with an error
    assert AccessAttempt.objects.get(username="nurse").failures_since_start == 2
    locked = sign_in(client, "nurse", "wrong")
    assert locked.status_code == 429 and "Account locked" in locked.content.decode()
    assert sign_in(client, "nurse", PASSWORD).status_code == 429
    assert "_auth_user_id" not in client.session


@override_settings(AXES_PAIR_FAILURE_LIMIT=3)
def test_a_successful_sign_in_resets_the_failure_count(client):
    f.user("nurse", memberships=[("MUC", "nurse")], password=PASSWORD)
    sign_in(client, "nurse", "wrong")
    sign_in(client, "nurse", "wrong")
    assert sign_in(client, "nurse", PASSWORD).status_code == 302
    assert not AccessAttempt.objects.filter(username="nurse").exists()


def test_a_session_ends_after_its_maximum_age_however_active(client, settings):
    import time

    from registry.security.middleware import SessionLimitMiddleware

    user = f.user(memberships=[("MUC", "nurse")])
    client.force_login(user)
    assert client.get("/patients/").status_code == 200
    session = client.session
    session[SessionLimitMiddleware.KEY] = time.time() - 13 * 3600
    session.save()
    response = client.get("/patients/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert client.get("/patients/").status_code == 302  # signed out


def test_sessions_end_after_30_idle_minutes_by_default():
    from django.conf import settings

    assert settings.SESSION_COOKIE_AGE == 1800 and settings.SESSION_SAVE_EVERY_REQUEST


def test_without_mail_there_are_no_password_reset_pages(client, db):
    assert client.get("/accounts/password_reset/").status_code == 404


def test_two_factor_is_required_of_coordinators_and_pis_in_production_unless_configured():
    import os
    import subprocess
    import sys

    from tests.test_deploy import ROOT

    code = "from django.conf import settings; print(sorted(settings.TWO_FACTOR_REQUIRED_ROLES))"
    env = {"PATH": os.environ["PATH"], "SECRET_KEY": "x" * 50, "DJANGO_SETTINGS_MODULE": "registry.settings"}
    run = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == "['coordinator', 'pi']", run.stderr
