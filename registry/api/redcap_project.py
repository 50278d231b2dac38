"""The registry as a classic REDCap project: its instruments, fields and data dictionary.

One instrument per table of the data dictionary, fields in table order; each repeating instrument
ends with `<instrument>_id`, the registry's own ID of the record (read-only). See
registry.api.redcap for the layout of exported records and the protocol.
"""
import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.text import capfirst

from registry.api.serializers import dictionary_columns
from registry.codes import MISSING_CODES
from registry.models import FollowUp, Metastasectomy, Patient, PrimaryTumour, SystemicTherapy

# The REDCap release whose API behaviour this endpoint follows (answered to content=version).
REDCAP_VERSION = "14.5.0"
RECORD_ID = "patient_id"

METADATA_COLUMNS = [
    "field_name", "form_name", "section_header", "field_type", "field_label", "select_choices_or_calculations",
    "field_note", "text_validation_type_or_show_slider_number", "text_validation_min", "text_validation_max",
    "identifier", "branching_logic", "required_field", "custom_alignment", "question_number",
    "matrix_group_name", "matrix_ranking", "field_annotation",
]

# Two columns of the primary tumour share their names with the metastasectomy's; REDCap field
# names are unique across instruments, so these two carry the prefix of the analysis frame.
RENAMED = {("primary_tumours", "surgery_date"): "primary_surgery_date", ("primary_tumours", "margin"): "primary_margin"}

BRANCHING = {
    "radiotherapy_end_date": "[radiotherapy] = 'neoadjuvant' or [radiotherapy] = 'adjuvant'",
    "regimen_other": "[regimen] = 'other'",
    "recurrence_site": "[event] = 'recurrence'",
    "cause_of_death": "[event] = 'death'",
}

COMPLETE = "2"  # REDCap's form status "Complete": a record in the registry has passed every rule

# REDCap's project-wide missing data codes (project info `missing_data_codes`, "code, label | ..."):
# any field may hold one instead of a value, except those whose annotation has the @NOMISSING
# action tag; here every required field has it, as only optional columns take a code.
MISSING_DATA_CODES = " | ".join(f"{code}, {label}" for code, label in MISSING_CODES)
NO_MISSING = "@NOMISSING"


@dataclass(frozen=True)
class Form:
    name: str
    label: str
    model: type
    repeating: bool


FORMS = [
    Form("patients", "Patient", Patient, False),
    Form("primary_tumours", "Primary tumour", PrimaryTumour, False),
    Form("metastasectomies", "Metastasectomies", Metastasectomy, True),
    Form("systemic_therapies", "Systemic therapies", SystemicTherapy, True),
    Form("follow_up", "Follow-up", FollowUp, True),
]


@dataclass
class Field:
    name: str            # REDCap field name
    form: Form
    column: str          # the dictionary's column (= the .values() key)
    model_field: object  # None for the record ID field

    @property
    def choices(self):
        field = self.model_field
        return [(str(code), str(label)) for code, label in field.choices] if field is not None and field.choices else []

    @property
    def is_registry_id(self):
        return self.column == "id"

    def export(self, value, *, label=False, centres=None, code=None, decimal="."):
        """A stored value as REDCap exports it: always text, "" for unknown; a missing-data `code`
        in place of the value, as REDCap does (its label with rawOrLabel=label); numbers with the
        decimal character asked for (REDCap's decimalCharacter)."""
        if code:
            return missing_code_text(code, label=label)
        if value is None:
            return ""
        return self.formatter(label=label, centres=centres, decimal=decimal)(value)

    def formatter(self, *, label=False, centres=None, decimal="."):
        """export() of a known value (not None, no missing-data code) as a function of the value,
        the field's lookups done once: a record export calls it for every cell."""
        if label and self.column == "centre" and centres:
            def other(value):
                return centres.get(value, value)
        elif label and self.choices:
            choices = dict(self.choices)

            def other(value):
                return choices.get(str(value), str(value))
        else:
            other = str
        yes, no = ("Yes", "No") if label else ("1", "0")

        def formatted(value):
            if isinstance(value, bool):
                return yes if value else no
            if isinstance(value, datetime.date):
                return value.isoformat()
            if isinstance(value, Decimal):
                return str(value).replace(".", decimal)
            return other(value)
        return formatted


