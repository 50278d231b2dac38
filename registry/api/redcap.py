"""A REDCap-compatible export endpoint (/redcap/api/), so statisticians' PyCap and REDCapR scripts
read the registry unchanged: ``Project("https://…/redcap/api/", token).export_records()``.

It speaks the export half of the REDCap API protocol: ``POST`` form fields ``token`` (a REDCap
token of registry.api.models: 32 hexadecimal characters), ``content``, ``format`` (json, csv),
``returnFormat`` (the format of error messages), and for records ``type=flat``, ``records``,
``fields``, ``forms`` (each as ``name[]``, ``name[0]``… or comma-separated), ``rawOrLabel`` and
``rawOrLabelHeaders``. Imports are refused: data enter through the web app, the import or /api/v1/.

The registry is presented as a classic (non-longitudinal) REDCap project:
- one instrument per table of the data dictionary (registry.api.redcap_project); `patients` and
  `primary_tumours` are non-repeating, `metastasectomies`, `systemic_therapies` and `follow_up` are
  repeating instruments
  (rows with ``redcap_repeat_instrument`` / ``redcap_repeat_instance``; instances are numbered
  1, 2, … by date within each patient, so instance 1 of metastasectomies is the index operation);
- the record ID field is ``patient_id``, the first field of the first instrument;
- field names are the dictionary's column names, except two that REDCap's single namespace of
  field names would make clash with the metastasectomy's: primary_tumours.surgery_date and
  primary_tumours.margin are ``primary_surgery_date`` and ``primary_margin`` (`field_annotation`
  of every field names its dictionary column);
- codes are exported raw as stored (``rawOrLabel=label``: their labels), booleans as REDCap's
  yesno 1/0, dates as YYYY-MM-DD, blanks as "";
- missing-data codes are REDCap's project-wide "missing data codes" (project info
  ``missing_data_codes``: UNK, ND, NA): a field with one exports the code instead of its value
  (``rawOrLabel=label``: its label), and the metadata tags every required field ``@NOMISSING``;
- ``formEventMapping``, ``event`` and ``arm`` answer with REDCap's error for classic projects,
  which is how clients tell a classic project from a longitudinal one.
Records are those the token's user may read (registry.access), as in the web app; every export
of records is recorded (registry.security.audit).
"""
import csv
import io
from xml.sax.saxutils import escape

from django.http import HttpResponse, JsonResponse
from django.utils.text import capfirst
from drf_spectacular.utils import extend_schema
from rest_framework import authentication, exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from registry import access
from registry.api.authentication import authenticate_key
from registry.api.models import REDCAP
from registry.api.redcap_project import (
    COMPLETE,
    FIELDS,
    FIELDS_BY_NAME,
    FORMS,
    FORMS_BY_NAME,
    INSTANCE_ORDER,
    METADATA_COLUMNS,
    MISSING_DATA_CODES,
    RECORD_ID,
    REDCAP_VERSION,
    metadata_row,
)
from registry.api.throttling import TokenRateThrottle, UserRateThrottle
from registry.models import Patient
from registry.security import audit
from registry.transfer.exporting.writers import neutral

# --- the protocol ------------------------------------------------------------------------------

class RedcapError(Exception):
    def __init__(self, message, status=400):
        super().__init__(message)
        self.message, self.status = message, status


def param_list(post, name):
    """An array parameter as REDCap accepts it: name[]=a&name[]=b, name[0]=a&name[1]=b or name=a,b."""
    values = list(post.getlist(f"{name}[]"))
    indexed = sorted((key for key in post if key.startswith(f"{name}[") and key[len(name) + 1:-1].isdigit()),
                     key=lambda key: int(key[len(name) + 1:-1]))
    values += [post[key] for key in indexed]
    values += [item for value in post.getlist(name) for item in value.split(",")]
    return [value.strip() for value in values if value.strip()]


def error_format(post):
    return post.get("returnFormat") or post.get("format") or "xml"


