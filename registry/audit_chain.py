"""The hash chain over the audit tables (registry.audit_tables): what a row's digest and a seal's
digest are. Sealing is registry.services.seals; checking, registry.security.audit_verify.

A row's digest is HMAC-SHA256(AUDIT_CHAIN_KEY, sha256(the row's values)), cut to 16 bytes. The values
are those of the columns its seal lists, in that order: a column added to an audit table later (a
new field of a clinical record, whatever its default) is in newer seals only, and older rows keep
their digests. Left out is the column the application sets once after the insert
(AccessLog.logout_time). On PostgreSQL the database renders the row (a ROW(...) value as text) and
computes the sha256 itself, which keeps sealing a bulk import's rows cheap; SQLite's rows are
rendered here as JSON. Each database checks its own seals. A column dropped or renamed later leaves
the seals that hashed it unverifiable (audit_verify says so).

The key stays outside the database: someone who can change rows there (a superuser, who can also
switch the triggers off) cannot compute the digests the changed rows would need. The digests of
erased rows stay in their seals; keyed, they reveal nothing of the rows.
"""
import hashlib
import hmac
import json
import struct

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

PAGE = 10_000  # rows read per query
DIGEST_BYTES = 16
_PAIR = struct.Struct(">q16s")  # a row id and its digest, as a seal keeps them


def chain_key():
    if not settings.AUDIT_CHAIN_KEY:
        raise ImproperlyConfigured("Set AUDIT_CHAIN_KEY to seal and verify the audit tables.")
    return settings.AUDIT_CHAIN_KEY.encode()


def _mac(key, message):
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def canonical(value):
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False, separators=(",", ":")).encode()


def sealed_columns(audited):
    """The columns a new seal of this table hashes: all of them but the one set after the insert."""
    return [f.column for f in audited.model._meta.concrete_fields if f.column != audited.set_once]


def _postgres_page(audited, columns, after_id, upto_id, count):
    quote = connection.ops.quote_name
    pk = quote(audited.model._meta.pk.column)
    row = ", ".join(f"t.{quote(column)}" for column in columns)
    where, params = f"{pk} > %s", [after_id]
    if upto_id is not None:
        where, params = f"{where} AND {pk} <= %s", [*params, upto_id]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {pk}, sha256(convert_to(ROW({row})::text, 'UTF8')) FROM {quote(audited.table)} t "
                       f"WHERE {where} ORDER BY {pk} LIMIT %s", [*params, count])
        return cursor.fetchall()


def _python_page(audited, columns, after_id, upto_id, count):
    by_column = {f.column: f.attname for f in audited.model._meta.concrete_fields}
    rows = audited.model._base_manager.filter(pk__gt=after_id).order_by("pk")
    if upto_id is not None:
        rows = rows.filter(pk__lte=upto_id)
    values = rows.values_list("pk", *[by_column[column] for column in columns])[:count]
    return [(pk_value, hashlib.sha256(canonical(row)).digest()) for pk_value, *row in values]


def row_digests(audited, key, columns, *, after_id=0, upto_id=None, limit=None):
    """(id, digest) of the table's rows with after_id < id <= upto_id, in id order, at most `limit`."""
    read_page = _postgres_page if connection.vendor == "postgresql" else _python_page
    left = limit
    while left is None or left > 0:
        page = read_page(audited, columns, after_id, upto_id, PAGE if left is None else min(PAGE, left))
        yield from ((pk_value, hmac.digest(key, bytes(hashed), "sha256")[:DIGEST_BYTES]) for pk_value, hashed in page)
        if len(page) < PAGE:
            return
        after_id = page[-1][0]
        left = None if left is None else left - len(page)


def pack(pairs):
    return b"".join(_PAIR.pack(pk_value, digest) for pk_value, digest in pairs)


def unpack(blob):
    return list(_PAIR.iter_unpack(bytes(blob)))


def seal_digest(key, seal):
    """The keyed digest of a seal: table, range, columns, time, the seal before it and every row digest."""
    head = [seal.previous, seal.table, seal.last_id, seal.rows, seal.columns, seal.sealed_at.isoformat(),
            hashlib.sha256(bytes(seal.row_digests)).hexdigest()]
    return _mac(key, canonical(head))


def tombstone_mac(key, tombstone):
    return _mac(key, canonical([tombstone.at.isoformat(), tombstone.username, tombstone.reference, tombstone.centre,
                                tombstone.patient_hash, tombstone.counts, tombstone.erased_rows]))


def pseudonym_hash(key, patient_id):
    """A keyed hash of a pseudonym: with the key one can tell whether a given pseudonym was erased; without
    it the hash cannot be reversed by trying the ~10^9 pseudonyms a centre's format allows."""
    return _mac(key, b"erased-patient:" + patient_id.encode())
