"""`make backup` and `make restore` (pg_dump / pg_restore): a dump restored into a new database
holds every table exactly as it was."""
import subprocess
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="backup and restore are PostgreSQL tools"),
]


def database_url(name):
    settings = connection.settings_dict
    return (f"postgres://{settings['USER']}:{settings['PASSWORD'] or ''}@{settings['HOST'] or '127.0.0.1'}:"
            f"{settings['PORT'] or 5432}/{name}")


def table_contents(url):
    with psycopg.connect(url) as db:
        tables = [row[0] for row in db.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
        return {table: db.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall() for table in tables}


def make(target, url, **variables):
    args = ["make", "--no-print-directory", target] + [f"{key}={value}" for key, value in variables.items()]
    result = subprocess.run(args, cwd=ROOT, env={"PATH": "/usr/bin:/bin:/usr/local/bin", "DATABASE_URL": url},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_backup_restored_into_a_new_database_is_identical(tmp_path):
    call_command("generate_cohort", patients=25, centres=2, seed=4, load=True)
    source = database_url(connection.settings_dict["NAME"])
    dump = tmp_path / "registry.dump"
    make("backup", source, BACKUP_FILE=dump)

    target_name = f"{connection.settings_dict['NAME']}_restored"
    with psycopg.connect(database_url("postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{target_name}"')
        admin.execute(f'CREATE DATABASE "{target_name}"')
    try:
        make("restore", database_url(target_name), FILE=dump)
        original, restored = table_contents(source), table_contents(database_url(target_name))
        assert "registry_patient" in original and len(original["registry_patient"]) == 25
        assert restored == original
    finally:
        with psycopg.connect(database_url("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{target_name}" WITH (FORCE)')