def error_response(message, *, fmt, status=400):
    if fmt == "json":
        return JsonResponse({"error": message}, status=status)
    if fmt == "csv":
        return HttpResponse(f"ERROR: {message}", status=status, content_type="text/csv; charset=utf-8")
    return HttpResponse(f'<?xml version="1.0" encoding="UTF-8" ?>\n<hash>\n  <error>{escape(message)}</error>\n</hash>',
                        status=status, content_type="text/xml; charset=utf-8")


def table_response(rows, columns, fmt, *, headers=None, single=False):
    """Rows as REDCap's JSON (a list, or one object for project info) or CSV (header line first)."""
    if fmt == "json":
        return JsonResponse(rows[0] if single else rows, safe=False, json_dumps_params={"ensure_ascii": False})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(headers or columns)
    # Text a spreadsheet would run as a formula is made inert, as in the dataset export.
    writer.writerows([[neutral(row.get(column, "")) for column in columns] for row in rows])
    return HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")


def centre_names(user):
    return dict(access.centres_readable(user).values_list("code", "name"))


def export_metadata(request, post, fmt):
    fields = selected_fields(post, with_complete=False)
    centres = centre_names(request.user)
    return table_response([metadata_row(field, centres) for field in fields], METADATA_COLUMNS, fmt)


def export_field_names(request, post, fmt):
    ordered = []  # instrument order: a form's _complete field follows its fields
    for form in FORMS:
        ordered += [field.name for field in FIELDS if field.form is form] + [f"{form.name}_complete"]
    if post.get("field"):
        if post["field"] not in ordered:
            raise RedcapError(f'The field "{post["field"]}" does not exist')
        ordered = [post["field"]]
    rows = [{"original_field_name": name, "choice_value": "", "export_field_name": name} for name in ordered]
    return table_response(rows, ["original_field_name", "choice_value", "export_field_name"], fmt)


def export_instruments(request, post, fmt):
    rows = [{"instrument_name": form.name, "instrument_label": form.label} for form in FORMS]
    return table_response(rows, ["instrument_name", "instrument_label"], fmt)


def export_repeating(request, post, fmt):
    rows = [{"form_name": form.name, "custom_form_label": ""} for form in FORMS if form.repeating]
    return table_response(rows, ["form_name", "custom_form_label"], fmt)


def export_project(request, post, fmt):
    info = {
        "project_id": 1, "project_title": "Sarcoma PM registry", "creation_time": "", "production_time": "",
        "in_production": 1, "project_language": "English", "purpose": 2, "purpose_other": "",
        "project_notes": "Pseudonymised registry of pulmonary metastasectomy for soft-tissue sarcoma; "
                         "read-only REDCap-compatible export.",
        "custom_record_label": "", "secondary_unique_field": "", "is_longitudinal": 0,
        "has_repeating_instruments_or_events": 1, "surveys_enabled": 0, "scheduling_enabled": 0,
        "record_autonumbering_enabled": 0, "randomization_enabled": 0, "ddp_enabled": 0,
        "project_irb_number": "", "project_grant_number": "", "project_pi_firstname": "",
        "project_pi_lastname": "", "display_today_now_button": 1, "missing_data_codes": MISSING_DATA_CODES,
        "external_modules": "", "bypass_branching_erase_field_prompt": 0,
    }
    return table_response([info], list(info), fmt, single=True)


def selected_fields(post, *, with_complete=True):
    """The fields (and `<form>_complete` names) requested by fields[] / forms[], in instrument order."""
    fields, forms = param_list(post, "fields"), param_list(post, "forms")
    completes = {f"{form.name}_complete": form for form in FORMS}
    unknown = [name for name in fields if name not in FIELDS_BY_NAME and not (with_complete and name in completes)]
    if unknown:
        raise RedcapError('The following values in the parameter "fields" are not valid: '
                          + ", ".join(f'"{name}"' for name in unknown))
    unknown = [name for name in forms if name not in FORMS_BY_NAME]
    if unknown:
        raise RedcapError('The following values in the parameter "forms" are not valid: '
                          + ", ".join(f'"{name}"' for name in unknown))
    if not fields and not forms:
        wanted = {field.name for field in FIELDS} | (set(completes) if with_complete else set())
    else:
        wanted = set(fields) | {field.name for field in FIELDS if field.form.name in forms}
        if with_complete:
            wanted |= {f"{name}_complete" for name in forms}
    ordered = []
    for form in FORMS:
        ordered += [field for field in FIELDS if field.form is form and field.name in wanted]
        if with_complete and f"{form.name}_complete" in wanted:
            ordered.append(f"{form.name}_complete")
    return ordered


