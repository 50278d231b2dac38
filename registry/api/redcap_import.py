"""Record imports through the REDCap endpoint (content=record with data), so a centre that keeps a
local REDCap project pushes its records with PyCap's ``import_records`` or REDCapR's
``redcap_write``: the flat layout the endpoint exports, in JSON or CSV.

Every record goes through the registry's one writer (registry.services.record_save) with every rule,
lock and audit entry of the web app (source ``redcap``), and the import is all or nothing: if any
record is refused, nothing is written and the answer is REDCap's error, one line per problem:
``"record","field","value","message"``.

Parameters as REDCap's:
- ``format`` json or csv (``csvDelimiter`` for CSV), ``type=flat``, ``returnFormat`` of the answer;
- ``overwriteBehavior``: ``normal`` (default) leaves a stored value alone where a cell is empty,
  ``overwrite`` empties it (only for the columns the data have);
- ``dateFormat`` YMD (default), DMY or MDY (YYYY-MM-DD is always understood);
- ``forceAutoNumber=true``: every record of the data is a new patient; its name in the data only
  groups its rows, and the registry issues the pseudonym (``returnContent=auto_ids`` answers with
  "new ID,name in the data" pairs). Without it every record must be a patient the user may write:
  only the registry issues pseudonyms;
- ``returnContent``: count (records imported), ids, auto_ids or nothing.
A repeating row names its record by ``redcap_repeat_instance``: a stored instance is changed, a
free number creates the record under that number (as REDCap would), ``new`` under the next one.
``<instrument>_id``, if filled in, must be the registry's ID of the record at that instance (a
safeguard against merging onto the wrong record). ``redcap_data_access_group`` names a new
patient's centre (as does ``centre``); for a stored patient it must be its own. Form status
columns (``<instrument>_complete``) are read and ignored: a record's status moves only through the
registry's data-management cycle.

A change of a record that is complete or verified needs a reason (registry.services.status), which
REDCap's protocol has no field for: send it as the parameter ``reason`` (applied to every change of
the import; from PyCap, which sends only its own fields, as ``Project(url, token,
params={"reason": "…"})``, i.e. in the query string). Without it such a change is refused, naming
the record.

Who may import: a user who may write (a nurse her centres, a coordinator every centre) with a token
that is not read-only; anyone else gets REDCap's "no import privileges" (403).
"""
import csv
import datetime
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from django.core.exceptions import NON_FIELD_ERRORS, ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpResponse, JsonResponse

from registry import access, selectors, services
from registry.api.redcap_project import FIELDS_BY_NAME, FORMS, FORMS_BY_NAME, RECORD_ID, RENAMED
from registry.api.redcap_protocol import RedcapError, csv_delimiter, flag
from registry.dictionary import column as dictionary_column
from registry.models import PATIENT_ID_PATTERN, Centre, Patient, PrimaryTumour, not_in_future
from registry.security import audit
from registry.services import StaleRecordError
from registry.transfer.importing.cells import CellError, converter

IMPORT_DENIED = "You do not have API Import/Update privileges"
SOURCE = "redcap"
DAG_COLUMN = "redcap_data_access_group"
SPECIAL = {RECORD_ID, "redcap_repeat_instrument", "redcap_repeat_instance", DAG_COLUMN}
COMPLETES = {f"{form.name}_complete" for form in FORMS}
NEW = "new"
RETURN_CONTENT = ("count", "ids", "auto_ids", "nothing")
# The date orders of dateFormat; YYYY-MM-DD is understood whichever is given.
DATE_ORDERS = {"YMD": ("year", "month", "day"), "DMY": ("day", "month", "year"), "MDY": ("month", "day", "year")}
ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
OTHER_DATE = re.compile(r"^(\d{1,4})[/.-](\d{1,2})[/.-](\d{1,4})$")
WHOLE_NUMBER = re.compile(r"^\d+(?:\.0+)?$")
PSEUDONYM = re.compile(PATIENT_ID_PATTERN)
BASE_FORMS = [form for form in FORMS if not form.repeating]


