"""The data of a REDCap import as rows of raw text: {field name: text}, from JSON (a list of
objects) or CSV (a header line, then one line per row)."""
import csv
import io
import json

from registry.api.redcap_project import FIELDS_BY_NAME, FORMS, RECORD_ID
from registry.api.redcap_protocol import RedcapError

DAG_COLUMN = "redcap_data_access_group"
SPECIAL = {RECORD_ID, "redcap_repeat_instrument", "redcap_repeat_instance", DAG_COLUMN}
COMPLETES = {f"{form.name}_complete" for form in FORMS}


def as_text(value, where):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float, str)):
        if "\x00" in str(value):  # JSON may write one as \u0000; no field holds one
            raise RedcapError(f"The data are not valid: {where} holds a NUL character.")
        return str(value)
    raise RedcapError(f"The data are not valid: {where} holds a list or an object, not a value.")


def read_json(data):
    """The rows of JSON data: a list of objects of field names and values."""
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: arrays nested deeper than the parser goes
        raise RedcapError("The data are not valid JSON: send a list of records, each an object of field names "
                          "and values.") from None
    if not isinstance(parsed, list) or not all(isinstance(item, dict) for item in parsed):
        raise RedcapError("The data are not valid: send a list of records, each an object of field names and "
                          "values.")
    return [{as_text(name, f"row {number}").strip(): as_text(value, f"row {number}, {name}")
             for name, value in item.items()} for number, item in enumerate(parsed, start=1)]


def read_csv(data, delimiter):
    """The rows of CSV data (its first line names the fields)."""
    try:
        lines = list(csv.reader(io.StringIO(data.lstrip("\ufeff")), delimiter=delimiter))
    except csv.Error as error:  # e.g. a field longer than the csv module reads
        raise RedcapError(f"The data are not valid CSV: {error}.") from None
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
