"""The audit trail as one stream of rows in time order, for the coordinators' audit export
(registry.security.export) and `manage.py audit_export`. Each row is of one kind:

- change    a version of a clinical record (django-simple-history): who, when, the source (web,
            api, admin, import <file>, ...) and each field changed, before and after;
- read      a read of patient-level data (SecurityEvent) or a dataset export (ExportLog);
- refused   a refused or throttled request, an invalid API token (SecurityEvent);
- import    a written import (ImportRun) or a refused one (SecurityEvent);
- query     a step of a data clarification request (QueryMessage): raised, answered, closed, reopened;
- security  sign-ins, sign-outs and failed sign-ins (django-axes), two-factor and token events,
            sign-in unlocks, refused signatures (SecurityEvent);
- signature a PI's signature of a case: its meaning and the SHA-256 of the case signed (Signature);
- verification  a field of a record verified against the source, at which value (FieldVerification).

Filtered by one patient (its changes and refusals, and every read whose scope covered its centre:
a page of a list or an export does not say which of a centre's patients it held), one user name
and a time range. Every source is read in time order in chunks and the sources are merged, so
memory stays flat however long the trail.
"""
import csv
import datetime
import heapq
import json
import re
from dataclasses import dataclass
from itertools import islice

from axes.models import AccessFailureLog, AccessLog
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from registry.dictionary import BOOKKEEPING, TABLE_MODELS
from registry.models import ExportLog, FieldVerification, ImportRun, QueryMessage, SecurityEvent, Signature
from registry.security.audit import EVERY_CENTRE, centre_of
from registry.transfer.exporting.writers import neutral

COLUMNS = ("at", "kind", "event", "user", "ip_address", "what", "patient_id", "centres", "rows", "source",
           "record", "changes", "detail")
CHUNK = 1000  # rows read per query, and written per piece of the download
ACTIONS = {"+": "created", "~": "changed", "-": "deleted"}
KINDS = {SecurityEvent.READ: "read", SecurityEvent.DENIED: "refused", SecurityEvent.THROTTLED: "refused",
         SecurityEvent.TOKEN_INVALID: "refused", SecurityEvent.IMPORT_REFUSED: "import"}


