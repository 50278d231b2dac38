"""The data dictionary as data: one `Column` per column of ../shared/spec/data-dictionary.md.

Derived from the models (field types, null/blank, validators, max_length) and registry/codes.py
(the code lists), so the import validator, the export's dictionary file and its Stata/SPSS labels
have one source. Only what a model cannot say — natural keys, units, the wording of conditional
and cross-record rules — is written down here.

One column exists in import files only: `local_id`, the file's own key for a patient new to the
registry (the registry issues the pseudonym and answers with it). Every sheet names its row's
patient by `patient_id` (a patient already in the registry) or by `local_id` (a patient new in
the file). The registry stores and exports no local key.
"""
import datetime
import hashlib
import json
import re
from dataclasses import dataclass

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models.functions import Cast
from django.utils.translation import gettext_lazy as _

from registry.codes import MISSING_CODES
from registry.models import FollowUp, Metastasectomy, Patient, PrimaryTumour, SystemicTherapy, not_in_future

TABLE_MODELS = {
    "patients": Patient,
    "primary_tumours": PrimaryTumour,
    "metastasectomies": Metastasectomy,
    "systemic_therapies": SystemicTherapy,
    "follow_up": FollowUp,
}
TABLES = tuple(TABLE_MODELS)

# Natural keys: what identifies a row of each table across files (the import upserts by them).
KEYS = {
    "patients": ("patient_id",),
    "primary_tumours": ("patient_id",),
    "metastasectomies": ("patient_id", "surgery_date"),
    "systemic_therapies": ("patient_id", "start_date", "regimen"),
    "follow_up": ("patient_id", "event_date", "event"),
}

# The REDCap repeat instance is the registry's own numbering (registry.api.redcap), not a column
# of the dictionary: it is neither imported nor exported with the dataset.
BOOKKEEPING = ("id", "version", "status", "created_at", "updated_at", "redcap_instance")
# The record's missing-data codes are no column of their own: each optional column takes one of
# codes.MISSING_CODES in place of its value (Column.missing_codes).
MISSING_CODES_FIELD = "missing_codes"


def missing_codes_text():
    """A record's missing-data codes as the JSON text the database keeps, for reads of many rows
    (decode it with missing_codes_of). Most records have none: decoding every row's "{}" took
    about a tenth of the REDCap and ODM exports' time, and a dict in every row made each row an
    object the garbage collector tracks, and walks again and again while a large export is read."""
    return Cast(MISSING_CODES_FIELD, output_field=models.TextField())


def missing_codes_of(text):
    """{column: code} of a missing_codes_text() value."""
    return (json.loads(text) or {}) if text and text != "{}" else {}


LOCAL_ID = "local_id"
LOCAL_ID_MAX_LENGTH = 40

# Rules a model field cannot express, in the dictionary's words (conditional requirements are
# enforced by the models' clean(), cross-record rules by registry/rules.py).
EXISTING_PATIENT = _("existing patient; on import blank for a patient new in the file (then local_id)")
LOCAL_ID_ON_IMPORT = _("import only, instead of patient_id for a patient new in the file: the local_id "
                       "of its row on the patients sheet")