def export_records(request, post, fmt):
    rows, columns, headers = record_rows(request.user, post)
    audit.log_read(request, patient_ids=[row[RECORD_ID] for row in rows])
    return table_response(rows, columns, fmt, headers=headers)


def record_rows(user, post):
    """(rows, columns, header line or None) of a record export: the records the user may read."""
    if post.get("type", "flat") != "flat":
        raise RedcapError(f'type={post["type"]} is not supported: this registry exports records as type=flat.')
    for unsupported in ("filterLogic", "dateRangeBegin", "dateRangeEnd"):
        if post.get(unsupported):
            raise RedcapError(f'The parameter "{unsupported}" is not supported by this registry; '
                              "export the records and filter them in your script.")
    label = post.get("rawOrLabel", "raw") == "label"
    label_headers = post.get("rawOrLabelHeaders", "raw") == "label"
    gray = "" if post.get("exportBlankForGrayFormStatus", "").lower() == "true" else "0"
    selected = selected_fields(post)
    columns = [RECORD_ID, "redcap_repeat_instrument", "redcap_repeat_instance"]
    columns += [item if isinstance(item, str) else item.name for item in selected if item != FIELDS_BY_NAME[RECORD_ID]]
    fields_of = {form.name: [item for item in selected if not isinstance(item, str) and item.form is form]
                 for form in FORMS}
    complete_wanted = {form.name for form in FORMS if f"{form.name}_complete" in selected}
    centres = centre_names(user) if label else None

    patients = access.patients_readable(user)
    if record_ids := param_list(post, "records"):
        patients = patients.filter(pk__in=record_ids)
    in_scope = {"patient_id__in": patients.values("pk")}

    def load(form):
        needed = [field.column for field in fields_of[form.name]]
        if needed:
            needed.append("missing_codes")
        if form.model is Patient:
            return {row["patient_id"]: row for row in patients.order_by("patient_id").values(RECORD_ID, *needed)}
        if not needed and form.name not in complete_wanted:
            return {}
        order = ["patient_id", INSTANCE_ORDER[form.model], "id"] if form.repeating else ["patient_id"]
        grouped = {}
        for row in form.model.objects.filter(**in_scope).order_by(*order).values("patient_id", *needed):
            grouped.setdefault(row["patient_id"], []).append(row)
        return grouped

    tables = {form.name: load(form) for form in FORMS}

    def values(form, row):
        codes = row.get("missing_codes") or {}
        return {field.name: field.export(row[field.column], label=label, centres=centres, code=codes.get(field.column))
                for field in fields_of[form.name] if field.name != RECORD_ID}

    base_forms = [form for form in FORMS if not form.repeating]
    base_wanted = any(fields_of[f.name] or f.name in complete_wanted for f in base_forms) or not any(
        fields_of[f.name] or f.name in complete_wanted for f in FORMS if f.repeating)
    out = []
    for patient_id, patient in tables["patients"].items():
        if base_wanted:
            row = {RECORD_ID: patient_id, "redcap_repeat_instrument": "", "redcap_repeat_instance": ""}
            row.update(values(FORMS[0], patient))
            tumours = tables["primary_tumours"].get(patient_id, [])
            if tumours:
                row.update(values(FORMS[1], tumours[0]))
            for form in FORMS:
                if form.name in complete_wanted:
                    present = form.model is Patient or bool(tables[form.name].get(patient_id))
                    row[f"{form.name}_complete"] = "" if form.repeating else (COMPLETE if present else gray)
            out.append(row)
        for form in FORMS:
            if not form.repeating or not (fields_of[form.name] or form.name in complete_wanted):
                continue
            for instance, record in enumerate(tables[form.name].get(patient_id, []), start=1):
                row = {RECORD_ID: patient_id, "redcap_repeat_instrument": form.label if label else form.name,
                       "redcap_repeat_instance": str(instance)}
                row.update(values(form, record))
                if form.name in complete_wanted:
                    row[f"{form.name}_complete"] = COMPLETE
                out.append(row)
    out = [{column: row.get(column, "") for column in columns} for row in out]
    headers = None
    if label_headers:
        special = {RECORD_ID: "Patient ID", "redcap_repeat_instrument": "Repeat Instrument",
                   "redcap_repeat_instance": "Repeat Instance"}
        labels = {f.name: str(capfirst(f.model_field.verbose_name)) for f in FIELDS if f.model_field is not None}
        labels.update({f"{form.name}_complete": "Complete?" for form in FORMS})
        headers = [special.get(column) or labels.get(column, column) for column in columns]
    return out, columns, headers


