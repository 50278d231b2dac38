"""How records read on the pages: labels, code labels, the columns each page shows, and the
audit trail as a list of changes. Pure reading; no access checks (callers pass readable rows)."""
import datetime
from decimal import Decimal

from django.utils.text import capfirst
from django.utils.translation import gettext as _

from registry import codes, rules
from registry.models import FollowUp, Metastasectomy, Patient, PrimaryTumour, SystemicTherapy

AUDIT_IGNORED = ("version", "created_at", "updated_at")
MISSING_LABELS = dict(codes.MISSING_CODES)

# What the patient page shows of each record type, in this order.
COLUMNS = {
    Patient: ("centre", "sex", "birth_year", "histology", "lung_mets_diagnosis_date",
              "extrapulmonary_disease_at_pm", "ecog"),
    PrimaryTumour: ("diagnosis_date", "site", "size_mm", "depth", "grade", "surgery_date", "margin",
                    "radiotherapy", "radiotherapy_end_date", "local_recurrence_before_pm"),
    Metastasectomy: ("surgery_date", "side", "approach", "resection_type", "lesions_resected",
                     "max_lesion_diameter_mm", "diameter_source", "margin", "lymph_node_sampling",
                     "clavien_dindo", "hospital_stay_days"),
    SystemicTherapy: ("start_date", "end_date", "regimen", "intent", "cycles", "best_response"),
    FollowUp: ("event_date", "event", "recurrence_site", "cause_of_death"),
}


def label(model, column):
    return capfirst(model._meta.get_field(column).verbose_name)


def shown(model, column, value):
    """A stored value as a person reads it: code labels, yes/no, ISO dates, '—' for unknown."""
    field = model._meta.get_field(column)
    if value is None or value == "":
        return "—"
    if field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def missing_code(record, column):
    """The missing-data code of a column of a record or of one of its history rows (None without)."""
    return (getattr(record, "missing_codes", None) or {}).get(column)


def shown_in(model, record, column):
    """A column of a record (or history row) as a person reads it: the label of its missing-data code
    ("Unknown") where it has one, else its value."""
    code = missing_code(record, column)
    if code:
        return str(MISSING_LABELS.get(code, code))
    return shown(model, column, getattr(record, model._meta.get_field(column).attname))


# The metastasectomy table leaves out two minor columns so it fits a laptop screen.
TABLE_COLUMNS = {
    Metastasectomy: tuple(c for c in COLUMNS[Metastasectomy] if c not in ("diameter_source", "lymph_node_sampling")),
}


def cells(record, columns=None):
    model = type(record)
    return [shown_in(model, record, column) for column in columns or COLUMNS[model]]


def headers(model, columns=None):
    return [label(model, column) for column in columns or COLUMNS[model]]


def details(record):
    """(label, value) pairs of one record, for definition lists."""
    return list(zip(headers(type(record)), cells(record)))


def months_between(start, end):
    return round((end - start).days / (365.25 / 12), 1)


def history_entries(patient_id):
    """Every audited change to the patient and its records, newest first (one query per table)."""
    entries = []
    for model in COLUMNS:
        rows = (model.history.filter(patient_id=patient_id).select_related("history_user")
                .order_by("history_date", "history_id"))
        previous = {}
        for row in rows:
            key = row.patient_id if model is Patient else row.id
            entries.append(history_entry(model, row, previous.get(key)))
            previous[key] = row
    entries.sort(key=lambda entry: entry["date"], reverse=True)
    return entries


SOURCES = ("web", "api", "admin")


def source_and_reason(change_reason):
    """A change reason as the services write it ("web: why") → ("web", "why"); an import's is its
    file ("import FILE"), which is its reason too."""
    source, _sep, reason = (change_reason or "").partition(": ")
    return (source, reason) if source in SOURCES and reason else (change_reason or "", "")


def history_entry(model, row, before):
    if row.history_type == "~" and before is not None:
        # A missing-data code reads as the value of its column: "—" → "Unknown", not a change of codes.
        delta = row.diff_against(before, excluded_fields=(*AUDIT_IGNORED, "missing_codes"))
        changed = [c.field for c in delta.changes]
        changed += [column for column in model.codable_fields()
                    if missing_code(before, column) != missing_code(row, column) and column not in changed]
        changes = [(label(model, column), shown_in(model, before, column), shown_in(model, row, column))
                   for column in changed]
        # The status is no form field (simple-history's diff leaves it out), but its moves belong here.
        if before.status != row.status:
            changes.append((label(model, "status"), shown(model, "status", before.status),
                            shown(model, "status", row.status)))
    elif row.history_type == "+":
        values = [(label(model, column), shown_in(model, row, column)) for column in COLUMNS[model]]
        changes = [(name, "", value) for name, value in values if value != "—"]
    else:
        changes = []
    restored = row.history_type == "+" and before is not None and before.history_type == "-"  # created again
    return {
        "date": row.history_date,
        "user": row.history_user.get_username() if row.history_user else _("system"),
        "action": _("restored") if restored else {"+": _("created"), "~": _("changed"), "-": _("deleted")}[
            row.history_type],
        "type": row.history_type,
        "record": rules.describe(row.instance),
        # web, api, admin, import <file>, bulk load; and the reason a change was given
        "source": source_and_reason(row.history_change_reason)[0],
        "reason": source_and_reason(row.history_change_reason)[1],
        "changes": changes,
    }