RULES = {
    ("patients", "patient_id"): _("registry pseudonym, issued by the registry; the part before '-' is the centre "
                                  "code; on import: a patient already in the registry, blank for a patient new in "
                                  "the file (then local_id)"),
    ("patients", LOCAL_ID): _("import only, instead of patient_id for a patient new in the file: the file's own "
                              "key for it (e.g. 1, 2, 3), unique in the file, not shaped like a pseudonym; "
                              "other sheets name the patient by it; the import answers with the pseudonym "
                              "issued for each local_id; never stored or exported"),
    ("patients", "centre"): _("an existing centre code; a user may only write patients of their centres"),
    ("patients", "lung_mets_diagnosis_date"): _("first radiological diagnosis; ≤ first PM surgery_date"),
    ("patients", "extrapulmonary_disease_at_pm"): _("metastases outside the lung at the first PM"),
    ("primary_tumours", "patient_id"): _("existing patient; at most one primary tumour per patient; on import blank "
                                         "for a patient new in the file (then local_id)"),
    ("primary_tumours", LOCAL_ID): LOCAL_ID_ON_IMPORT,
    ("primary_tumours", "diagnosis_date"): _("year ≥ birth_year"),
    ("primary_tumours", "surgery_date"): _("≥ diagnosis_date; ND when the primary was not resected"),
    ("primary_tumours", "radiotherapy_end_date"): _(
        "required when radiotherapy is neoadjuvant or adjuvant (UNK when the date is unknown, ND when it was not "
        "given after all); ≥ diagnosis_date"),
    ("metastasectomies", "patient_id"): EXISTING_PATIENT,
    ("metastasectomies", LOCAL_ID): LOCAL_ID_ON_IMPORT,
    ("metastasectomies", "surgery_date"): _(
        "≥ lung_mets_diagnosis_date for the first PM; two PMs of one patient cannot share a date"),
    ("systemic_therapies", "patient_id"): EXISTING_PATIENT,
    ("systemic_therapies", LOCAL_ID): LOCAL_ID_ON_IMPORT,
    ("systemic_therapies", "end_date"): _("blank while ongoing; ≥ start_date; UNK when it ended on an unknown date, "
                                          "ND when the therapy was not given after all"),
    ("systemic_therapies", "regimen_other"): _("required when regimen is 'other'"),
    ("follow_up", "patient_id"): EXISTING_PATIENT,
    ("follow_up", LOCAL_ID): LOCAL_ID_ON_IMPORT,
    ("follow_up", "event_date"): _("≥ first PM date; no event of any kind after a death"),
    ("follow_up", "event"): _("at most one death per patient"),
    ("follow_up", "recurrence_site"): _("required for a recurrence (a missing-data code does not stand in for it), "
                                        "blank otherwise"),
    ("follow_up", "cause_of_death"): _("only for a death"),
}
CONDITIONAL = {("primary_tumours", "radiotherapy_end_date"), ("systemic_therapies", "regimen_other"),
               ("follow_up", "recurrence_site"),
               *((table, name) for table in TABLES for name in ("patient_id", LOCAL_ID))}


@dataclass(frozen=True)
class Column:
    """One column of one table. `type` is the dictionary's: text, code, int, number, date, bool."""

    table: str
    name: str
    type: str
    label: str
    required: bool
    codes: tuple = ()          # ((code, label), ...) for code columns (centre: filled at run time)
    unit: str = ""
    low: object = None         # inclusive bounds for int/number
    high: object = None
    decimals: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    not_in_future: bool = False
    rule: str = ""
    missing_codes: tuple = ()  # ((code, label), ...) this column takes in place of a value: optional ones

    @property
    def attname(self):
        """The model attribute holding the value (foreign keys hold the code or pseudonym)."""
        return "centre_id" if self.name == "centre" else self.name

    @property
    def code_values(self):
        return tuple(code for code, _label in self.codes)


def _bounds(field):
    low = high = None
    for validator in field.validators:
        if isinstance(validator, MinValueValidator):
            low = validator.limit_value
        elif isinstance(validator, MaxValueValidator):
            high = validator.limit_value
    if field.name == "birth_year":  # validated by current_year_or_earlier
        high = datetime.date.today().year
    return low, high


def _unit(name, kind):
    for suffix, unit in (("_mm", "mm"), ("_days", "days"), ("_year", "year")):
        if name.endswith(suffix):
            return unit
    return "ISO date YYYY-MM-DD" if kind == "date" else ""


def _describe(column):
    """The rule text of a column: its range/codes/format plus the dictionary's own words."""
    parts = []
    if column.low is not None or column.high is not None:
        parts.append(f"{column.low} … {column.high}")
    if column.pattern:
        parts.append(column.pattern)
    if column.max_length and column.type == "text" and not column.pattern:
        parts.append(str(_("at most %(n)s characters") % {"n": column.max_length}))
    if column.not_in_future:
        parts.append(str(_("not in the future")))
    extra = RULES.get((column.table, column.name))
    if extra:
        parts.append(str(extra))
    return "; ".join(parts)


def _missing_codes(field):
    """The missing-data codes a field takes: those of codes.MISSING_CODES for an optional field
    (the models' one definition: ClinicalRecord.codable_fields), none for a required one."""
    if field.name not in field.model.codable_fields():
        return ()
    return tuple((code, str(label)) for code, label in MISSING_CODES)