def classic_project(message):
    def answer(request, post, fmt):
        raise RedcapError(message)
    return answer


CONTENT = {
    "record": export_records,
    "metadata": export_metadata,
    "exportFieldNames": export_field_names,
    "instrument": export_instruments,
    "project": export_project,
    "repeatingFormsEvents": export_repeating,
    "formEventMapping": classic_project("You cannot export form/event mappings for classic projects"),
    "event": classic_project("You cannot export events for classic projects"),
    "arm": classic_project("You cannot export arms for classic projects"),
}


# --- the view ----------------------------------------------------------------------------------

class RedcapTokenAuthentication(authentication.BaseAuthentication):
    """The `token` form field: a REDCap token of the user (32 hexadecimal characters)."""

    def authenticate(self, request):
        key = request.POST.get("token", "").strip().upper()
        return authenticate_key(request, key if len(key) == 32 else "", REDCAP,
                                "You do not have permissions to use the API")

    def authenticate_header(self, request):
        return "REDCap-token"


class FormatFieldNegotiation(DefaultContentNegotiation):
    """REDCap clients send any Accept header; the answer's format comes from the `format` field."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


@extend_schema(exclude=True)
class RedcapApiView(APIView):
    """POST /redcap/api/: the REDCap API protocol (exports only)."""

    authentication_classes = [RedcapTokenAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = [TokenRateThrottle, UserRateThrottle]
    parser_classes = [FormParser, MultiPartParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FormatFieldNegotiation

    def post(self, request):
        post = request.POST
        fmt = post.get("format", "xml")
        content = post.get("content", "")
        if post.get("data") is not None or post.get("action") in ("import", "delete"):
            raise RedcapError("This registry's REDCap endpoint only exports data; enter data in the registry "
                              "itself (web app, workbook import or /api/v1/).", status=403)
        if content == "version":
            return HttpResponse(REDCAP_VERSION, content_type="text/html; charset=utf-8")
        if content not in CONTENT:
            raise RedcapError('The value of the parameter "content" is not valid')
        if fmt not in ("json", "csv"):
            raise RedcapError(f'The value of the parameter "format" ({fmt}) is not supported here: use json or csv')
        return CONTENT[content](request, post, fmt)

    def handle_exception(self, exc):
        fmt = error_format(self.request.POST) if getattr(self, "request", None) is not None else "json"
        if isinstance(exc, RedcapError):
            return error_response(exc.message, fmt=fmt, status=exc.status)
        if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
            return error_response("You do not have permissions to use the API", fmt=fmt, status=403)
        if isinstance(exc, exceptions.Throttled):
            response = error_response(f"Too many requests: try again in {exc.wait:.0f} seconds.", fmt=fmt, status=429)
            response["Retry-After"] = str(max(1, round(exc.wait or 1)))
            return response
        if isinstance(exc, exceptions.MethodNotAllowed):
            return error_response("The REDCap API takes POST requests only.", fmt=fmt, status=405)
        return super().handle_exception(exc)
