"""A REDCap-compatible endpoint (/redcap/api/), so statisticians' PyCap and REDCapR scripts read
the registry unchanged (``Project("https://…/redcap/api/", token).export_records()``), and a centre
that keeps a local REDCap project pushes its records with ``import_records``.

It speaks the REDCap API protocol (registry.api.redcap_protocol): ``POST`` form fields ``token`` (a
REDCap token of registry.api.models: 32 hexadecimal characters), ``content``, ``format`` (json,
csv), ``returnFormat`` (the format of error messages), and for records ``type=flat``, ``records``,
``fields``, ``forms`` (each as ``name[]``, ``name[0]``… or comma-separated), ``rawOrLabel``,
``rawOrLabelHeaders`` (label headers are unique: a label two fields share names its instrument),
``exportDataAccessGroups``, ``dateRangeBegin`` / ``dateRangeEnd`` (records with any change, a
deletion of one of their rows included, at or after the beginning and before the end, from the
audit trail), ``csvDelimiter`` and ``decimalCharacter``. ``content=dag`` lists the centres as data
access groups, ``content=log`` the audit trail of the records (registry.api.redcap_log), and
``content=record`` with ``data`` imports records (registry.api.redcap_import). Records cannot be
deleted through it.

The registry is presented as a classic (non-longitudinal) REDCap project:
- one instrument per table of the data dictionary (registry.api.redcap_project); `patients` and
  `primary_tumours` are non-repeating, `metastasectomies`, `systemic_therapies` and `follow_up` are
  repeating instruments (rows with ``redcap_repeat_instrument`` / ``redcap_repeat_instance``);
- a repeating record's instance number is its own (registry.models.instance_number): given when it
  is entered (1, 2, … per patient and instrument) and never changed, so entering an earlier therapy
  later moves no other record; the date fields, not the instance, say which operation came first;
- each repeating instrument ends with ``<instrument>_id``, the registry's ID of the record;
- the record ID field is ``patient_id``, the first field of the first instrument;
- each centre is a data access group, its unique group name the centre code in lower case
  (``redcap_data_access_group``);
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
of records or of the log is recorded (registry.security.audit).
"""
from collections import Counter

from django.db.models import Q
from django.http import HttpResponse
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
from registry.api.redcap_import import import_records
from registry.api.redcap_log import export_log
from registry.api.redcap_project import (
    COMPLETE,
    FIELDS,
    FIELDS_BY_NAME,
    FORMS,
    FORMS_BY_NAME,
    METADATA_COLUMNS,
    MISSING_DATA_CODES,
    RECORD_ID,
    REDCAP_VERSION,
    instrument_rows,
    metadata_row,
    missing_code_text,
    repeating_rows,
)
from registry.api.redcap_protocol import (
    RedcapError,
    body_error,
    csv_delimiter,
    error_format,
    error_response,
    flag,
    form_fields,
    param_list,
    table_response,
    timestamp,
)
from registry.api.throttling import TokenRateThrottle, UserRateThrottle
from registry.dictionary import missing_codes_of, missing_codes_text
from registry.models import CLINICAL_MODELS, Patient
from registry.security import audit

DAG_COLUMN = "redcap_data_access_group"
CODES_TEXT = "missing_codes_text"  # a loaded row's missing-data codes (JSON)


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
    return table_response(instrument_rows(), ["instrument_name", "instrument_label"], fmt)


def export_repeating(request, post, fmt):
    return table_response(repeating_rows(), ["form_name", "custom_form_label"], fmt)