def _column(table, field):
    name = field.name
    codes = ()
    pattern = None
    if isinstance(field, models.ForeignKey):
        if name == "centre":
            kind = "code"
        else:  # patient
            kind, name = "text", "patient_id"
            pattern = Patient._meta.get_field("patient_id").validators[0].regex.pattern
    elif field.choices:
        kind, codes = "code", tuple((code, str(label)) for code, label in field.choices)
    elif isinstance(field, models.BooleanField):
        kind = "bool"
    elif isinstance(field, models.DateField):
        kind = "date"
    elif isinstance(field, models.DecimalField):
        kind = "number"
    elif isinstance(field, models.IntegerField):
        kind = "int"
    else:
        kind = "text"
        pattern = next((v.regex.pattern for v in field.validators if isinstance(v, RegexValidator)), None)
    low, high = _bounds(field) if kind in ("int", "number") else (None, None)
    column = Column(
        table=table, name=name, type=kind, label=str(field.verbose_name), required=not field.null,
        codes=codes, unit=_unit(name, kind), low=low, high=high,
        decimals=field.decimal_places if kind == "number" else None,
        max_length=getattr(field, "max_length", None) if kind == "text" else None,
        pattern=pattern, not_in_future=not_in_future in field.validators,
        missing_codes=_missing_codes(field),
    )
    return Column(**{**column.__dict__, "rule": _describe(column)})


def _build():
    tables = {}
    for table, model in TABLE_MODELS.items():
        fields = [f for f in model._meta.concrete_fields if f.name not in (*BOOKKEEPING, MISSING_CODES_FIELD)]
        tables[table] = tuple(_column(table, f) for f in fields)
    return tables


def _local_id(table):
    column = Column(table=table, name=LOCAL_ID, type="text", label=str(_("local key (import only)")),
                    required=False, max_length=LOCAL_ID_MAX_LENGTH)
    return Column(**{**column.__dict__, "rule": _describe(column)})


COLUMNS = _build()
IMPORT_COLUMNS = {table: (*columns, _local_id(table)) for table, columns in COLUMNS.items()}


def columns(table):
    """The columns of one table in the dictionary's order."""
    return COLUMNS[table]


def import_columns(table):
    """The columns an import file may have for one table: the table's own, then `local_id`."""
    return IMPORT_COLUMNS[table]


_COLUMN = {(table, c.name): c for table, table_columns in COLUMNS.items() for c in table_columns}


def column(table, name):
    """One column of a table (a lookup: imports call it for every cell)."""
    return _COLUMN[table, name]


def required_label(col):
    if (col.table, col.name) in CONDITIONAL:
        return "conditional"
    return "yes" if col.required else "no"


def codes_text(pairs):
    """(code, label) pairs as the dictionary writes them: "code=label | code=label"."""
    return " | ".join(f"{code}={label}" for code, label in pairs)


def as_rows(centre_codes=()):
    """The dictionary as rows for the export: variable, table, type, label, codes, unit, required,
    rule, missing_codes.

    `codes` reads "code=label | code=label"; the centre column lists the centres given. Each table
    ends with `local_id`, the import-only column (its rule says so). `missing_codes` lists the
    missing-data codes an optional column takes in place of a value (UNK, ND, NA).
    """
    rows = []
    for table, cols in IMPORT_COLUMNS.items():
        for col in cols:
            codes = col.codes if col.name != "centre" else tuple((c, c) for c in centre_codes)
            rows.append({
                "variable": col.name, "table": table, "type": col.type, "label": col.label,
                "codes": codes_text(codes),
                "unit": col.unit, "required": required_label(col), "rule": col.rule,
                "missing_codes": codes_text(col.missing_codes),
            })
    return rows


def snake(name):
    """A sheet or file name as a table name: 'Follow-up' → 'follow_up'."""
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def version():
    """A short digest naming the data dictionary's structure: every table's columns with their
    types, code lists, bounds, units and whether they are required (labels and rule texts, which
    are translated, are left out). A freeze records it, so a result names the dictionary its data
    were entered under; it changes exactly when a column, a code or a bound does."""
    structure = [[c.table, c.name, c.type, c.required, list(c.code_values), c.unit, str(c.low),
                  "current year" if (c.table, c.name) == ("patients", "birth_year") else str(c.high),
                  c.decimals, c.max_length, c.pattern, c.not_in_future]
                 for table in TABLES for c in COLUMNS[table]]
    return hashlib.sha256(json.dumps(structure, separators=(",", ":")).encode()).hexdigest()[:16]
