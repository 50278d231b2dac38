"""The models and the migrations agree: `makemigrations --check` finds nothing to write."""
import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_makemigrations_check_is_clean():
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    assert "No changes detected" in out.getvalue()


def test_makemigrations_check_runs_without_a_secret_key():
    """A migrations check needs no production settings; `check` still refuses (tests/test_deploy.py)."""
    from tests.test_deploy import manage

    result = manage("makemigrations", "--check", "--dry-run", DEBUG="0")
    assert result.returncode == 0 and "No changes detected" in result.stdout, result.stdout + result.stderr
