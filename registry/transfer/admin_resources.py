"""One clinical table as a django-import-export resource, for the admin's import and export of a
coordinator's small corrections (registry/transfer/admin_import_export.py puts them on the changelists).

The columns are the data dictionary's (registry/dictionary.py), with its conventions: codes, yes/no,
ISO dates, a missing-data code (UNK, ND, NA) in place of an optional value, text that a
spreadsheet would run as a formula written with a leading apostrophe (the import takes it off).
An import file may add two columns: `reason` (why the row's record changes: kept in its history,
in place of the reason given in the import form) and, on the patients' page, `local_id` (your key
for a patient new to the registry; a blank patient_id is a new patient too).

A row names its record by the dictionary's keys (registry.dictionary.KEYS): the patient_id, and for
a metastasectomy its surgery date, for a therapy its start date and regimen, for a follow-up event
its date and kind. A row whose key matches no record adds one. Every row is saved through
registry.services.record_save, source "admin import", which checks the user's access, the model's
validation, the cross-record rules, the record's lock and the reason a change needs, issues the
pseudonym of a new patient and audits the change ("admin import: <reason>"); its refusal becomes the
row's error, at the column it names. Rows that change nothing are skipped (no new version).
Deleting is not offered: a deletion needs a reason of its own (the admin's delete, or the web).

The bulk import (registry/transfer/importing) stays the path for whole files: this one checks and
saves row by row, as django-import-export does, and takes at most MAX_ROWS rows.
"""
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.utils.html import format_html
from django.utils.translation import gettext as _
from import_export import fields, resources
from import_export.formats import base_formats

from registry import access, dictionary, selectors, services
from registry.models import Centre, ExportLog, Patient
from registry.services.status import REASON_MAX_LENGTH
from registry.transfer.exporting import missing
from registry.transfer.exporting.writers import neutral, text_formatter
from registry.transfer.importing.cells import CellError, converter, is_blank, missing_code, shown
from registry.transfer.importing.sources import FileRefused

SOURCE = "admin import"
MAX_ROWS = 1000  # corrections; a whole dataset goes through the bulk import
REASON = "reason"
EXTRA_COLUMNS = {"patients": (dictionary.LOCAL_ID, REASON)}  # other tables: (REASON,)


class ODS(base_formats.TablibFormat):
    """OpenDocument spreadsheets, read as the zip files they are: django-import-export 4.4 reads
    them as text, which fails on every upload (corrected upstream in a later release)."""

    TABLIB_MODULE = "tablib.formats._ods"
    CONTENT_TYPE = "application/vnd.oasis.opendocument.spreadsheet"


FORMATS = [base_formats.XLSX, base_formats.CSV, base_formats.JSON, ODS]


class ColumnField(fields.Field):
    """One column of the data dictionary: its value, or the missing-data code that stands for it."""

    def __init__(self, column):
        super().__init__(attribute=column.attname, column_name=column.name)
        self.column = column
        self.as_text = text_formatter(column.type)

    def get_value(self, instance):
        code = (getattr(instance, dictionary.MISSING_CODES_FIELD, None) or {}).get(self.column.attname)
        if code is not None:
            return missing.CELLS.get(code, code)
        return getattr(instance, self.column.attname, None)

    def export(self, instance, **kwargs):
        """The cell: text for CSV, JSON and the preview; real dates and numbers in a spreadsheet
        (force_native_type), yes/no and codes as the dictionary writes them either way."""
        value = self.get_value(instance)
        if not kwargs.get("force_native_type") or value is None:
            return self.as_text(value)
        if value.__class__ is missing.MissingCode:
            return str(value)
        if self.column.type == "bool":
            return "yes" if value else "no"
        if isinstance(value, str):
            return neutral(value)  # a spreadsheet runs text starting with = as a formula
        return value


