"""Queries (data clarification requests): the only writer of Query and QueryMessage.

A query asks about one field of one clinical record. A monitor or a coordinator raises it, or the
system does when a soft check (registry.soft_checks) fires; the centre's nurse answers it, with a
message or by correcting the field (the answer then names the record version the change created);
a monitor closes it, or reopens it when the answer does not settle it. Who may make which move is
registry.access (QUERY_MOVES). Every step is one QueryMessage (who, when, from where, what), an
append-only audit row.

The soft checks are kept in step with the data by every writer of clinical records: after a save or
a deletion (services.records) the case's findings before and after are compared in memory, and only
when they differ are the patient's queries read (one query) and changed: a finding with no pending
query opens one, a soft-check query whose finding is gone is closed by the system (unless the nurse
has answered it: the monitor decides then). A query a person closed while the value still fires is
a decision on that value: the same check is not raised on the same field again. The bulk import and
cases_create sync whole batches of cases set-based (`cases_checks_sync`), and `manage.py
soft_checks_sync` syncs every case, for the checks that fire as time passes (no contact).
"""
import datetime
from decimal import Decimal
from itertools import islice

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from registry import access, rules, soft_checks
from registry.cases import TABLE_OF, assemble, centre_of
from registry.dictionary import TABLE_MODELS
from registry.models import Patient, Query, QueryMessage
from registry.selectors import stored_records
from registry.services.seals import seal_on_commit

TEXT_MAX_LENGTH = 2000
CHUNK = 5000  # patients per read (SQLite caps the parameters of one query)
MOVE_LABELS = {"answer": gettext_lazy("answered"), "close": gettext_lazy("closed"), "reopen": gettext_lazy("reopened")}


# --- what a query is about -------------------------------------------------------------------

def queryable_fields(model):
    """The fields of a record a query may ask about: those a person enters."""
    return [f.name for f in model._meta.concrete_fields
            if f.editable and not f.primary_key and f.name not in ("patient", "centre")]


def value_text(value):
    """A value as a query message keeps it: as stored, '' for unknown (dates ISO, numbers plain)."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)[:200]


def field_value(record, field):
    if not field:
        return None
    return getattr(record, type(record)._meta.get_field(field).attname)


def record_of(query):
    """The record a query asks about, or None once it is deleted."""
    model = TABLE_MODELS[query.table]
    return model.objects.filter(pk=query.record_pk).first()


def _text(text, *, required):
    text = (text or "").strip()
    if required and not text:
        raise ValidationError({"text": _("Write a message.")})
    if len(text) > TEXT_MAX_LENGTH:
        raise ValidationError({"text": _("Keep the message to %(n)s characters.") % {"n": TEXT_MAX_LENGTH}})
    if "\x00" in text:
        raise ValidationError({"text": _("The message holds a character that cannot be stored.")})
    return text


def _message(query, *, user, action, text="", note="", value="", version=None, ip_address=None):
    author = access.audit_user(user)
    return QueryMessage(query=query, patient_id=query.patient_id, author=author,
                        username=author.get_username() if author else "", action=action, text=text,
                        system_note=note, value=value, record_version=version, ip_address=ip_address)


def _locked(query):
    """The query as stored, its row locked until the commit (no two moves at once)."""
    return Query.objects.select_for_update().get(pk=query.pk)


def _require_move(user, query, move):
    """PermissionDenied when the user's role may not make the move; ValidationError when nobody
    may make it from the query's state."""
    if move in access.query_moves(user, query.centre_id, query.state):
        return
    described = {"query": query.pk, "state": query.get_state_display(), "move": MOVE_LABELS[move]}
    if move in access.query_moves(access.SYSTEM, query.centre_id, query.state):
        raise PermissionDenied(_("Your role may not have query %(query)s %(move)s.") % described)
    raise ValidationError({"state": _("Query %(query)s is %(state)s: it cannot be %(move)s.") % described})


def _step(query, user, state):
    query.state = state
    query.updated_by = access.audit_user(user)
    query.save(update_fields=["state", "updated_by", "updated_at"])


# --- the moves -------------------------------------------------------------------------------

@transaction.atomic
def query_raise(*, user, record, field, text, ip_address=None):
    """Raise a query on `field` of a stored record (a monitor of its centre, or a coordinator);
    returns the query. The message keeps the field's value as it stands."""
    centre = centre_of(record)
    if not access.can_raise_query(user, centre):
        raise PermissionDenied(_("Only a monitor of the centre or a coordinator may raise a query."))
    model = type(record)
    if model not in TABLE_OF or record.pk is None or record._state.adding:
        raise ValidationError(_("A query asks about a stored record."))
    if field not in queryable_fields(model):
        raise ValidationError({"field": _("%(record)s has no field %(field)s.") % {
            "record": rules.describe(record), "field": field}})
    text = _text(text, required=True)
    author = access.audit_user(user)
    query = Query.objects.create(patient_id=record.patient_id, centre_id=centre, table=TABLE_OF[model],
                                 record_pk=str(record.pk), field=field, raised_by=author, updated_by=author)
    _message(query, user=user, action=QueryMessage.RAISE, text=text, value=value_text(field_value(record, field)),
             ip_address=ip_address).save()
    return query


