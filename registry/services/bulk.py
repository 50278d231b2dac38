"""Bulk writes: an import's checked plan, and whole new cases; new rows and their audit rows in bulk,
updates audited too. Private to registry.services: callers use import_write and cases_create.

New records: simple_history's `bulk_create_with_history` spends ~230 µs of CPU per record on this
machine (Django's per-value preparation for the row and again for its history row), which caps an
import near 4,000 rows/s. So new records are written with PostgreSQL's COPY (an executemany on
SQLite), together with exactly the audit rows `bulk_create_with_history` would write: one
historical row per record, history_type '+', the importing user, one history_date for the import
and a change reason naming the file. The historical table's columns are read from the history
model, so a new field cannot be forgotten.

Updated records go through `bulk_update_with_history` (history_type '~'), with their version
incremented, as every other update path does.

An import's new patients come with provisional ids (the file named them by its own local keys):
the registry issues their pseudonyms here, just before they are written, as web entry does.
"""
import datetime
import json
from operator import attrgetter

from django.db import connection, models, transaction
from django.utils import timezone
from simple_history.utils import bulk_update_with_history, get_history_model_for_model

from registry import access, selectors
from registry.cases import centre_of
from registry.dictionary import TABLE_MODELS, TABLES
from registry.models import Patient
from registry.pseudonyms import unique_pseudonyms
from registry.services import queries
from registry.services.instances import instances_number
from registry.services.seals import seal_on_commit
from registry.services.status import COMPLETE, IN_PROGRESS, LOCKED, VERIFIED, refuse_if_locked
from registry.services.versions import bump_data_version

BATCH = 2000


def _history_columns(model):
    history = get_history_model_for_model(model)
    return history, [f for f in history._meta.concrete_fields if f.name != "history_id"]


def _allocate_ids(model, count):
    """Primary keys for `count` new rows of an auto-id table, taken from its sequence (which is
    looked up once: pg_get_serial_sequence per row would cost 5x more)."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [connection.ops.quote_name(table)])
        sequence = cursor.fetchone()[0]
        cursor.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [sequence, count])
        return [row[0] for row in cursor.fetchall()]


def _escape(value):
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def _copy_text(value):
    """One value in COPY's text format."""
    if value is None:
        return "\\N"
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, str):
        return _escape(value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return str(value)


def _free_text(field):
    """A column whose values may hold any character (and so need COPY's escaping)."""
    return (isinstance(field, (models.CharField, models.TextField)) and not field.choices
            and not field.primary_key and field.attname != "patient_id")


def _column_text(field, values):
    """The COPY text of one column's values. Apart from identifiers and free text, a column holds
    few distinct values (codes, dates, yes/no, small numbers): each is formatted once."""
    if _free_text(field):
        return ["\\N" if value is None else _escape(value) for value in values]
    if isinstance(field, models.JSONField):  # the missing-data codes: mostly {}, never hashable
        return ["{}" if value == {} else "\\N" if value is None else _escape(json.dumps(value)) for value in values]
    if field.attname in ("id", "patient_id"):  # unique, never blank, never special characters
        return list(map(str, values))
    texts = {value: _copy_text(value) for value in set(values)}
    return list(map(texts.__getitem__, values))


def copy_lines(fields, rows):
    """Rows of values → lines of COPY text (without the constant columns), batch by batch, built
    column by column (about 3x faster than formatting row by row)."""
    for start in range(0, len(rows), BATCH):
        columns = zip(*rows[start:start + BATCH])
        yield list(map("\t".join, zip(*[_column_text(f, values) for f, values in zip(fields, columns)])))


def _copy(table, fields, constants, batches, keep=None):
    """COPY batches of preformatted lines of `fields`, each line followed by the same `constants`
    ({field: value}); the batches are appended to `keep` when given. A batch is formatted while
    PostgreSQL stores the one before."""
    names = ", ".join(connection.ops.quote_name(f.column) for f in [*fields, *constants])
    tail = "".join("\t" + _copy_text(value) for value in constants.values()) + "\n"
    # The raw psycopg cursor's errors are turned into Django's (IntegrityError, ...) as usual.
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(f"COPY {connection.ops.quote_name(table)} ({names}) FROM STDIN") as copy:
            for lines in batches:
                copy.write(tail.join(lines) + tail)
                if keep is not None:
                    keep.append(lines)


def _executemany(table, fields, constants, rows):
    columns = [*fields, *constants]
    names = ", ".join(connection.ops.quote_name(f.column) for f in columns)
    marks = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {connection.ops.quote_name(table)} ({names}) VALUES ({marks})"
    tail = [f.get_db_prep_save(value, connection) for f, value in constants.items()]
    prepared = ([f.get_db_prep_save(value, connection) for f, value in zip(fields, row)] + tail for row in rows)
    with connection.cursor() as cursor:
        batch = []
        for row in prepared:
            batch.append(row)
            if len(batch) == BATCH:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)


def _sqlite_ids(model, records, fields, now):
    """SQLite: insert the first row alone (taking the write lock), number the rest after it."""
    first = records[0]
    first.created_at = first.updated_at = now
    names = [f for f in fields if f.name != "id"]
    placeholders = ", ".join(["%s"] * len(names))
    sql = (f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} "
           f"({', '.join(connection.ops.quote_name(f.column) for f in names)}) VALUES ({placeholders})")
    with connection.cursor() as cursor:
        cursor.execute(sql, [f.get_db_prep_save(getattr(first, f.attname), connection) for f in names])
        first_id = cursor.lastrowid
    return [first_id + offset for offset in range(len(records))]


