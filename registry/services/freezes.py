"""Data freezes: the clinical tables copied, unchanged for good, at one instant (registry.frozen
says what the copy is). A coordinator freezes the registry before an analysis is reported; every
result can then be computed again from the freeze, byte for byte, however the live data move on.

A freeze is read in one snapshot (PostgreSQL: a REPEATABLE READ transaction, so saves committed
while it is read are not half in it) and written in the same transaction: the Freeze row (name,
instant, user, rule, data dictionary version, live data version, counts and content hash), then
one FrozenCase row per patient. Both tables are append-only (registry.audit_tables): on
PostgreSQL triggers refuse every UPDATE and DELETE, and the rows are sealed into the audit hash
chain. The one exception is a legal erasure (services.erasure), which takes the erased patient's
frozen cases along.

Rules: "all" freezes every record; "verified" keeps a record when it and its patient are verified
or locked (registry.selectors.canonical_cases).
"""
import re

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import access, dictionary, frozen, selectors
from registry.models import FREEZE_NAME_PATTERN, Freeze, FrozenCase
from registry.services import seals

RESERVED_NAMES = ("live",)  # the diff's word for the live registry
BATCH = 2000


def _check_name(name):
    if not re.match(FREEZE_NAME_PATTERN, name):
        raise ValidationError({"name": _("Use letters, digits, '.', '_' and '-', starting with a letter or digit "
                                         "(at most 80).")})
    if name.lower() in RESERVED_NAMES:
        raise ValidationError({"name": _("“%(name)s” is reserved: choose another name.") % {"name": name}})
    if Freeze.objects.filter(name=name).exists():
        raise ValidationError({"name": _("A freeze named “%(name)s” exists already.") % {"name": name}})


def freeze_create(*, user, name, rule=Freeze.ALL):
    """Freeze the registry under `name` (unique) and `rule` ("all" or "verified"); returns the Freeze.

    Only a coordinator (or the system, for manage.py freeze_create without --user) may. Raises
    PermissionDenied, or ValidationError naming the field for a bad or taken name or an unknown rule.

    Not decorated with transaction.atomic: the snapshot's isolation level must be set by the first
    statement of the transaction, which selectors.one_snapshot opens (and joins, inside a caller's).
    """
    if user is not access.SYSTEM and not access.is_coordinator(user):
        raise PermissionDenied(_("Only coordinators may freeze the registry."))
    name = (name or "").strip()
    _check_name(name)
    if rule not in frozen.RULES:
        raise ValidationError({"rule": _("Choose all records or only verified and locked ones.")})
    with selectors.one_snapshot(read_only=False):
        data_version = selectors.data_version()  # the first read: it fixes the snapshot on PostgreSQL
        frozen_at = timezone.now()  # the instant of the snapshot, not of the end of writing it
        cases = selectors.canonical_cases(rule=rule)
        counts = {}
        for _pid, centre, line in cases:
            tables = counts.setdefault(centre, dict.fromkeys(frozen.TABLES, 0))
            for table, rows in frozen.case_tables(line).items():
                tables[table] += len(rows)
        audit = access.audit_user(user)
        try:
            with transaction.atomic():
                freeze = Freeze.objects.create(
                    name=name, created_at=frozen_at, user=audit, username=getattr(audit, "username", ""),
                    rule=rule, dictionary_version=dictionary.version(), data_version=data_version,
                    content_hash=frozen.content_hash(line for _pid, _centre, line in cases), counts=counts)
        except IntegrityError as error:  # the same name, frozen at the same moment by someone else
            raise ValidationError({"name": _("A freeze named “%(name)s” exists already.") % {"name": name}}) from error
        _write_cases(freeze, cases)
        seals.seal_on_commit([FrozenCase])  # neither COPY nor bulk_create sends post_save (the Freeze row's did)
    return freeze


def _write_cases(freeze, cases):
    """The frozen cases: by COPY on PostgreSQL (10,000 rows in a tenth of the 2 s bulk_create took on
    the reference machine), else bulk_create."""
    if connection.vendor != "postgresql":
        FrozenCase.objects.bulk_create(
            (FrozenCase(freeze=freeze, patient_id=pid, centre=centre, data=line) for pid, centre, line in cases),
            batch_size=BATCH)
        return
    quote = connection.ops.quote_name
    columns = ", ".join(quote(FrozenCase._meta.get_field(name).column) for name in ("freeze", "patient_id", "centre",
                                                                                     "data"))
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {quote(FrozenCase._meta.db_table)} ({columns}) FROM STDIN") as copy:
            for pid, centre, line in cases:
                copy.write_row((freeze.pk, pid, centre, line))
