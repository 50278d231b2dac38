"""The one-writer rule, enforced on every statement the test suite sends: an INSERT, UPDATE or
DELETE on a clinical table (or its audit table, or a data freeze) must come from registry/services/.

The writer is the innermost frame of the project's own code. Tests may write fixtures directly
(tests/factories.py), and migrations build the schema; but a write made while a request or a
management command is being handled must come from the services, whoever the caller was.
"""
import pathlib
import re
import sys

from django.db import connection

from registry.models import CLINICAL_MODELS, DeletedRecord, Freeze, FrozenCase, Restoration

ROOT = pathlib.Path(__file__).resolve().parent.parent
SERVICES = str(ROOT / "registry" / "services") + "/"
TESTS = str(ROOT / "tests") + "/"
MIGRATIONS = ("/registry/migrations/", "/analysis/migrations/", "/registry/api/migrations/")
HANDLERS = ("/django/core/handlers/", "/django/core/management/", "/rest_framework/views.py")
WRITE = re.compile(r'^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)"?', re.IGNORECASE)


def clinical_tables():
    tables = set()
    for model in CLINICAL_MODELS:
        tables.update({model._meta.db_table, model.history.model._meta.db_table})
    # Tombstones hold deleted records' values, and a restoration writes records back.
    tables.update({DeletedRecord._meta.db_table, Restoration._meta.db_table})
    tables.update({Freeze._meta.db_table, FrozenCase._meta.db_table})  # the data freezes, as clinical data
    return tables


class OutsideServicesWrite(AssertionError):
    pass


def writer_of_this_statement():
    """(file of the innermost project frame, whether a request or command is being handled)."""
    frame, writer, handling = sys._getframe(2), None, False
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(str(ROOT)) and "/.venv/" not in name and name != __file__:
            writer = writer or name
        elif any(handler in name for handler in HANDLERS):
            handling = True
        frame = frame.f_back
    return writer, handling


def guard(tables):
    def execute(run, sql, params, many, context):
        match = WRITE.match(sql)
        if match and match.group(1) in tables:
            writer, handling = writer_of_this_statement()
            allowed = writer is None or writer.startswith(SERVICES) or any(m in writer for m in MIGRATIONS) \
                or (writer.startswith(TESTS) and not handling)
            if not allowed:
                raise OutsideServicesWrite(f"{writer} wrote {match.group(1)} without registry.services: {sql[:80]}")
        return run(sql, params, many, context)
    return execute


def only_services_write():
    """A context manager: this thread's connection refuses clinical writes from outside services."""
    return connection.execute_wrapper(guard(clinical_tables()))
