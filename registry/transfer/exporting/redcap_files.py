"""The export's REDCap files: the dataset as a classic REDCap project a coordinator can recreate.

- redcap_data_dictionary.csv: REDCap's data dictionary with its 18 columns headed as REDCap's
  "Download data dictionary" writes them (Project Setup > Data Dictionary takes it as it is): one
  instrument per table, the fields of the REDCap-compatible API (registry.api.redcap_project):
  dropdowns with the dictionary's code lists, yes/no fields, date_ymd / integer / number_1dp
  validation with the dictionary's bounds, branching logic for the conditional fields, and in
  every field's annotation the dictionary column it holds;
- redcap_instruments.csv: instrument_name, instrument_label, as REDCap's instrument export lists them;
- redcap_repeating_instruments.csv: form_name, custom_form_label, the repeating instruments as
  REDCap's repeatingFormsEvents API import takes them (REDCap declares them in the project setup:
  declare them before importing the records);
- redcap_records.csv: the records in REDCap's flat layout, built by the API's own record export
  (registry.api.redcap.record_rows): a row per patient with its patient and primary tumour, then a
  row per repeating instance (redcap_repeat_instrument, and redcap_repeat_instance: the record's
  own number, given when it was entered and never changed).

The records are those of the export's scope, de-identified as its tables: shifted dates, or for
intervals every date field <name> becomes the integer field <name>_days (days from the index
operation) and birth_year is left out, in the dictionary and the records alike. Free text that a
spreadsheet would run as a formula is prefixed with an apostrophe, as in the API's CSV.
"""
import csv
import io
import operator

from django.db import models
from django.utils.datastructures import MultiValueDict

from registry import access
from registry.api.redcap import record_rows
from registry.api.redcap_project import FIELDS, METADATA_COLUMNS, instrument_rows, metadata_row, repeating_rows
from registry.transfer.exporting.writers import neutral

# The header of REDCap's data dictionary download, column for column METADATA_COLUMNS (the API's names).
DICTIONARY_HEADER = [
    "Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
    "Choices, Calculations, OR Slider Labels", "Field Note", "Text Validation Type OR Show Slider Number",
    "Text Validation Min", "Text Validation Max", "Identifier?", "Branching Logic (Show field only if...)",
    "Required Field?", "Custom Alignment", "Question Number (surveys only)", "Matrix Group Name",
    "Matrix Ranking?", "Field Annotation",
]
DICTIONARY = "redcap_data_dictionary.csv"
INSTRUMENTS = "redcap_instruments.csv"
REPEATING = "redcap_repeating_instruments.csv"
RECORDS = "redcap_records.csv"
FILES = (DICTIONARY, INSTRUMENTS, REPEATING, RECORDS)
BATCH = 1000  # patients per read of the records


def _is_date(field):
    return isinstance(field.model_field, models.DateField)


def _is_free_text(field):
    return isinstance(field.model_field, models.CharField) and not field.choices


def _exported(field, deidentifier):
    return field.model_field is None or deidentifier.exported(field.form.name, field.column)


def _name(field, deidentifier):
    """The field's name in this export: <name>_days for a date in an intervals export."""
    return deidentifier.name(field.name, "date" if _is_date(field) else "text")


def dictionary_rows(centres, deidentifier):
    """The data dictionary's rows (METADATA_COLUMNS order) of the fields this export holds."""
    rows = []
    for field in FIELDS:
        if not _exported(field, deidentifier):
            continue
        row = metadata_row(field, centres)
        if _is_date(field) and deidentifier.mode == "intervals":
            row.update(field_name=_name(field, deidentifier), field_label=f"{row['field_label']}: days from the "
                       "index operation", field_note="Days from the patient's first metastasectomy; negative: "
                       "before it.", text_validation_type_or_show_slider_number="integer",
                       text_validation_min="", text_validation_max="")
        rows.append([row[column] for column in METADATA_COLUMNS])
    return rows


def _date_converter(deidentifier):
    """convert(form, row) for record_rows: a row's dates as this export writes them."""
    if deidentifier.mode == "none":
        return None
    dates = {}
    for field in FIELDS:
        if _is_date(field):
            dates.setdefault(field.form.name, []).append(field.column)

    def convert(form, row):
        columns = dates.get(form.name)
        if not columns:
            return row
        row = dict(row)
        for column in columns:
            row[column] = deidentifier.date(row["patient_id"], row[column])
        return row
    return convert


def _write_csv(archive, filename, header, rows):
    with archive.open(filename, "w", force_zip64=True) as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        text.flush()
        text.detach()


def write_redcap_files(archive, *, patients, centres, deidentifier):
    """Add the four REDCap files (FILES) to the export's archive.

    `patients` is the export's scope (a Patient queryset), `centres` {code: name} the centres of
    the centre field's choices."""
    _write_csv(archive, DICTIONARY, DICTIONARY_HEADER, dictionary_rows(centres, deidentifier))
    _write_csv(archive, INSTRUMENTS, ["instrument_name", "instrument_label"],
               [[row["instrument_name"], row["instrument_label"]] for row in instrument_rows()])
    _write_csv(archive, REPEATING, ["form_name", "custom_form_label"],
               [[row["form_name"], row["custom_form_label"]] for row in repeating_rows()])
    _write_csv(archive, RECORDS, *_records(patients, deidentifier))


def _records(patients, deidentifier):
    """(header, rows) of the flat records. The API's record export holds its rows in memory (a dict
    of every column per row): read BATCH patients at a time, it stays at a few tens of MB."""
    ids = list(patients.order_by("patient_id").values_list("pk", flat=True))
    batches = [ids[start:start + BATCH] for start in range(0, len(ids), BATCH)] or [[]]
    convert = _date_converter(deidentifier)
    _rows, columns, _labels = record_rows(access.SYSTEM, MultiValueDict(), patients=patients.none())
    fields = {field.name: field for field in FIELDS}
    kept = [column for column in columns if column not in fields or _exported(fields[column], deidentifier)]
    # Only free text can start like a formula; a number (days before the index operation) keeps its sign.
    free_text = [i for i, column in enumerate(kept) if column in fields and _is_free_text(fields[column])]
    values = operator.itemgetter(*kept)

    def rows():
        for batch in batches:
            # A batch as a range of pseudonyms (the ids' own order): a list of 1,000 ids, one query
            # parameter each, in each of the five queries of a batch took longer than their rows.
            in_batch = patients.filter(pk__gte=batch[0], pk__lte=batch[-1]) if batch else patients.none()
            batch_rows, _columns, _labels = record_rows(access.SYSTEM, MultiValueDict(), patients=in_batch,
                                                        convert=convert)
            for row in batch_rows:
                row = list(values(row))
                for i in free_text:
                    row[i] = neutral(row[i])
                yield row
    return [_name(fields[column], deidentifier) if column in fields else column for column in kept], rows()
