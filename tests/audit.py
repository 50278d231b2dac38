"""Emptying audit tables in a test's own setup or teardown. On PostgreSQL their triggers refuse
DELETE (registry/audit_tables.py); TRUNCATE fires no row trigger, so a test may still start afresh."""
from django.db import connection


def empty(*models):
    with connection.cursor() as cursor:
        for model in models:
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"TRUNCATE {table}" if connection.vendor == "postgresql" else f"DELETE FROM {table}")
