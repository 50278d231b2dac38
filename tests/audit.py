"""Helpers for tests of the audit tables: emptying them in a test's own setup or teardown, changing
them behind the application's back, and running audit_verify."""
import io
from contextlib import contextmanager

import pytest
from django.core.management import CommandError, call_command
from django.db import connection


def empty(*models):
    """On PostgreSQL the triggers refuse DELETE (registry/audit_tables.py); TRUNCATE fires no row trigger."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses pending foreign-key checks
        for model in models:
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"TRUNCATE {table}" if connection.vendor == "postgresql" else f"DELETE FROM {table}")


def verify():
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def verify_fails():
    with pytest.raises(CommandError) as error:
        verify()
    return str(error.value)


@contextmanager
def triggers_off(model):
    """What a database superuser can do on PostgreSQL; SQLite has no triggers to switch off."""
    table = connection.ops.quote_name(model._meta.db_table)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # The test's own transaction has foreign-key checks pending, which ALTER TABLE refuses.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    yield table
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def behind_the_back(model, statement, *params):
    with triggers_off(model) as table, connection.cursor() as cursor:
        cursor.execute(statement.format(table=table), params)