@dataclass(frozen=True)
class TrailFilter:
    """Which rows: one patient's (a pseudonym), one user name's, at or after `since` and before `until`."""

    patient_id: str = ""
    username: str = ""
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None

    def times(self, field):
        lookups = {f"{field}__gte": self.since, f"{field}__lt": self.until}
        return {lookup: moment for lookup, moment in lookups.items() if moment is not None}

    def as_dict(self):
        return {"patient_id": self.patient_id, "user": self.username,
                "since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None}


def _row(**values):
    """A row of the trail: every column in order, blank unless given (rows and changes: None)."""
    row = {**dict.fromkeys(COLUMNS, ""), "rows": None, "changes": None}
    row.update(values)
    return row


def _chunks(iterable, size=CHUNK):
    iterator = iter(iterable)
    while chunk := list(islice(iterator, size)):
        yield chunk


# --- clinical changes ---------------------------------------------------------------------------

def _tracked_fields(model):
    """The fields a change shows: the dictionary's and the record's status, without the record's
    own key and its patient (the row names both)."""
    return [f for f in model._meta.concrete_fields
            if (f.name not in BOOKKEEPING or f.name == "status") and not f.primary_key and f.name != "patient"]


def _changes(fields, version, before):
    """(field, before, after) of one version: every value a new record holds, every value a deleted
    one held, and the fields a change made differ from the version before it."""
    def values(row):
        return {f.name: getattr(row, f.attname) for f in fields}

    now = values(version)
    if version.history_type == "+":  # ({}: no missing-data codes)
        return [(name, None, value) for name, value in now.items() if value not in (None, "", {})]
    if version.history_type == "-":
        return [(name, value, None) for name, value in now.items() if value not in (None, "", {})]
    if before is None:  # the history of this record starts with a change (no earlier version kept)
        return []
    then = values(before)
    return [(name, then[name], value) for name, value in now.items() if then[name] != value]


def _history(table, model, filters):
    key = model._meta.pk.attname  # patient_id or id
    versions = model.history.filter(**filters.times("history_date"))
    if filters.patient_id:
        versions = versions.filter(patient_id=filters.patient_id)
    if filters.username:
        versions = versions.filter(history_user__username=filters.username)
    # The version before each one (any user, any time): a correlated lookup on the indexed key.
    earlier = (model.history.filter(**{key: OuterRef(key)}, history_id__lt=OuterRef("history_id"))
               .order_by("-history_id").values("history_id")[:1])
    versions = (versions.annotate(previous_id=Subquery(earlier)).select_related("history_user")
                .order_by("history_date", "history_id"))
    fields = _tracked_fields(model)
    for chunk in _chunks(versions.iterator(chunk_size=CHUNK)):
        before = model.history.in_bulk([v.previous_id for v in chunk if v.history_type == "~" and v.previous_id])
        for version in chunk:
            yield _row(at=version.history_date, kind="change", event=ACTIONS[version.history_type],
                       user=version.history_user.get_username() if version.history_user else "",
                       patient_id=version.patient_id, centres=centre_of(version.patient_id),
                       source=version.history_change_reason or "", record=f"{table} {getattr(version, key)}",
                       changes=_changes(fields, version, before.get(version.previous_id)))


# --- reads, refusals and security events ---------------------------------------------------------

def _covering(centre):
    """Reads without one patient whose scope included the centre (or every centre)."""
    return Q(event=SecurityEvent.READ, patient_id="") & (
        Q(centres=EVERY_CENTRE) | Q(centres__regex=rf"(^| ){re.escape(centre)}( |$)"))


def _events(filters):
    events = SecurityEvent.objects.filter(**filters.times("at"))
    if filters.username:
        events = events.filter(username=filters.username)
    if filters.patient_id:
        events = events.filter(Q(patient_id=filters.patient_id) | _covering(centre_of(filters.patient_id)))
    for event in events.order_by("at", "pk").iterator(chunk_size=CHUNK):
        yield _row(at=event.at, kind=KINDS.get(event.event, "security"), event=event.event, user=event.username,
                   ip_address=event.ip_address or "", what=event.what, patient_id=event.patient_id,
                   centres=event.centres, rows=event.rows, detail=" ".join(
                       part for part in (str(event.status or ""), event.detail) if part))


def _exports(filters):
    exports = ExportLog.objects.filter(**filters.times("created_at"))
    if filters.username:
        exports = exports.filter(username=filters.username)
    if filters.patient_id:
        exports = exports.filter(scope__in=["", centre_of(filters.patient_id)])
    for export in exports.order_by("created_at", "pk").iterator(chunk_size=CHUNK):
        yield _row(at=export.created_at, kind="read", event="dataset-export", user=export.username,
                   what="export", centres=export.scope or EVERY_CENTRE, rows=export.counts.get("patients"),
                   detail=f"{export.file_format}, de-identification {export.deidentify}, "
                          f"data version {export.data_version}")


def _query_messages(filters):
    messages = QueryMessage.objects.filter(**filters.times("created_at")).select_related("query")
    if filters.username:
        messages = messages.filter(username=filters.username)
    if filters.patient_id:
        messages = messages.filter(patient_id=filters.patient_id)
    for message in messages.order_by("created_at", "pk").iterator(chunk_size=CHUNK):
        query = message.query
        yield _row(at=message.created_at, kind="query", event=message.action, user=message.username,
                   ip_address=message.ip_address or "", what=f"query {query.pk}", patient_id=message.patient_id,
                   centres=query.centre_id, source=message.system_note,
                   record=f"{query.table} {query.record_pk}" + (f" {query.field}" if query.field else ""),
                   detail=" ".join(part for part in (
                       f"version {message.record_version}" if message.record_version else "", message.text) if part))


def _imports(filters):
    imports = ImportRun.objects.filter(**filters.times("finished_at"))
    if filters.username:
        imports = imports.filter(username=filters.username)
    for run in imports.order_by("finished_at", "pk").iterator(chunk_size=CHUNK):
        yield _row(at=run.finished_at, kind="import", event="import", user=run.username, what="import",
                   rows=run.rows, detail=f"{run.file_name}, sha256 {run.sha256}")


def _of_patient(queryset, field, filters):
    """A log naming patients, in time order, filtered by patient, user name and time."""
    queryset = queryset.filter(**filters.times(field))
    if filters.username:
        queryset = queryset.filter(username=filters.username)
    if filters.patient_id:
        queryset = queryset.filter(patient_id=filters.patient_id)
    return queryset.order_by(field, "pk").iterator(chunk_size=CHUNK)


def _signatures(filters):
    for signature in _of_patient(Signature.objects.all(), "signed_at", filters):
        yield _row(at=signature.signed_at, kind="signature", event="signed", user=signature.username,
                   ip_address=signature.ip_address or "", what=signature.source, patient_id=signature.patient_id,
                   centres=signature.centre, rows=signature.records,
                   detail=f"sha256 {signature.data_hash}: {signature.meaning}")


def _verifications(filters):
    for row in _of_patient(FieldVerification.objects.all(), "verified_at", filters):
        yield _row(at=row.verified_at, kind="verification", event="field-verified", user=row.username,
                   patient_id=row.patient_id, centres=centre_of(row.patient_id),
                   record=f"{row.table} {row.record_pk}", detail=f"{row.field} = {row.value}")


def _sign_ins(model, field, event, filters):
    logs = model.objects.filter(**filters.times(field), **{f"{field}__isnull": False})
    if filters.username:
        logs = logs.filter(username=filters.username)
    for log in logs.order_by(field, "pk").iterator(chunk_size=CHUNK):
        locked = getattr(log, "locked_out", False)
        yield _row(at=getattr(log, field), kind="security", event=event, user=log.username or "",
                   ip_address=log.ip_address or "", detail="account locked" if locked else "")


def trail_rows(filters):
    """Every row of the trail that passes the filters, oldest first."""
    sources = [_history(table, model, filters) for table, model in TABLE_MODELS.items()]
    sources += [_events(filters), _exports(filters), _signatures(filters), _verifications(filters),
                _query_messages(filters)]
    if not filters.patient_id:  # imports and sign-ins concern no one patient
        sources += [_imports(filters), _sign_ins(AccessLog, "attempt_time", "signed-in", filters),
                    _sign_ins(AccessLog, "logout_time", "signed-out", filters),
                    _sign_ins(AccessFailureLog, "attempt_time", "sign-in-failed", filters)]
    return heapq.merge(*sources, key=lambda row: row["at"])


# --- the download -------------------------------------------------------------------------------

def _shown(value):
    if value is None or value == "":
        return "—"
    if isinstance(value, dict):  # the missing-data codes, {column: code}
        return json.dumps(value, sort_keys=True)
    return value.isoformat() if isinstance(value, datetime.date) else str(value)


def _csv_cells(row):
    changes = "; ".join(f"{name}: {_shown(old)} → {_shown(new)}" for name, old, new in row["changes"] or ())
    cells = {**row, "at": _moment(row["at"]), "changes": changes, "rows": "" if row["rows"] is None else row["rows"]}
    return [neutral(str(cells[column])) for column in COLUMNS]


class _Line:
    """A file-like object that hands back what csv.writer writes (one line at a time)."""

    def write(self, text):
        return text


def csv_pieces(filters, limit, counter):
    """The trail as CSV text, in pieces of CHUNK lines; a last line says when `limit` cut it.
    `counter` (a list) receives the number of rows written, also when the download stops early."""
    writer = csv.writer(_Line())
    yield "\ufeff" + writer.writerow(COLUMNS)  # the BOM: Excel reads the file as UTF-8
    for chunk in _chunks(_limited(trail_rows(filters), limit, counter)):
        yield "".join(writer.writerow(_csv_cells(row)) if row else writer.writerow(_truncated_cells(limit))
                      for row in chunk)


def _truncated_cells(limit):
    return [""] * (len(COLUMNS) - 1) + [f"truncated: more than {limit} rows match; narrow the filters"]


def _json_row(row):
    changes = [{"field": name, "before": old, "after": new} for name, old, new in row["changes"] or ()]
    return {**row, "at": _moment(row["at"]), "changes": changes if row["kind"] == "change" else None}


def _moment(at):
    """A time in the registry's time zone, to the microsecond, with its offset."""
    return timezone.localtime(at).isoformat()


def json_pieces(filters, limit, counter):
    """The trail as one JSON object {"filters", "rows": [...], "truncated"}, in pieces."""
    yield '{"filters": ' + json.dumps(filters.as_dict()) + ', "rows": [\n'
    truncated, first = False, True
    for chunk in _chunks(_limited(trail_rows(filters), limit, counter)):
        lines = []
        for row in chunk:
            if row is None:
                truncated = True
                continue
            lines.append(("" if first else ",\n") + json.dumps(_json_row(row), cls=DjangoJSONEncoder,
                                                               ensure_ascii=False))
            first = False
        yield "".join(lines)
    yield '\n], "truncated": ' + json.dumps(truncated) + "}\n"


def _limited(rows, limit, counter):
    """At most `limit` rows, then None if there were more; counts them in counter[0]."""
    for row in rows:
        if counter[0] == limit:
            yield None
            return
        counter[0] += 1
        yield row