class ClinicalResource(resources.ModelResource):
    """The import and export of one dictionary table (subclasses: resource_for)."""

    table = None

    class Meta:
        skip_unchanged = True  # an unchanged row is shown as skipped, and writes nothing
        report_skipped = True
        store_instance = True  # the admin names the records (its log, the read of the preview)
        use_transactions = True

    def __init__(self, *, user=None, reason=""):
        super().__init__()
        self.user, self.reason = user, (reason or "").strip()
        self.present = None  # the dictionary columns of the file, once it is read
        self.extras = {}  # row number -> {local_id, reason}
        self.seen = {}  # record key -> row number: a record named twice is refused
        self.local_ids = {}
        self.issued = []  # (local_id, pseudonym) of the new patients
        self.converters = {}
        self.row_number = None
        self.dry_run = False

    @classmethod
    def get_display_name(cls):
        return cls.table

    # --- the columns --------------------------------------------------------------------------

    def all_fields(self):
        """The table's columns in the dictionary's order."""
        return [self.fields[column.name] for column in dictionary.columns(self.table)]

    def get_import_fields(self):
        """The dictionary columns of the file read (all of them before it is read): a column left
        out of the file leaves that value of an existing record as it is."""
        fields_ = self.all_fields()
        return fields_ if self.present is None else [f for f in fields_ if f.column_name in self.present]

    def get_user_visible_fields(self):
        extra = [fields.Field(column_name=name) for name in EXTRA_COLUMNS.get(self.table, (REASON,))]
        return self.all_fields() + extra

    def converter(self, column):
        if column.name not in self.converters:
            centres = Centre.objects.values_list("code", flat=True) if column.name == "centre" else ()
            self.converters[column.name] = converter(column, centre_codes=tuple(centres))
        return self.converters[column.name]

    def cell(self, column, raw):
        """(value, missing-data code) of one cell; CellError names what the dictionary does not allow."""
        if is_blank(raw):
            return None, None
        code = missing_code(column, raw)
        if code is not None:
            if column.missing_codes:
                return None, code
            raise CellError(_("%(code)s is a missing-data code, and %(column)s is required: it needs a value (the "
                              "codes UNK, ND and NA are only for optional columns).")
                            % {"code": code, "column": column.name})
        if column.name == "patient_id":
            raw = str(raw).strip().upper()
        return self.converter(column)(raw), None

    # --- the file -----------------------------------------------------------------------------

    def before_import(self, dataset, **kwargs):
        """Check the header (the dictionary's column names, in any case and order, and the key
        columns), drop blank lines, set the reason and local_id columns aside and put the
        dictionary columns in the dictionary's order, so that the preview lines up."""
        try:
            self.read_header(dataset)
        except FileRefused:
            dataset.wipe()  # no row is checked against a header that is wrong
            raise

    def read_header(self, dataset):
        names = [dictionary.snake(shown(h)) if not is_blank(h) else "" for h in (dataset.headers or [])]
        own = [f.column_name for f in self.all_fields()]
        extra = EXTRA_COLUMNS.get(self.table, (REASON,))
        # A column without a name is passed over, as in the bulk import (a spreadsheet's empty column).
        unknown = [shown(h) for h, name in zip(dataset.headers or [], names) if name and name not in (*own, *extra)]
        if unknown:
            raise FileRefused(_("Unknown columns: %(columns)s. The columns are those of the data dictionary for "
                                "%(table)s: %(names)s; and %(extra)s.")
                              % {"columns": ", ".join(unknown), "table": self.table, "names": ", ".join(own),
                                 "extra": ", ".join(extra)})
        twice = sorted({name for name in names if name and names.count(name) > 1})
        if twice:
            raise FileRefused(_("The column %(columns)s appears twice.") % {"columns": ", ".join(twice)})
        if self.table == "patients":
            if not {"patient_id", dictionary.LOCAL_ID} & set(names):
                raise FileRefused(_("The file needs a patient_id column (blank for a new patient)."))
        else:
            needed = [key for key in dictionary.KEYS[self.table] if key not in names]
            if needed:
                raise FileRefused(_("The file needs the columns %(columns)s: they name the record of each row.")
                                  % {"columns": ", ".join(needed)})
        rows = [list(row) for row in dataset if not all(is_blank(cell) for cell in row)]
        if len(rows) > MAX_ROWS:
            raise FileRefused(_("The file has %(rows)s rows: the admin takes at most %(max)s. Import a whole "
                                "dataset on the registry's import page.") % {"rows": len(rows), "max": MAX_ROWS})
        self.present = [name for name in own if name in names or name == "patient_id"]
        positions = {name: i for i, name in enumerate(names)}
        self.extras = {number: {name: row[positions[name]] for name in extra if name in positions}
                       for number, row in enumerate(rows, 1)}
        dataset.wipe()
        dataset.headers = self.present
        for row in rows:
            dataset.append([row[positions[name]] if name in positions else None for name in self.present])

    def import_row(self, row, instance_loader, **kwargs):
        self.row_number, self.dry_run = kwargs.get("row_number"), kwargs.get("dry_run", False)
        return super().import_row(row, instance_loader, **kwargs)

    # --- the record of a row ------------------------------------------------------------------

    def key_cell(self, name, row):
        column = dictionary.column(self.table, name)
        try:
            value, _code = self.cell(column, row.get(name))
        except CellError as error:
            raise ValidationError({name: str(error)}) from None
        return value

    def get_or_init_instance(self, instance_loader, row):
        """The stored record the row's keys name (readable by the user), or a new one."""
        if self.table == "patients":
            return self.patient_of(row)
        patient_id = self.key_cell("patient_id", row)
        if patient_id is None:
            raise ValidationError({"patient_id": _("A value is required: the pseudonym of a patient in the "
                                                    "registry (a new patient is added on the patients' page).")})
        patient = access.patients_readable(self.user).filter(pk=patient_id).first()
        if patient is None:
            raise ValidationError({"patient_id": _("There is no patient %(id)s in the registry.") % {"id": patient_id}})
        keys = {}
        for name in dictionary.KEYS[self.table][1:]:
            value = self.key_cell(name, row)
            if value is None:
                raise ValidationError({name: _("A value is required: with patient_id it names the record.")})
            keys[dictionary.column(self.table, name).attname] = value
        self.once((patient_id, *keys.values()))
        found = list(self._meta.model.objects.filter(patient=patient, **keys).order_by("pk")[:2])
        if len(found) > 1:
            raise ValidationError(_("More than one record has these keys: change it in its own form."))
        if found:
            return found[0], False
        return self._meta.model(patient=patient, **keys), True

    def patient_of(self, row):
        patient_id = self.key_cell("patient_id", row)
        local_id = self.extras.get(self.row_number, {}).get(dictionary.LOCAL_ID)
        if patient_id is not None:
            if not is_blank(local_id):
                raise ValidationError({dictionary.LOCAL_ID: _(
                    "Fill either patient_id or local_id, not both: patient_id names a patient already in the "
                    "registry, local_id a patient new to it.")})
            self.once(patient_id)
            patient = access.patients_readable(self.user).filter(pk=patient_id).first()
            if patient is None:
                raise ValidationError({"patient_id": _(
                    "There is no patient %(id)s in the registry. Leave patient_id blank for a new patient: the "
                    "registry issues its pseudonym.") % {"id": patient_id}})
            return patient, False
        if not is_blank(local_id):
            column = next(c for c in dictionary.import_columns("patients") if c.name == dictionary.LOCAL_ID)
            try:
                local_id = self.converter(column)(local_id)
            except CellError as error:
                raise ValidationError({dictionary.LOCAL_ID: str(error)}) from None
            if local_id in self.local_ids:
                raise ValidationError({dictionary.LOCAL_ID: _("The local_id %(id)s is also in row %(row)s.")
                                       % {"id": local_id, "row": self.local_ids[local_id]}})
            self.local_ids[local_id] = self.row_number
        return Patient(), True

    def once(self, key):
        if key in self.seen:
            raise ValidationError(_("Row %(row)s names the same record: change it once.") % {"row": self.seen[key]})
        self.seen[key] = self.row_number

    def import_instance(self, instance, row, **kwargs):
        """The row's values (and missing-data codes) on the record; the keys are set already."""
        errors = {}
        codes = dict(getattr(instance, dictionary.MISSING_CODES_FIELD) or {})
        for field in self.get_import_fields():
            column = field.column
            if column.name == "patient_id":
                continue
            try:
                value, code = self.cell(column, row.get(column.name))
            except CellError as error:
                errors[column.name] = [str(error)]
                continue
            setattr(instance, column.attname, value)
            if code is None:
                codes.pop(column.attname, None)
            else:
                codes[column.attname] = code
        setattr(instance, dictionary.MISSING_CODES_FIELD, codes)
        reason = self.row_reason()
        if reason is not None and len(reason) > REASON_MAX_LENGTH:
            errors[REASON] = [_("Keep the reason to %(n)s characters.") % {"n": REASON_MAX_LENGTH}]
        if errors:
            raise ValidationError(errors)

    def skip_row(self, instance, original, row, import_validation_errors=None):
        # A new record is never "unchanged", even when its keys are all the row holds.
        return not instance._state.adding and super().skip_row(instance, original, row, import_validation_errors)

    def row_reason(self):
        raw = self.extras.get(self.row_number, {}).get(REASON)
        return self.reason if is_blank(raw) else shown(raw).strip()

    # --- saving, through the services ---------------------------------------------------------

    def save_instance(self, instance, is_create, row, **kwargs):
        """record_save, the one writer: its refusal is the row's error, at the column it names."""
        try:
            services.record_save(user=self.user, record=instance, source=SOURCE, reason=self.row_reason())
        except ValidationError as error:
            raise self.at_columns(error) from error
        except (PermissionDenied, services.StaleRecordError) as error:
            raise ValidationError(str(error)) from error
        if is_create and self.table == "patients" and not self.dry_run:
            self.issued.append((self.extras.get(self.row_number, {}).get(dictionary.LOCAL_ID), instance.patient_id))

    def at_columns(self, error):
        """The services' ValidationError with its keys as the file's columns (else above the row)."""
        if not hasattr(error, "error_dict"):
            return error
        names = {f.column_name for f in self.all_fields()} | {REASON}
        placed = {}
        for key, messages in error.message_dict.items():
            key = "patient_id" if key == "patient" else key
            placed.setdefault(key if key in names else NON_FIELD_ERRORS, []).extend(messages)
        return ValidationError(placed)

    def after_import_row(self, row, row_result, **kwargs):
        # A new patient's pseudonym is issued when the import is confirmed, not the one of the preview.
        if (self.dry_run and self.table == "patients" and row_result.import_type == row_result.IMPORT_TYPE_NEW
                and row_result.diff):
            position = [f.column_name for f in self.get_import_fields()].index("patient_id")
            row_result.diff[position] = format_html("<em>{}</em>", _("issued on confirmation"))

    def after_import(self, dataset, result, **kwargs):
        """The preview's columns are the file's; no sequence is reset (the database numbers the
        rows); the pseudonyms issued are handed to the admin's message."""
        result.diff_headers = self.get_diff_headers()
        result.issued_pseudonyms = list(self.issued)

    # --- export --------------------------------------------------------------------------------

    def get_export_fields(self, selected_fields=None):
        return self.all_fields()  # always the dictionary's columns, in its order


def resource_for(table):
    """The resource class of one dictionary table."""
    model = dictionary.TABLE_MODELS[table]
    declared = {column.name: ColumnField(column) for column in dictionary.columns(table)}
    names = tuple(declared)
    meta = type("Meta", (ClinicalResource.Meta,), {
        "model": model, "fields": names, "import_order": names, "export_order": names, "name": table,
        "import_id_fields": list(dictionary.KEYS[table])})
    return type(f"{model.__name__}Resource", (ClinicalResource,), {**declared, "Meta": meta, "table": table})


RESOURCES = {model: resource_for(table) for table, model in dictionary.TABLE_MODELS.items()}


def admin_export_log(*, user, table, file_format, patient_ids):
    """Log one export of a table's rows from the admin, as every export is (ExportLog): who, when,
    which centre (blank when the rows span several), the format, the data version and the rows."""
    centres = sorted({pid.split("-", 1)[0] for pid in patient_ids})  # the centre a pseudonym names
    who = access.audit_user(user)
    return ExportLog.objects.create(
        user=who, username=who.get_username() if who else "", scope=centres[0] if len(centres) == 1 else "",
        file_format=file_format, deidentify="none", data_version=selectors.data_version(centres or None),
        counts={table: len(patient_ids)})