@transaction.atomic
def query_answer(*, user, query, text, record_version=None, ip_address=None):
    """Answer a query with a message (the centre's nurse, or a coordinator). `record_version` names
    a change of the record already saved (e.g. through the API) that answers it: it must be a
    version of that record that changed the queried field."""
    query = _locked(query)
    _require_move(user, query, "answer")
    value = ""
    if record_version is not None:
        value = _changed_in_version(query, record_version)
    text = _text(text, required=record_version is None)
    _step(query, user, Query.ANSWERED)
    _message(query, user=user, action=QueryMessage.ANSWER, text=text, value=value, version=record_version,
             ip_address=ip_address).save()
    return query


def _changed_in_version(query, version):
    """The queried field's value in `version` of the record; ValidationError unless that version
    exists and changed the field (any field for a query about the whole record)."""
    model = TABLE_MODELS[query.table]
    key = model._meta.pk.attname
    rows = {row.version: row for row in model.history.filter(**{key: query.record_pk}, version__in=[version - 1,
                                                                                                    version])}
    changed = version in rows and rows[version].history_type == "~" and version - 1 in rows
    if changed and query.field:
        attname = model._meta.get_field(query.field).attname
        changed = getattr(rows[version], attname) != getattr(rows[version - 1], attname)
    if not changed:
        raise ValidationError({"record_version": _(
            "Version %(version)s of the record is not a change of the queried field.") % {"version": version}})
    return value_text(field_value(rows[version], query.field))


@transaction.atomic
def query_answer_by_edit(*, user, query, record, expected_version=None, reason=None, text="", source="web",
                         ip_address=None):
    """Save a corrected record through services.records (its rules, lock, version and reason) and
    answer the query with that change, in one transaction; returns the saved record. The queried
    field must be among the changes (StaleRecordError, RecordLocked and ValidationError as for any
    save: then nothing is written)."""
    Patient.objects.select_for_update().filter(pk=query.patient_id).first()  # the case first, as every write
    query = _locked(query)
    _require_move(user, query, "answer")
    if TABLE_OF.get(type(record)) != query.table or str(record.pk) != query.record_pk:
        raise ValidationError(_("Query %(query)s asks about another record.") % {"query": query.pk})
    text = _text(text, required=False)
    before = record.version
    if query.field:
        attname = type(record)._meta.get_field(query.field).attname
        stored = type(record).objects.filter(pk=record.pk).values_list(attname, flat=True).first()
        if stored == getattr(record, attname):
            raise ValidationError({query.field: _("The query asks about this field: correct it, or answer the "
                                                  "query with a message if the value is right.")})
    # Answered before the save: the soft checks leave an answered query to the monitor.
    _step(query, user, Query.ANSWERED)
    from registry.services.records import record_save  # records calls back into this module

    saved = record_save(user=user, record=record, expected_version=expected_version, source=source, reason=reason)
    if saved.version == before:
        raise ValidationError(_("Nothing was changed: correct the value, or answer the query with a message."))
    _message(query, user=user, action=QueryMessage.ANSWER, text=text or (reason or "").strip(),
             value=value_text(field_value(saved, query.field)), version=saved.version, ip_address=ip_address).save()
    return saved


@transaction.atomic
def query_close(*, user, query, text="", ip_address=None):
    """Close a query (a monitor of the centre, or a coordinator): answered, or withdrawn."""
    query = _locked(query)
    _require_move(user, query, "close")
    _step(query, user, Query.CLOSED)
    _message(query, user=user, action=QueryMessage.CLOSE, text=_text(text, required=False),
             ip_address=ip_address).save()
    return query


@transaction.atomic
def query_reopen(*, user, query, text, ip_address=None):
    """Reopen an answered or closed query (a monitor of the centre, or a coordinator), saying why."""
    query = _locked(query)
    _require_move(user, query, "reopen")
    text = _text(text, required=True)
    _step(query, user, Query.REOPENED)
    _message(query, user=user, action=QueryMessage.REOPEN, text=text, ip_address=ip_address).save()
    return query


# --- soft checks -----------------------------------------------------------------------------

def _key(table, pk, field, check):
    return (table, str(pk), field, check)


def _query_key(query):
    return _key(query.table, query.record_pk, query.field, query.check_code)


def _findings(case, today):
    if case is None:
        return {}
    return {_key(TABLE_OF[type(f.record)], f.record.pk, f.field, f.check): f
            for f in soft_checks.findings(case, today=today)}


