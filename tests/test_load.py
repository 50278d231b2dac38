"""The load test in its short form (bench/load.py: the registry under gunicorn on PostgreSQL, driven
by concurrent simulated nurses, PIs and API clients): no server error, no transport error, every
record the clients were told was saved is in the database exactly once. Behaviour, not speed.

bench/load.py creates and drops its own scratch database on the same PostgreSQL server; pytest-django's
test database is not touched."""
import os
import re
import subprocess
import sys
from pathlib import Path

import dj_database_url
import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def postgres_server_url():
    """The maintenance database of the tests' PostgreSQL server, or None without PostgreSQL."""
    if connection.vendor == "postgresql":
        settings = connection.settings_dict
    elif os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://", "pgsql://")):
        settings = dj_database_url.parse(os.environ["DATABASE_URL"])
    else:
        return None
    login = settings["USER"] or "postgres"
    if settings["PASSWORD"]:
        login += f":{settings['PASSWORD']}"
    return f"postgres://{login}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/postgres"


SERVER_URL = postgres_server_url()
pytestmark = pytest.mark.skipif(
    SERVER_URL is None, reason="the load test serves the registry on PostgreSQL: set DATABASE_URL=postgres://…")


def test_short_load_run_loses_nothing_duplicates_nothing_and_has_no_server_error():
    result = subprocess.run(
        [sys.executable, "bench/load.py", "--users", "8", "--seconds", "8", "--patients", "50", "--think", "0.3",
         "--baseline-rounds", "0", "--server-url", SERVER_URL],
        cwd=ROOT, capture_output=True, text=True, timeout=180)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    figures = dict(re.findall(r"^([a-z0-9 ]+): (\d+)$", result.stdout, re.MULTILINE))
    assert figures["5xx responses"] == "0", output
    assert figures["transport errors"] == "0", output
    assert figures["lost records"] == "0", output
    assert figures["duplicated or unexpected records"] == "0", output
    assert int(figures["records the clients were told were saved"]) > 4, output  # the warm-up alone saves 4