def missing_code_text(code, *, label=False):
    """A missing-data code as REDCap exports it: the code, or with rawOrLabel=label its label."""
    return str(dict(MISSING_CODES).get(code, code)) if label else code


def _bounds(model_field):
    low = next((v.limit_value for v in model_field.validators if isinstance(v, MinValueValidator)), None)
    high = next((v.limit_value for v in model_field.validators if isinstance(v, MaxValueValidator)), None)
    if model_field.name == "birth_year":
        high = datetime.date.today().year
    return ("" if low is None else str(low)), ("" if high is None else str(high))


def all_fields():
    """Every REDCap field in instrument order; the record ID first."""
    fields = []
    for form in FORMS:
        for column in dictionary_columns(form.model):
            if column == RECORD_ID and form.model is not Patient:
                continue
            model_field = None if column == RECORD_ID else form.model._meta.get_field(
                "centre" if column == "centre" else column)
            fields.append(Field(RENAMED.get((form.name, column), column), form, column, model_field))
        if form.repeating:
            fields.append(Field(registry_id_field(form), form, "id", form.model._meta.pk))
    return fields


def registry_id_field(form):
    """The field holding the registry's ID of a repeating record, e.g. `metastasectomies_id`."""
    return f"{form.name}_id"


FIELDS = all_fields()
FIELDS_BY_NAME = {field.name: field for field in FIELDS}
FORMS_BY_NAME = {form.name: form for form in FORMS}


def instrument_rows():
    """The project's instruments as REDCap lists them (content=instrument)."""
    return [{"instrument_name": form.name, "instrument_label": form.label} for form in FORMS]


def repeating_rows():
    """The repeating instruments of this classic project, as REDCap's repeatingFormsEvents export
    gives them and its import takes them."""
    return [{"form_name": form.name, "custom_form_label": ""} for form in FORMS if form.repeating]


def metadata_row(field, centres):
    """One row of REDCap's data dictionary for a field."""
    row = dict.fromkeys(METADATA_COLUMNS, "")
    row.update(field_name=field.name, form_name=field.form.name, field_type="text",
               field_annotation=f"registry column: {field.form.name}.{field.column}")
    model_field = field.model_field
    if model_field is None:
        row.update(field_label="Patient ID", required_field="y",
                   field_note="Registry pseudonym, e.g. MUC-7K3QZ9.",
                   field_annotation=f"{row['field_annotation']} {NO_MISSING}")
        return row
    if field.is_registry_id:
        row.update(field_label="Registry ID", text_validation_type_or_show_slider_number="integer",
                   field_note="The registry's ID of this record: given by the registry, never changed.",
                   field_annotation=f"@READONLY registry column: {field.form.name}.id")
        return row
    row.update(field_label=str(capfirst(model_field.verbose_name)), field_note=str(model_field.help_text or ""),
               required_field="" if model_field.null else "y", branching_logic=BRANCHING.get(field.column, ""))
    if model_field.name not in field.form.model.codable_fields():
        row["field_annotation"] += f" {NO_MISSING}"
    if field.column == "centre":
        row.update(field_type="dropdown",
                   select_choices_or_calculations=" | ".join(f"{code}, {name}" for code, name in centres.items()))
    elif field.choices:
        row.update(field_type="dropdown",
                   select_choices_or_calculations=" | ".join(f"{code}, {label}" for code, label in field.choices))
    elif isinstance(model_field, models.BooleanField):
        row.update(field_type="yesno")
    elif isinstance(model_field, models.DateField):
        row.update(text_validation_type_or_show_slider_number="date_ymd", text_validation_max="today")
    elif isinstance(model_field, models.DecimalField):
        low, high = _bounds(model_field)
        row.update(text_validation_type_or_show_slider_number="number_1dp", text_validation_min=low,
                   text_validation_max=high)
    elif isinstance(model_field, models.IntegerField):
        low, high = _bounds(model_field)
        row.update(text_validation_type_or_show_slider_number="integer", text_validation_min=low,
                   text_validation_max=high)
    return row