def records_create(model, records, *, user, now, reason):
    """Insert new records of one model and their '+' audit rows."""
    if not records:
        return
    # In pseudonym order the patient_id indexes are filled page by page instead of at random
    # places (measured: 15-20 % less PostgreSQL CPU for 10,000 new patients).
    instances_number(model, records)  # before sorting: a patient's records keep the file's order on ties
    records = sorted(records, key=attrgetter("patient_id"))
    fields = [f for f in model._meta.concrete_fields]
    auto_id = model._meta.pk.name == "id"
    skip_first = False
    if auto_id:
        if connection.vendor == "postgresql":
            ids = _allocate_ids(model, len(records))
        else:
            ids = _sqlite_ids(model, records, fields, now)
            skip_first = True
        for record, pk in zip(records, ids):
            record.id = pk
    for record in records:
        record.created_at = record.updated_at = now
        record._state.adding = False
    # Every new record has version 1, is in progress and has the import's timestamp: columns
    # written as constants.
    constant = {"version": 1, "status": IN_PROGRESS, "created_at": now, "updated_at": now}
    variable, constants = _split(fields, constant)
    # The audit rows repeat the record's values (in the same column order), then add simple_history's.
    history, history_fields = _history_columns(model)
    by_attname = {f.attname: f for f in history_fields}
    audit_constant = {**constant, "history_date": now, "history_change_reason": reason, "history_type": "+",
                      "history_user_id": getattr(access.audit_user(user), "pk", None)}
    audit_variable = [by_attname[f.attname] for f in variable]
    audit_constants = _split(history_fields, audit_constant)[1]
    if len(audit_variable) + len(audit_constants) != len(history_fields):
        raise RuntimeError(f"{history.__name__} has a column the import does not write")

    values = list(map(attrgetter(*[f.attname for f in variable]), records))
    if connection.vendor == "postgresql":
        batches = []  # formatted once, for the table and its audit table
        _copy(model._meta.db_table, variable, constants, copy_lines(variable, values), keep=batches)
        _copy(history._meta.db_table, audit_variable, audit_constants, batches)
    else:
        _executemany(model._meta.db_table, variable, constants, values[1 if skip_first else 0:])
        _executemany(history._meta.db_table, audit_variable, audit_constants, values)
    seal_on_commit([history])  # COPY sends no post_save: the audit rows ask for their seal here


def _split(fields, constant):
    """(fields whose values vary, {field: value} of those that are the same in every row)."""
    return ([f for f in fields if f.attname not in constant],
            {f: constant[f.attname] for f in fields if f.attname in constant})


def records_update(model, pairs, *, user, now, reason):
    """Save changed stored records (version + 1) with their '~' audit rows."""
    if not pairs:
        return
    changed = sorted({name for _record, names in pairs for name in names} | {"status"})
    records = []
    for record, _names in pairs:
        refuse_if_locked(record)
        if record.status == VERIFIED:
            record.status = COMPLETE  # verified values changed: to be verified again
        record.version += 1
        record.updated_at = now
        records.append(record)
    bulk_update_with_history(records, model, [*changed, "version", "updated_at"], batch_size=500,
                             default_user=access.audit_user(user), default_date=now,
                             default_change_reason=reason)
    seal_on_commit([get_history_model_for_model(model)])  # its bulk_create sends no post_save


def pseudonyms_issue(creates):
    """Give every new patient of `creates` a pseudonym issued by the registry, in place of its
    provisional id, and every new record of theirs the same; returns {provisional id: pseudonym}."""
    patients = creates["patients"]
    issued = unique_pseudonyms([patient.centre_id for patient in patients], selectors.issued_patient_ids)
    renamed = {}
    for patient, pseudonym in zip(patients, issued):
        renamed[patient.patient_id] = pseudonym
        patient.patient_id = pseudonym
    for table in TABLES[1:]:
        for record in creates[table]:
            if record.patient_id in renamed:
                # Past the foreign key's descriptor: its check for a cached patient would give each
                # new record a cache of its own (8 MB for 30,000 records). A planned record has none.
                vars(record)["patient_id"] = renamed[record.patient_id]
    return renamed


def import_write(*, user, creates, updates, reason):
    """Write an import's checked plan in one transaction: parents before children.

    `creates` is {table: [new record]}, `updates` {table: [(stored record, changed columns)]}, as
    the importer planned them (registry.transfer.importing.merge) after checking every rule; here
    the write access to every centre is checked once more, each new patient is issued its
    pseudonym (its `patient_id` in `creates`, and its records', is provisional until then: the
    instances are renamed in place), and the centres' data versions move. Returns the time the rows
    were written.
    """
    centres = {centre_of(record) for table in TABLES for record in creates[table]}
    centres |= {centre_of(record) for table in TABLES for record, _names in updates[table]}
    for centre in sorted(centres):
        access.require_writable(user, centre)
    # A lock refuses the import (the importer has reported it at its row before it gets here).
    children = [r for t in TABLES[1:] for r in [*creates[t], *(record for record, _names in updates[t])]]
    locked = Patient.objects.filter(pk__in={r.patient_id for r in children}, status=LOCKED).in_bulk()
    for record in children:
        refuse_if_locked(record, locked.get(record.patient_id))
    pseudonyms_issue(creates)
    now = timezone.now()
    with transaction.atomic():
        for table in TABLES:
            records_create(TABLE_MODELS[table], creates[table], user=user, now=now, reason=reason)
            records_update(TABLE_MODELS[table], updates[table], user=user, now=now, reason=reason)
        queries.import_checks_sync(creates, updates)  # set-based: a few statements per 5,000 patients
        bump_data_version(centres)
    return now

