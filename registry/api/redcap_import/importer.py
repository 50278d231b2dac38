"""One REDCap import: its rows parsed and checked against the project, then its records planned
and saved through registry.services in one transaction (see registry.api.redcap_import)."""
import csv
import datetime
import io
import re
from dataclasses import dataclass, field

from django.core.exceptions import NON_FIELD_ERRORS, ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import transaction

from registry import access, selectors, services
from registry.api.redcap_import.data import COMPLETES, DAG_COLUMN, SPECIAL, check_columns
from registry.api.redcap_project import FIELDS_BY_NAME, FORMS, FORMS_BY_NAME, RECORD_ID, RENAMED
from registry.api.redcap_protocol import RedcapError
from registry.dictionary import column as dictionary_column
from registry.models import PATIENT_ID_PATTERN, Centre, Patient, PrimaryTumour, not_in_future
from registry.services import StaleRecordError
from registry.transfer.importing.cells import CellError, converter

SOURCE = "redcap"
NEW = "new"
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
            base = [row for row in rows if row.form is None and row.ok]
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
        base = next(row for row in rows if row.form is None and row.ok)
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
