"""content=log of the REDCap endpoint: the audit trail of the records the user may read, in the shape
of REDCap's logging export (newest first; ``timestamp``, ``username``, ``action``, ``details``,
``record``).

Every write of a clinical record is one version in its django-simple-history table; each becomes
one log entry:
- a new patient is ``Created Record <id>``, a deleted one ``Deleted Record <id>``;
- every other write is ``Updated Record <id>``: a new, changed or deleted primary tumour,
  metastasectomy, systemic therapy or follow-up event, whose details name the repeat instance
  (``[instance = 2]``) and list the fields a new record holds or a change made differ, as REDCap
  does (``side = 'left', margin = 'R1'``, REDCap field names and raw values);
- a record locked or unlocked is ``Lock/Unlock Record <id>``;
- the details end with the change's source and reason as the audit trail keeps them
  (``[web: typo in the date]``).
Filters as REDCap's: ``logtype`` (record, record_add, record_edit, record_delete, lock_record; the
other types — exports, sign-ins, user rights — are the registry's security log, not given here:
an empty list), ``user``, ``record``, ``dag`` (unique group name), ``beginTime`` / ``endTime``
(YYYY-MM-DD HH:MM, the server's time zone; at or after the beginning, before the end).
"""
from django.db.models import CharField, OuterRef, Q, Subquery
from django.db.models.functions import Cast

from registry import access
from registry.api.redcap_project import FIELDS, FORMS
from registry.api.redcap_protocol import RedcapError, local_minute, table_response, timestamp
from registry.models import Patient
from registry.security import audit

COLUMNS = ["timestamp", "username", "action", "details", "record"]
RECORD_TYPES = {"", "record", "record_add", "record_edit", "record_delete", "lock_record"}
OTHER_TYPES = {"export", "manage", "user", "page_view"}
ACTION_TYPES = {"Created": "record_add", "Updated": "record_edit", "Deleted": "record_delete",
                "Lock/Unlock": "lock_record"}
CHUNK = 1000


def export_log(request, post, fmt):
    logtype = post.get("logtype", "").strip()
    if logtype not in RECORD_TYPES | OTHER_TYPES:
        raise RedcapError('The value of the parameter "logtype" is not valid')
    begin, end = timestamp(post, "beginTime"), timestamp(post, "endTime")
    entries = []
    if logtype in RECORD_TYPES:
        scope = _scope(request.user, record=post.get("record", "").strip(), dag=post.get("dag", "").strip())
        if scope is not None:
            for form in FORMS:
                entries += _entries(form, scope, begin=begin, end=end, username=post.get("user", "").strip())
    if logtype not in ("", "record"):
        entries = [entry for entry in entries if ACTION_TYPES[entry[2]["action"].split(" ")[0]] == logtype]
    entries.sort(key=lambda entry: (entry[0], entry[1]), reverse=True)
    rows = [row for _moment, _order, row in entries]
    audit.log_read(request, patient_ids=[row["record"] for row in rows])
    return table_response(rows, COLUMNS, fmt)


def _scope(user, *, record, dag):
    """The condition on audit rows of the records the user may read (and the filters), or None."""
    codes = access.readable_centre_codes(user)
    if dag:
        code = dag.upper()
        if codes != access.ALL and code not in codes:
            return None
        codes = {code}
    if codes == access.ALL:
        scope = Q()
    elif not codes:
        return None
    else:
        # By the pseudonym, which names the centre: deleted patients' rows are found too.
        scope = Q(pk__in=[])
        for code in sorted(codes):
            scope |= Q(pseudonym__startswith=f"{code}-")
    return scope & Q(pseudonym=record) if record else scope


def _entries(form, scope, *, begin, end, username):
    """(time, audit row id, log row) of every version of the form's records in scope."""
    history = form.model.history
    key = form.model._meta.pk.attname  # patient_id or id
    # The record's fields as REDCap names them (its registry ID is in the record's own log).
    fields = [field for field in FIELDS if field.form is form and field.model_field is not None
              and not field.is_registry_id]
    # The pseudonym as text: a foreign key (the records') takes no startswith lookup.
    versions = history.annotate(pseudonym=Cast("patient_id", CharField())).filter(scope)
    if begin:
        versions = versions.filter(history_date__gte=begin)
    if end:
        versions = versions.filter(history_date__lt=end)
    if username:
        versions = versions.filter(history_user__username=username)
    # The version before each one (any user, any time): a correlated lookup on the indexed key.
    earlier = (history.filter(**{key: OuterRef(key)}, history_id__lt=OuterRef("history_id"))
               .order_by("-history_id").values("history_id")[:1])
    versions = versions.annotate(previous_id=Subquery(earlier)).select_related("history_user").order_by("history_id")
    chunk = []
    for version in versions.iterator(chunk_size=CHUNK):
        chunk.append(version)
        if len(chunk) == CHUNK:
            yield from _rows(form, fields, chunk)
            chunk = []
    yield from _rows(form, fields, chunk)


def _rows(form, fields, chunk):
    before = form.model.history.in_bulk([v.previous_id for v in chunk if v.history_type == "~" and v.previous_id])
    for version in chunk:
        row = {"timestamp": local_minute(version.history_date),
               "username": version.history_user.get_username() if version.history_user else "",
               **_describe(form, fields, version, before.get(version.previous_id)), "record": version.patient_id}
        yield version.history_date, version.history_id, row


def _value(field, version):
    value = field.export(getattr(version, field.model_field.attname))
    return f"{field.name} = '{value}'"


def _describe(form, fields, version, previous):
    """The action and details of one version."""
    pid, is_patient = version.patient_id, form.model is Patient
    parts = [f"[instance = {version.redcap_instance}]"] if form.repeating and version.redcap_instance else []
    action = f"Updated Record {pid}"
    if version.history_type == "+":
        action = f"Created Record {pid}" if is_patient else action
        parts += [_value(field, version) for field in fields if getattr(version, field.model_field.attname) not in (None, "")]
    elif version.history_type == "-":
        action = f"Deleted Record {pid}" if is_patient else action
        parts.append(f"Deleted the data of {form.name}")
    elif previous is not None:
        parts += [_value(field, version) for field in fields
                  if getattr(version, field.model_field.attname) != getattr(previous, field.model_field.attname)]
        if version.status != previous.status:
            if "locked" in (version.status, previous.status):
                action = f"Lock/Unlock Record {pid}"
                parts.append(f"{'Lock' if version.status == 'locked' else 'Unlock'} {form.name}")
            else:
                parts.append(f"record status = '{version.status}'")
    details = ", ".join(parts)
    if version.history_change_reason:
        details = f"{details} [{version.history_change_reason}]".strip()
    return {"action": action, "details": details}