def case_checks_sync(*, before, after, deleted=(), today=None):
    """Keep one patient's soft-check queries in step with a write (services.records calls it after
    the write, under the patient's lock). `before` and `after` are the case as stored before and
    after (None: no patient), `deleted` the records the write deleted, whose pending queries close.
    Writes nothing, and reads nothing, when the findings did not change and nothing was deleted."""
    today = today or datetime.date.today()
    old, new = _findings(before, today), _findings(after, today)
    if old.keys() == new.keys() and not deleted:
        return
    patient_id = (after or before).patient.patient_id
    gone = {(TABLE_OF[type(record)], str(record.pk)) for record in deleted}
    _sync({patient_id: new}, _known_queries([patient_id]), gone=gone, after={patient_id: after})


def cases_checks_sync(cases, *, today=None):
    """The soft-check queries of many cases at once (an import, cases_create, the periodic sync): a
    fixed number of statements per CHUNK patients (a read of their queries, and the inserts and
    updates of those that change), none per record."""
    today = today or datetime.date.today()
    cases = iter(cases)
    while chunk := list(islice(cases, CHUNK)):
        found = {case.patient.patient_id: _findings(case, today) for case in chunk}
        _sync(found, _known_queries(list(found)), after={case.patient.patient_id: case for case in chunk})


def _known_queries(patient_ids):
    """The patients' queries that a sync must know: every pending one (a deleted record's close, of
    any origin), and the soft-check ones a person closed (their check is not raised again)."""
    return list(Query.objects.filter(patient_id__in=patient_ids).filter(
        ~Q(state=Query.CLOSED) | Q(origin=Query.SOFT_CHECK, updated_by__isnull=False)))


def _current_value(after, query):
    """The queried field's value in the case after the write, as message text."""
    if after is None or not query.field:
        return ""
    model = TABLE_MODELS[query.table]
    record = next((r for r in after.records() if type(r) is model and str(r.pk) == query.record_pk), None)
    return value_text(field_value(record, query.field)) if record is not None else ""


def _sync(found, known, *, gone=frozenset(), after=None):
    """Open a query for each finding of `found` ({patient id: {key: Finding}}) that `known` (the
    patients' queries, from _known_queries) does not cover; close the pending queries of `gone`
    records ({(table, pk)}) and the open soft-check queries whose finding is gone."""
    after = after or {}
    covered, closing = set(), {}
    for query in known:
        if query.pending and (query.table, query.record_pk) in gone:
            closing[query.pk] = (query, QueryMessage.RECORD_DELETED, "")
        elif query.origin == Query.SOFT_CHECK:
            covered.add(_query_key(query))
            if query.state in (Query.OPEN, Query.REOPENED) and _query_key(query) not in found.get(query.patient_id, {}):
                closing[query.pk] = (query, QueryMessage.PLAUSIBLE, _current_value(after.get(query.patient_id), query))
    opening = [(key, finding) for findings in found.values() for key, finding in findings.items() if key not in covered]
    messages = []
    if closing:
        Query.objects.filter(pk__in=list(closing)).update(state=Query.CLOSED, updated_by=None, updated_at=timezone.now())
        messages += [_message(query, user=None, action=QueryMessage.CLOSE, note=note, value=value)
                     for query, note, value in closing.values()]
    if opening:
        created = Query.objects.bulk_create([
            Query(patient_id=finding.record.patient_id, centre_id=centre_of(finding.record), table=key[0],
                  record_pk=key[1], field=key[2], origin=Query.SOFT_CHECK, check_code=key[3])
            for key, finding in opening])
        messages += [_message(query, user=None, action=QueryMessage.RAISE, note=QueryMessage.FIRED,
                              value=value_text(finding.value)) for query, (_key_, finding) in zip(created, opening)]
    if messages:
        QueryMessage.objects.bulk_create(messages)
        seal_on_commit([QueryMessage])  # bulk_create sends no post_save: the audit rows ask for their seal


def import_checks_sync(creates, updates):
    """The soft-check queries of every patient an import wrote (services.bulk.import_write): the new
    patients' cases are the import's own records; the others' are read back once, in chunks."""
    new_patients = {patient.patient_id: patient for patient in creates["patients"]}
    records = {pid: [] for pid in new_patients}
    touched = set()
    for table in TABLE_MODELS:
        for record in creates[table]:
            if record.patient_id in new_patients:
                if not isinstance(record, Patient):
                    records[record.patient_id].append(record)
            else:
                touched.add(record.patient_id)
        touched.update(record.patient_id for record, _names in updates[table])
    cases_checks_sync([assemble(patient, records[pid]) for pid, patient in new_patients.items()])
    cases_checks_sync(stored_cases(sorted(touched)))


def stored_cases(patient_ids, *, lock=False):
    """The stored cases of these patients, read a chunk at a time (four queries per chunk)."""
    for start in range(0, len(patient_ids), CHUNK):
        patients, tumours, children = stored_records(patient_ids[start:start + CHUNK], lock=lock)
        for pid, patient in patients.items():
            tumour = tumours.get(pid)
            yield assemble(patient, [*([tumour] if tumour else []),
                                     *(r for table in ("metastasectomies", "systemic_therapies", "follow_up")
                                       for r in children[table].get(pid, []))])
