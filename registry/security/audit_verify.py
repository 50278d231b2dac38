"""Checking the hash chain over the audit tables (registry.audit_chain) against the rows as they are.

The seals must follow one another, each with its keyed digest intact; every sealed row must still be
there with the digest its seal holds, unless a valid erasure tombstone names it; no row may have
appeared inside a sealed range. Rows after a table's last seal are counted as not sealed yet.
"""
from dataclasses import dataclass
from itertools import chain, groupby

from registry import audit_chain
from registry.audit_tables import AUDITED
from registry.models import AuditSeal, ErasureTombstone


@dataclass
class TableCheck:
    table: str
    checked: int = 0  # rows found with the digest their seal holds
    erased: int = 0  # sealed rows gone with an erasure (a tombstone names them)
    unsealed: int = 0  # rows after the last seal
    broken: str = ""  # the first problem, naming its row

    @property
    def ok(self):
        return not self.broken


@dataclass
class ChainCheck:
    seals: int
    head: str  # the last seal's digest: kept outside the database, it shows a chain cut short
    broken: str
    tables: list

    @property
    def ok(self):
        return not self.broken and all(table.ok for table in self.tables)


def audit_verify():
    """Recompute every seal and every sealed row; returns a ChainCheck."""
    key = audit_chain.chain_key()
    seals, head, broken = _check_seals(key)
    erased, tombstone_problem = _erased_rows(key)
    tables = [_check_table(audited, key, erased.get(audited.table, set())) for audited in AUDITED]
    return ChainCheck(seals=seals, head=head, broken=broken or tombstone_problem, tables=tables)


def _check_seals(key):
    """(number of seals, the last digest, the first broken link or seal)."""
    previous, count = "", 0
    for seal in AuditSeal.objects.order_by("id").iterator(chunk_size=200):
        if seal.previous != previous:
            return count, previous, f"seal {seal.pk} ({seal.table}) does not follow the seal before it"
        if audit_chain.seal_digest(key, seal) != seal.digest:
            return count, previous, f"seal {seal.pk} ({seal.table}) was altered"
        previous, count = seal.digest, count + 1
    return count, previous, ""


def _erased_rows(key):
    """({audit table: ids of erased rows}, a problem): only tombstones with a valid keyed digest count."""
    erased = {}
    for tombstone in ErasureTombstone.objects.order_by("id"):
        if audit_chain.tombstone_mac(key, tombstone) != tombstone.mac:
            return erased, f"erasure tombstone {tombstone.pk} was altered or forged"
        for table, ids in tombstone.erased_rows.items():
            erased.setdefault(table, set()).update(ids)
    return erased, ""


def _check_table(audited, key, erased):
    check = TableCheck(audited.table)
    existing = {f.column for f in audited.model._meta.concrete_fields}
    seals = AuditSeal.objects.filter(table=audited.table).order_by("last_id").iterator(chunk_size=200)
    after = 0
    # Consecutive seals that hashed the same columns are checked with one pass over their rows.
    for columns, group in groupby(seals, key=lambda seal: tuple(seal.columns)):
        group = list(group)
        if gone := sorted(set(columns) - existing):
            check.broken = f"seal {group[0].pk} hashed column(s) {', '.join(gone)}, which the table no longer has"
            return check
        sealed = chain.from_iterable(audit_chain.unpack(seal.row_digests) for seal in group)
        found = audit_chain.row_digests(audited, key, list(columns), after_id=after, upto_id=group[-1].last_id)
        check.broken = _compare(sealed, found, erased, check)
        if check.broken:
            return check
        after = group[-1].last_id
    check.unsealed = audited.model._base_manager.filter(pk__gt=after).count()
    return check


def _compare(sealed, found, erased, check):
    """Walk the sealed (id, digest) pairs and the rows found, both in id order; the first problem."""
    expected, actual = next(sealed, None), next(found, None)
    while expected or actual:
        if actual is None or (expected and expected[0] < actual[0]):  # a sealed row is not there
            if expected[0] not in erased:
                return f"row {expected[0]} was deleted"
            check.erased += 1
            expected = next(sealed, None)
        elif expected is None or actual[0] < expected[0]:
            return f"row {actual[0]} is in no seal but among sealed rows (inserted afterwards)"
        elif expected[1] != actual[1]:
            return f"row {actual[0]} was changed"
        else:
            check.checked += 1
            expected, actual = next(sealed, None), next(found, None)
    return ""
