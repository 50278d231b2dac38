"""Sealing the audit tables (registry.audit_chain): after every commit that added audit rows, and by
`manage.py audit_seal` (run periodically) for rows a busy moment left unsealed.

Why at commit: a row is tamper-evident only once sealed, so the seal follows the write within
milliseconds instead of waiting for the next periodic run; it costs one short transaction after the
commit (the bulk import's history rows are hashed by PostgreSQL: see bench/README.md). Inserts
through the ORM are noticed by a post_save receiver, whoever wrote them (the services, django-axes,
the security log); the bulk COPY path sends no signals and asks for its seal itself.

A seal covers the rows of one table in id order after the previous seal. Ids are taken when a row
is inserted but become visible at its transaction's commit, so a seal first locks its table against
writers (SHARE mode): it waits until every transaction inserting there has ended, and then no
committed row can turn up later below the seal's last id. Sealing after a commit does not wait for
a table still being written: it leaves that table to the next seal. Seals are written one at a
time, each naming the one before.
"""
import threading

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models.signals import post_save
from django.utils import timezone

from registry import audit_chain
from registry.audit_tables import AUDITED, BY_TABLE
from registry.models import AuditSeal

MAX_ROWS = 100_000  # per seal; `audit_seal` goes on until every row is sealed
CHAIN_LOCK = 0x5EA1  # the advisory lock sealers take in turn
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's error for LOCK ... NOWAIT on a busy table
_pending = threading.local()  # the tables to seal when this thread's transaction commits


def tables_seal(tables=None, *, wait=False, limit=MAX_ROWS):
    """Seal the rows written since the last seal of each table (every audit table when `tables` is
    None), each table in a transaction of its own; returns the new seals. Without `wait`, a table
    another transaction is writing is left for the next seal."""
    key = audit_chain.chain_key()
    sealed = []
    for audited in AUDITED if tables is None else [BY_TABLE[table] for table in tables]:
        try:
            seal = _table_seal(audited, key, wait=wait, limit=limit)
        except OperationalError as error:
            if getattr(error.__cause__, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            continue  # the table is being written (NOWAIT): its rows wait for the next seal
        if seal is not None:
            sealed.append(seal)
    return sealed


@transaction.atomic
def _table_seal(audited, key, *, wait, limit):
    _lock(audited, wait=wait)
    previous, after = _chain_head(audited.table)
    columns = audit_chain.sealed_columns(audited)
    pairs = list(audit_chain.row_digests(audited, key, columns, after_id=after, limit=limit))
    if not pairs:
        return None
    seal = AuditSeal(table=audited.table, last_id=pairs[-1][0], rows=len(pairs), columns=columns,
                     row_digests=audit_chain.pack(pairs), previous=previous, sealed_at=timezone.now())
    seal.digest = audit_chain.seal_digest(key, seal)
    seal.save(force_insert=True)
    return seal


def _lock(audited, *, wait):
    """Until the commit: the table in SHARE mode, which waits for (or with wait=False, refuses to
    wait for) the transactions inserting into it and keeps new ones out while the seal reads it;
    then the chain, so that one seal at a time names the last one (an advisory lock: a lock on the
    seal table would also wait for autovacuum). Table first, so that no sealer holds the chain while
    it waits. SQLite lets one writer at a time in anyway."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {connection.ops.quote_name(audited.table)} IN SHARE MODE"
                           + ("" if wait else " NOWAIT"))
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK])


def _chain_head(table):
    """(the digest of the last seal, the last row id sealed in `table`), in one query."""
    seals = connection.ops.quote_name(AuditSeal._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT (SELECT digest FROM {seals} ORDER BY id DESC LIMIT 1), '
                       f'(SELECT MAX(last_id) FROM {seals} WHERE "table" = %s)', [table])
        previous, after = cursor.fetchone()
    return previous or "", after or 0


def seal_on_commit(models):
    """Seal these audit models' tables once the current transaction commits (at once outside one)."""
    if not hasattr(_pending, "tables"):
        _pending.tables = set()
    _pending.tables.update(model._meta.db_table for model in models)
    # One callback per call: a rolled-back savepoint drops its own; whichever runs seals them all.
    transaction.on_commit(_seal_pending, robust=True)


def _seal_pending():
    tables, _pending.tables = getattr(_pending, "tables", set()), set()
    if not tables:
        return
    if not settings.AUDIT_CHAIN_KEY:  # the system check registry.W003 says so at every start
        return
    tables_seal(sorted(tables))


def _row_inserted(sender, created, raw=False, **kwargs):
    if created and not raw:
        seal_on_commit([sender])


def connect():
    """Seal after every commit that inserted a row into an audit table through the ORM."""
    for audited in AUDITED:
        post_save.connect(_row_inserted, sender=audited.model._meta.concrete_model, dispatch_uid=f"seal-{audited.table}")