@dataclass(frozen=True)
class Problem:
    """One refused value or record, as a line of REDCap's import error."""

    record: str
    field: str
    value: str
    message: str

    def line(self):
        out = io.StringIO()
        csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="").writerow(
            [self.record, self.field, self.value, self.message])
        return out.getvalue()


class Refused(Exception):
    def __init__(self, problems):
        super().__init__(f"{len(problems)} problems")
        self.problems = problems


@dataclass
class Row:
    """One row of the data: its record's name, instrument (None: the patients and primary_tumours
    row), instance (a number, NEW, or None) and the values of its instrument's fields (raw text of
    the fields the row has, converted by `convert`)."""

    record: str
    form: object
    instance: object
    dag: str
    cells: dict = field(default_factory=dict)    # field name -> raw text
    values: dict = field(default_factory=dict)   # field name -> stored value (None for empty)
    ok: bool = True                              # False: its instrument is not one of the project


@dataclass
class Pending:
    """One record to save: the instance (changed or new), the version it was read at, the
    instance number a new repeating record asks for, and the row it came from."""

    record: object
    row: Row
    form: object
    version: int | None = None
    instance: int | None = None


# --- the request ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Options:
    overwrite: bool
    auto_number: bool
    date_order: tuple
    return_content: str
    reason: str

    @classmethod
    def of(cls, request, post):
        if post.get("type", "flat") != "flat":
            raise RedcapError(f'type={post["type"]} is not supported: this registry imports records as type=flat.')
        behaviour = post.get("overwriteBehavior", "") or "normal"
        if behaviour not in ("normal", "overwrite"):
            raise RedcapError('The value of the parameter "overwriteBehavior" is not valid: use normal or overwrite')
        date_format = (post.get("dateFormat", "") or "YMD").upper()
        if date_format not in DATE_ORDERS:
            raise RedcapError('The value of the parameter "dateFormat" is not valid: use YMD, DMY or MDY')
        returned = post.get("returnContent", "") or "count"
        if returned not in RETURN_CONTENT:
            raise RedcapError('The value of the parameter "returnContent" is not valid: use count, ids, auto_ids '
                              "or nothing")
        reason = (post.get("reason") or request.query_params.get("reason") or "").strip()
        return cls(overwrite=behaviour == "overwrite", auto_number=flag(post, "forceAutoNumber"),
                   date_order=DATE_ORDERS[date_format], return_content=returned, reason=reason)


def import_records(request, post):
    """Import the records of `data` (the view has checked content=record); the answer or a RedcapError."""
    user, token = request.user, request.auth
    if getattr(token, "read_only", False) or not access.writable_centre_codes(user):
        raise RedcapError(IMPORT_DENIED, status=403)
    data_format = post.get("format", "xml")
    if data_format not in ("json", "csv"):
        raise RedcapError(f'The value of the parameter "format" ({data_format}) is not supported for imports here: '
                          "use json or csv")
    options = Options.of(request, post)
    data = post.get("data", "")
    raw_rows = read_json(data) if data_format == "json" else read_csv(data, csv_delimiter(post))
    try:
        names = Importer(user, options).run(raw_rows)
    except Refused as refused:
        audit.log_import_refused(user=user, file_name="REDCap API import", sha256=hashlib.sha256(data.encode()).hexdigest(),
                                 errors=len(refused.problems), rows=len(raw_rows), dry_run=False)
        raise RedcapError("\n".join(problem.line() for problem in refused.problems)) from None
    return answer(names, options.return_content, post.get("returnFormat") or "xml")


def answer(names, return_content, fmt):
    """REDCap's answer to an import: `names` is [(record ID, name in the data)] of every record."""
    if return_content == "nothing":
        return HttpResponse("", content_type="text/plain; charset=utf-8")
    if return_content == "count":
        items, tag = len(names), "count"
    elif return_content == "ids":
        items, tag = [pid for pid, _given in names], "id"
    else:
        items, tag = [f"{pid},{given}" for pid, given in names], "id"
    if fmt == "json":
        return JsonResponse({"count": items} if tag == "count" else items, safe=False)
    if fmt == "csv":
        lines = [tag, *map(str, items if isinstance(items, list) else [items])]
        return HttpResponse("\n".join(lines) + "\n", content_type="text/csv; charset=utf-8")
    body = f"<count>{items}</count>" if tag == "count" else "<ids>" + "".join(
        f"<id>{escape(item)}</id>" for item in items) + "</ids>"
    return HttpResponse(f'<?xml version="1.0" encoding="UTF-8" ?>\n{body}', content_type="text/xml; charset=utf-8")