def export_project(request, post, fmt):
    info = {
        "project_id": 1, "project_title": "Sarcoma PM registry", "creation_time": "", "production_time": "",
        "in_production": 1, "project_language": "English", "purpose": 2, "purpose_other": "",
        "project_notes": "Pseudonymised registry of pulmonary metastasectomy for soft-tissue sarcoma; "
                         "REDCap-compatible API (records are imported with every rule of the registry).",
        "custom_record_label": "", "secondary_unique_field": "", "is_longitudinal": 0,
        "has_repeating_instruments_or_events": 1, "surveys_enabled": 0, "scheduling_enabled": 0,
        # the registry issues the pseudonyms (forceAutoNumber)
        "record_autonumbering_enabled": 1, "randomization_enabled": 0, "ddp_enabled": 0,
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
    delimiter = csv_delimiter(post) if fmt == "csv" else ","
    return table_response(rows, columns, fmt, headers=headers, delimiter=delimiter)


def export_dags(request, post, fmt):
    """The centres the user may read, as REDCap data access groups."""
    rows = [{"data_access_group_name": name, "unique_group_name": dag_name(code), "data_access_group_id": dag_id(code)}
            for code, name in centre_names(request.user).items()]
    return table_response(rows, ["data_access_group_name", "unique_group_name", "data_access_group_id"], fmt)


def dag_name(centre_code):
    """A centre's unique group name: its code in lower case (REDCap's are lower case)."""
    return centre_code.lower()


def dag_id(centre_code):
    """A stable number for a centre's group: its code (2-8 capital letters) read in base 27."""
    number = 0
    for letter in centre_code:
        number = number * 27 + (ord(letter) - ord("A") + 1)
    return number


def changed_between(begin, end):
    """A condition on patients: any of their rows was written (created, changed or deleted) at or after
    `begin` and before `end`, as the audit trail (django-simple-history) records every write."""
    when = {**({"history_date__gte": begin} if begin else {}), **({"history_date__lt": end} if end else {})}
    condition = Q(pk__in=[])
    for model in CLINICAL_MODELS:
        condition |= Q(pk__in=model.history.model.objects.filter(**when).values("patient_id"))
    return condition


def record_rows(user, post, *, patients=None, convert=None):
    """(rows, columns, header line or None) of a record export: the records the user may read.

    The dataset export (registry.transfer.exporting) passes its own scope as `patients` (a
    Patient queryset, read instead of the user's) and `convert(form, row)`, which returns a
    loaded row's values as they are to be exported (its de-identified dates)."""
    if post.get("type", "flat") != "flat":
        raise RedcapError(f'type={post["type"]} is not supported: this registry exports records as type=flat.')
    if post.get("filterLogic"):
        raise RedcapError('The parameter "filterLogic" is not supported by this registry; '
                          "export the records and filter them in your script.")
    begin, end = timestamp(post, "dateRangeBegin"), timestamp(post, "dateRangeEnd")
    decimal = post.get("decimalCharacter", "") or "."
    if decimal not in (".", ","):
        raise RedcapError('The value of the parameter "decimalCharacter" is not valid: use "." or ","')
    label = post.get("rawOrLabel", "raw") == "label"
    label_headers = post.get("rawOrLabelHeaders", "raw") == "label"
    gray = "" if post.get("exportBlankForGrayFormStatus", "").lower() == "true" else "0"
    with_dag = flag(post, "exportDataAccessGroups")
    selected = selected_fields(post)
    columns = [RECORD_ID, "redcap_repeat_instrument", "redcap_repeat_instance", *([DAG_COLUMN] if with_dag else [])]
    columns += [item if isinstance(item, str) else item.name for item in selected if item != FIELDS_BY_NAME[RECORD_ID]]
    fields_of = {form.name: [item for item in selected if not isinstance(item, str) and item.form is form]
                 for form in FORMS}
    complete_wanted = {form.name for form in FORMS if f"{form.name}_complete" in selected}
    centres = centre_names(user) if label or with_dag else None

    patients = access.patients_readable(user) if patients is None else patients
    if record_ids := param_list(post, "records"):
        patients = patients.filter(pk__in=record_ids)
    if begin or end:
        patients = patients.filter(changed_between(begin, end))
    in_scope = {"patient_id__in": patients.values("pk")}

    def load(form):
        needed = [field.column for field in fields_of[form.name]]
        codes = {CODES_TEXT: missing_codes_text()} if needed else {}
        if form.model is Patient:
            return {row["patient_id"]: row
                    for row in patients.order_by("patient_id").values(RECORD_ID, *needed, **codes)}
        if not needed and form.name not in complete_wanted:
            return {}
        # A repeating record's rows come in the order of its own, fixed instance numbers.
        order = ["patient_id", "redcap_instance"] if form.repeating else ["patient_id"]
        instance = ["redcap_instance"] if form.repeating else []
        grouped = {}
        for row in form.model.objects.filter(**in_scope).order_by(*order).values("patient_id", *instance, *needed,
                                                                                 **codes):
            grouped.setdefault(row["patient_id"], []).append(row)
        return grouped

    tables = {form.name: load(form) for form in FORMS}

    # Per form, its fields as (name, column, formatter), the lookups of Field.export done once.
    exported = {form.name: [(field.name, field.column, field.formatter(label=label, centres=centres, decimal=decimal))
                            for field in fields_of[form.name] if field.name != RECORD_ID] for form in FORMS}
    blank = dict.fromkeys(columns, "")  # every row has every column, in order; "" for unknown

    def fill(out_row, form, row):
        """Put a loaded row's values into out_row, as Field.export gives them."""
        if convert is not None:
            row = convert(form, row)
        for name, column, formatted in exported[form.name]:
            value = row[column]
            if value is not None:
                out_row[name] = formatted(value)
        if codes := missing_codes_of(row.get(CODES_TEXT)):  # a code stands in place of the value
            for name, column, _formatted in exported[form.name]:
                if codes.get(column):
                    out_row[name] = missing_code_text(codes[column], label=label)

    def group_of(patient_id):
        code = patient_id.split("-", 1)[0]
        return centres.get(code, code) if label else dag_name(code)

    base_forms = [form for form in FORMS if not form.repeating]
    base_wanted = any(fields_of[f.name] or f.name in complete_wanted for f in base_forms) or not any(
        fields_of[f.name] or f.name in complete_wanted for f in FORMS if f.repeating)
    repeating = [form for form in FORMS if form.repeating and (fields_of[form.name] or form.name in complete_wanted)]
    instrument = {form.name: form.label if label else form.name for form in repeating}
    out = []
    for patient_id, patient in tables["patients"].items():
        common = {**blank, RECORD_ID: patient_id}
        if with_dag:
            common[DAG_COLUMN] = group_of(patient_id)
        if base_wanted:
            row = common.copy()
            fill(row, FORMS[0], patient)
            tumours = tables["primary_tumours"].get(patient_id, [])
            if tumours:
                fill(row, FORMS[1], tumours[0])
            for form in FORMS:
                if form.name in complete_wanted:
                    present = form.model is Patient or bool(tables[form.name].get(patient_id))
                    row[f"{form.name}_complete"] = "" if form.repeating else (COMPLETE if present else gray)
            out.append(row)
        for form in repeating:
            for record in tables[form.name].get(patient_id, []):
                row = common.copy()
                row["redcap_repeat_instrument"] = instrument[form.name]
                row["redcap_repeat_instance"] = str(record["redcap_instance"])
                fill(row, form, record)
                if form.name in complete_wanted:
                    row[f"{form.name}_complete"] = COMPLETE
                out.append(row)
    return out, columns, unique_label_headers(columns) if label_headers else None


def unique_label_headers(columns):
    """The header line of rawOrLabelHeaders=label: each field's label, and where two columns would
    share one (surgery date, margin, complete?), the instrument's label after it, so that every
    header names one column (a data frame keeps them apart)."""
    special = {RECORD_ID: "Patient ID", "redcap_repeat_instrument": "Repeat Instrument",
               "redcap_repeat_instance": "Repeat Instance", DAG_COLUMN: "Data Access Group"}
    labels, forms = {}, {}
    for field in FIELDS:
        if field.model_field is not None:
            labels[field.name] = "Registry ID" if field.is_registry_id else str(capfirst(field.model_field.verbose_name))
            forms[field.name] = field.form
    for form in FORMS:
        labels[f"{form.name}_complete"], forms[f"{form.name}_complete"] = "Complete?", form
    headers = [special.get(column) or labels.get(column, column) for column in columns]
    shared = Counter(headers)
    headers = [f"{header} ({forms[column].label})" if shared[header] > 1 and column in forms else header
               for column, header in zip(columns, headers)]
    shared = Counter(headers)
    return [f"{header} [{column}]" if shared[header] > 1 else header for column, header in zip(columns, headers)]


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
    "dag": export_dags,
    "log": export_log,
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
    """POST /redcap/api/: the REDCap API protocol (exports, record imports, the log)."""

    authentication_classes = [RedcapTokenAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = [TokenRateThrottle, UserRateThrottle]
    parser_classes = [FormParser, MultiPartParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FormatFieldNegotiation

    def post(self, request):
        post = request.POST
        if any("\x00" in text for key, values in post.lists() for text in (key, *values)):
            # No field of the registry holds one, and PostgreSQL refuses it in any query.
            raise RedcapError("The request holds a NUL character, which no parameter may contain.")
        fmt = post.get("format", "xml")
        content = post.get("content", "")
        if post.get("action") == "delete":
            raise RedcapError("Nothing can be deleted through this registry's REDCap endpoint: delete records in "
                              "the registry itself (web app or /api/v1/).", status=403)
        if post.get("data") is not None or post.get("action") == "import":
            if content != "record":
                raise RedcapError("This registry's REDCap endpoint imports records only (content=record); its "
                                  "project design, users and groups are managed in the registry.", status=403)
            return import_records(request, post)
        if content == "version":
            return HttpResponse(REDCAP_VERSION, content_type="text/html; charset=utf-8")
        if content not in CONTENT:
            raise RedcapError('The value of the parameter "content" is not valid')
        if fmt not in ("json", "csv"):
            raise RedcapError(f'The value of the parameter "format" ({fmt}) is not supported here: use json or csv')
        return CONTENT[content](request, post, fmt)

    def handle_exception(self, exc):
        # The form is read again only through form_fields: a body that is no form raised `exc`
        # in the first place, and reading it again here would raise once more (a server error).
        fmt = error_format(form_fields(self.request)) if getattr(self, "request", None) is not None else "json"
        exc = body_error(exc) or exc
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