# --- reading the data ----------------------------------------------------------------------------

def as_text(value, where):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise RedcapError(f"The data are not valid: {where} holds a list or an object, not a value.")


def read_json(data):
    """The rows of JSON data: a list of objects of field names and values."""
    try:
        parsed = json.loads(data)
    except ValueError:
        raise RedcapError("The data are not valid JSON: send a list of records, each an object of field names "
                          "and values.") from None
    if not isinstance(parsed, list) or not all(isinstance(item, dict) for item in parsed):
        raise RedcapError("The data are not valid: send a list of records, each an object of field names and "
                          "values.")
    return [{str(name).strip(): as_text(value, f"row {number}, {name}") for name, value in item.items()}
            for number, item in enumerate(parsed, start=1)]


def read_csv(data, delimiter):
    """The rows of CSV data (its first line names the fields)."""
    lines = list(csv.reader(io.StringIO(data.lstrip("\ufeff")), delimiter=delimiter))
    lines = [line for line in lines if any(cell.strip() for cell in line)]
    if not lines:
        return []
    header = [name.strip() for name in lines[0]]
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if len(line) != len(header):
            raise RedcapError(f"The data are not valid CSV: line {number} has {len(line)} values, the header "
                              f"{len(header)}.")
        rows.append(dict(zip(header, line)))
    return rows


def check_columns(raw_rows):
    names = {name for row in raw_rows for name in row}
    unknown = sorted(name for name in names if name not in SPECIAL | COMPLETES and name not in FIELDS_BY_NAME)
    if unknown:
        raise RedcapError("The following fields were not found in the project as real data fields: "
                          + ", ".join(unknown))
    if RECORD_ID not in names:
        raise RedcapError(f'The record ID field "{RECORD_ID}" is missing from the data.')


# --- one import ----------------------------------------------------------------------------------

class Importer:
    """One import: parse and check the rows, then write them in one transaction (steps of `run`)."""

    def __init__(self, user, options):
        self.user, self.options = user, options
        self.problems = []
        self.centres = set(Centre.objects.values_list("code", flat=True))
        self.converters = {}

    def fail(self, row_or_record, field_name, value, message):
        record = row_or_record.record if isinstance(row_or_record, Row) else row_or_record
        self.problems.append(Problem(record, field_name, value, message))

    def refuse_if_problems(self):
        if self.problems:
            raise Refused(self.problems)

    def run(self, raw_rows):
        """Write the records; returns [(record ID, name in the data)] in the data's order."""
        if not raw_rows:
            raise RedcapError("The data hold no records.")
        check_columns(raw_rows)
        rows = [self.parse(raw) for raw in raw_rows]
        self.check_keys(rows)
        records = {}
        for row in rows:
            records.setdefault(row.record, []).append(row)
        if self.options.auto_number:
            self.check_new(records)
        else:
            self.check_stored(records)
        self.refuse_if_problems()
        with transaction.atomic():
            names = self.write(records)
            self.refuse_if_problems()  # the exception rolls the whole import back
        return names

    # --- rows

    def parse(self, raw):
        record = raw.get(RECORD_ID, "").strip()
        instrument = raw.get("redcap_repeat_instrument", "").strip()
        instance_text = raw.get("redcap_repeat_instance", "").strip()
        row = Row(record=record, form=None, instance=None, dag=raw.get(DAG_COLUMN, "").strip().lower())
        if not record:
            self.fail(row, RECORD_ID, "", "The record ID is empty.")
        if instrument:
            form = FORMS_BY_NAME.get(instrument)
            if form is None or not form.repeating:
                self.fail(row, "redcap_repeat_instrument", instrument, "Not a repeating instrument of this project: "
                          + ", ".join(f.name for f in FORMS if f.repeating) + ".")
                row.ok = False
                return row
            else:
                row.form = form
                row.instance = self.instance(row, instance_text)
        elif instance_text:
            self.fail(row, "redcap_repeat_instance", instance_text,
                      "A row without redcap_repeat_instrument (patients and primary_tumours) has no instance.")
        forms = [row.form] if row.form else BASE_FORMS
        for name, text in raw.items():
            if name in SPECIAL or name in COMPLETES:
                continue
            field_ = FIELDS_BY_NAME[name]
            if field_.form not in forms:
                if text.strip():
                    self.fail(row, name, text, f"The field belongs to the instrument {field_.form.name}: "
                              + ("import it on a row of that instrument (redcap_repeat_instrument)." if
                                 field_.form.repeating else "import it on the record's row without "
                                                             "redcap_repeat_instrument."))
                continue
            row.cells[name] = text
            row.values[name] = self.convert(row, field_, text)
        return row

    def instance(self, row, text):
        if text.lower() == NEW:
            return NEW
        if WHOLE_NUMBER.match(text) and len(text) < 10 and int(text.split(".")[0]) >= 1:
            return int(text.split(".")[0])
        self.fail(row, "redcap_repeat_instance", text, "A repeating row needs its instance: a number (1, 2, …) or "
                                                      "'new'.")
        return None

    def convert(self, row, field_, text):
        """The stored value of a cell (None when empty); a problem when the field does not allow it."""
        if not text.strip():
            return None
        if field_.is_registry_id:
            if not WHOLE_NUMBER.match(text.strip()) or len(text.strip()) > 18:
                self.fail(row, field_.name, text, "The registry ID is a whole number.")
                return None
            return int(text.strip().split(".")[0])
        column = dictionary_column(field_.form.name, field_.column)
        try:
            if column.type == "date":
                return self.date(text)
            if column.type == "bool" and re.match(r"^[01]\.0+$", text.strip()):
                text = text.strip()[0]  # a yes/no column read into a data frame with gaps is 1.0/0.0
            if field_.name not in self.converters:
                self.converters[field_.name] = converter(column, centre_codes=self.centres, decimal_comma=True)
            return self.converters[field_.name](text)
        except CellError as error:
            self.fail(row, field_.name, text, str(error))
            return None

    def date(self, text):
        text = text.strip()
        match = ISO_DATE.match(text)
        order = ("year", "month", "day")
        if not match:
            match, order = OTHER_DATE.match(text), self.options.date_order
        if not match:
            raise CellError("Not a date: write it as YYYY-MM-DD (or as dateFormat says).")
        parts = dict(zip(order, map(int, match.groups())))
        try:
            value = datetime.date(parts["year"], parts["month"], parts["day"])
        except ValueError:
            raise CellError("There is no such date.") from None
        if parts["year"] < 1000:
            raise CellError("Not a date: write the year with four digits.")
        try:
            not_in_future(value)
        except ValidationError as error:
            raise CellError(" ".join(error.messages)) from None
        return value

    def check_keys(self, rows):
        seen = set()
        for row in rows:
            if not row.ok or (row.form is not None and row.instance in (None, NEW)):
                continue
            key = (row.record, row.form.name if row.form else "", row.instance)
            if key in seen:
                where = f"instance {row.instance} of {row.form.name}" if row.form else "its row"
                self.fail(row, RECORD_ID, row.record, f"The data hold {where} twice.")
            seen.add(key)

    # --- records

    def check_stored(self, records):
        """Without forceAutoNumber every record is a stored patient the user may change."""
        names = [name for name in records if name]
        readable = set()
        for start in range(0, len(names), 500):
            readable |= set(access.patients_readable(self.user).filter(pk__in=names[start:start + 500])
                            .values_list("pk", flat=True))
        for name in names:
            if name not in readable:
                self.fail(name, RECORD_ID, name, f"There is no record {name} in the registry that you may see. The "
                          "registry issues the IDs of new patients: import new records with forceAutoNumber=true "
                          "(returnContent=auto_ids answers with the IDs issued).")
            elif not access.can_write_centre(self.user, name.split("-", 1)[0]):
                self.fail(name, RECORD_ID, name, f"You may not change patients of centre {name.split('-', 1)[0]}.")

    def check_new(self, records):
        """With forceAutoNumber every record is a new patient of a centre the user may write."""
        for name, rows in records.items():
            if PSEUDONYM.match(name):
                self.fail(name, RECORD_ID, name, "This is a registry ID, but forceAutoNumber=true creates new "
                          "records: import changes of stored records without forceAutoNumber.")
                continue
            base = [row for row in rows if row.form is None]
            if not base:
                self.fail(name, RECORD_ID, name, "A new record needs its row without redcap_repeat_instrument "
                          "(the patient's fields).")
                continue
            centre = self.centre_of_new(name, base[0])
            if centre and not access.can_write_centre(self.user, centre):
                self.fail(name, "centre", centre, f"You may not add patients to centre {centre}.")

    def centre_of_new(self, name, row):
        from_field = row.values.get("centre")
        from_group = row.dag.upper() if row.dag else None
        if from_group and from_group not in self.centres:
            self.fail(name, DAG_COLUMN, row.dag, "There is no data access group of this name.")
            return None
        if from_field and from_group and from_field != from_group:
            self.fail(name, DAG_COLUMN, row.dag, f"The data access group is not the centre {from_field}.")
            return None
        writable = access.writable_centre_codes(self.user)
        centre = from_field or from_group or (next(iter(writable)) if writable != access.ALL and len(writable) == 1
                                              else None)
        if centre is None:
            self.fail(name, "centre", "", "Name the centre of a new record (centre or redcap_data_access_group).")
        row.values["centre"] = centre
        return centre

    # --- writing

    def write(self, records):
        stored = {}
        if not self.options.auto_number:
            patients, tumours, children = selectors.stored_records(sorted(records), lock=True)
            stored = {"patients": patients, "tumours": tumours, "children": children}
        names = []
        for name, rows in records.items():
            pending = self.plan_new(name, rows) if self.options.auto_number else self.plan_stored(name, rows, stored)
            names.append((self.save(name, pending) or name, name))
        return names

    def apply(self, record, row, form):
        """Set the row's values of `form` on `record`; True if any differs from what it holds."""
        changed = False
        for name, value in row.values.items():
            field_ = FIELDS_BY_NAME[name]
            if field_.form is not form or field_.is_registry_id or name == RECORD_ID:
                continue
            if value is None and (not self.options.overwrite or name == "centre"):
                continue  # normal: an empty cell leaves the stored value alone (and a centre stays)
            attname = dictionary_column(form.name, field_.column).attname
            if getattr(record, attname) != value:
                setattr(record, attname, value)
                changed = True
        return changed

    def plan_new(self, name, rows):
        base = next(row for row in rows if row.form is None)
        patient = Patient()
        self.apply(patient, base, FORMS[0])
        patient.centre_id = base.values["centre"]
        pending = [Pending(patient, base, FORMS[0])]
        tumour = PrimaryTumour()
        if self.apply(tumour, base, FORMS[1]):
            pending.append(Pending(tumour, base, FORMS[1]))
        for row in sorted((r for r in rows if r.form is not None), key=self.row_order):
            if row.values.get(f"{row.form.name}_id") is not None:
                self.fail(row, f"{row.form.name}_id", row.cells[f"{row.form.name}_id"],
                          "A new record has no registry ID yet: leave it empty.")
                continue
            record = row.form.model()
            self.apply(record, row, row.form)
            pending.append(Pending(record, row, row.form, instance=None if row.instance == NEW else row.instance))
        return pending

    def plan_stored(self, name, rows, stored):
        patient = stored["patients"][name]
        pending = []
        for row in sorted(rows, key=self.row_order):
            if row.form is None:
                if row.dag and row.dag != patient.centre_id.lower():
                    self.fail(row, DAG_COLUMN, row.dag, f"The record belongs to the data access group "
                              f"{patient.centre_id.lower()}: a patient cannot move to another centre.")
                if self.apply(patient, row, FORMS[0]):
                    pending.append(Pending(patient, row, FORMS[0], version=patient.version))
                tumour = stored["tumours"].get(name)
                if tumour is None:
                    tumour = PrimaryTumour(patient_id=name)
                    if self.apply(tumour, row, FORMS[1]):
                        pending.append(Pending(tumour, row, FORMS[1]))
                elif self.apply(tumour, row, FORMS[1]):
                    pending.append(Pending(tumour, row, FORMS[1], version=tumour.version))
                continue
            by_instance = {record.redcap_instance: record for record in stored["children"][row.form.name].get(name, [])}
            record = by_instance.get(row.instance)
            given_id = row.values.get(f"{row.form.name}_id")
            if given_id is not None and (record is None or record.pk != given_id):
                self.fail(row, f"{row.form.name}_id", row.cells[f"{row.form.name}_id"],
                          self.id_mismatch(row, given_id, by_instance))
                continue
            if record is None:
                record = row.form.model(patient_id=name)
                self.apply(record, row, row.form)
                pending.append(Pending(record, row, row.form, instance=None if row.instance == NEW else row.instance))
            elif self.apply(record, row, row.form):
                pending.append(Pending(record, row, row.form, version=record.version))
        return pending

    @staticmethod
    def id_mismatch(row, given_id, by_instance):
        elsewhere = next((number for number, record in by_instance.items() if record.pk == given_id), None)
        if elsewhere is not None:
            return (f"The registry ID {given_id} is instance {elsewhere} of {row.form.name} of this record, "
                    f"not instance {row.instance}.")
        return f"There is no {row.form.name} record {given_id} in this record at instance {row.instance}."

    @staticmethod
    def row_order(row):
        forms = [form.name for form in FORMS]
        return (forms.index(row.form.name) if row.form else -1,
                row.instance if isinstance(row.instance, int) else float("inf"))

    def save(self, name, pending):
        """Save one patient's records through the services; returns its ID (None if it was refused).

        The registry checks each save against the case as it stands, so a change that holds only
        together with another one of the same import (a later PM date and the follow-up after it)
        is refused at first: a refused save is tried again after the others, as long as any succeed."""
        pid = name
        if pending and isinstance(pending[0].record, Patient) and pending[0].record._state.adding:
            if not self.save_one(name, pending[0]):
                return None
            pid, pending = pending[0].record.pk, pending[1:]
        for item in pending:
            if item.record._state.adding and not isinstance(item.record, Patient):
                item.record.patient_id = pid
        while pending:
            errors = {}
            left = [item for item in pending if not self.save_one(name, item, errors)]
            if len(left) == len(pending):
                for item in left:
                    self.report(name, item, errors[id(item)])
                break
            pending = left
        return pid

    def save_one(self, name, item, errors=None):
        try:
            services.record_save(user=self.user, record=item.record, expected_version=item.version, source=SOURCE,
                                 reason=self.options.reason or None, redcap_instance=item.instance)
        except (ValidationError, PermissionDenied, StaleRecordError, ObjectDoesNotExist) as error:
            if errors is None:
                self.report(name, item, error)
            else:
                errors[id(item)] = error
            return False
        return True

    def report(self, name, item, error):
        """The problems of a refused save, at the REDCap fields they concern."""
        where = ""
        if item.form.repeating:
            number = item.instance or item.record.redcap_instance or item.row.instance
            where = f"{item.form.name} instance {number}: "
        elif item.form is FORMS[1]:
            where = "primary_tumours: "
        if isinstance(error, ValidationError) and hasattr(error, "error_dict"):
            messages = error.message_dict.items()
        elif isinstance(error, ValidationError):
            messages = [(NON_FIELD_ERRORS, error.messages)]
        else:
            messages = [(NON_FIELD_ERRORS, [str(error)])]
        for key, texts in messages:
            field_name = "" if key in (NON_FIELD_ERRORS, "reason") else RENAMED.get((item.form.name, key), key)
            message = " ".join(texts)
            if key == "reason":
                message += (" Send the reason as the parameter reason with the import (from PyCap: "
                            "Project(url, token, params={'reason': '…'})).")
            self.fail(name, field_name, item.row.cells.get(field_name, ""), where + message)
