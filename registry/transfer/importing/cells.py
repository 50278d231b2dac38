"""Cell converters built from the data dictionary: raw cell (str, number, date, bool) → stored value.

One small closure per column, chosen once per sheet, so a row costs a few function calls and no
model validation machinery (`full_clean()` would cost ~100 µs a row). The conventions are the
dictionary's: ISO dates (Excel dates and serial numbers too), '.' decimals (',' in a ';'-separated
CSV), yes/no/true/false/1/0, codes case-insensitive and stored as listed, blank = unknown.
"""
import datetime
import re
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from registry.codes import MISSING_CODES, values
from registry.dictionary import LOCAL_ID
from registry.models import PATIENT_ID_PATTERN, not_in_future

EXCEL_EPOCH = datetime.date(1899, 12, 30)  # serial 1 = 1900-01-01 (after Excel's 1900 leap-year bug)
ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T]00:00(?::00(?:\.0+)?)?)?$")
SERIAL = re.compile(r"^\d{5}(?:\.0+)?$")
INTEGER = re.compile(r"^[+-]?\d+(?:\.0+)?$")
TRUE = {"yes", "true", "1"}
FALSE = {"no", "false", "0"}
NEUTRALISED = re.compile(r"^'[=+\-@]")  # the export's formula neutralisation, undone on import
# Control characters XML cannot carry (the xlsx export) and PostgreSQL cannot store (NUL).
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
MAX_DIGITS = 20  # longer numbers are out of every range, and int() refuses > 4300 digits
PSEUDONYM_SHAPE = re.compile(PATIENT_ID_PATTERN)


MISSING = {code.lower(): code for code in values(MISSING_CODES)}  # UNK, ND, NA in any case
KEY_COLUMNS = ("patient_id", LOCAL_ID, "centre")  # keys, not data: a cell there is never a missing-data code


class CellError(ValueError):
    """A cell value that the dictionary does not allow; the message is for a study nurse."""


def is_blank(raw):
    return raw is None or (isinstance(raw, str) and not raw.strip())


def shown(raw):
    """A raw cell as the error report shows it."""
    if raw is None:
        return ""
    if isinstance(raw, (datetime.date, datetime.datetime)):
        return raw.isoformat()
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw)


def _text(column):
    pattern = re.compile(column.pattern) if column.pattern else None
    max_length = column.max_length

    def convert(raw):
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        value = str(raw).strip()
        if NEUTRALISED.match(value):
            value = value[1:]
        if control := CONTROL.search(value):
            raise CellError(_("Contains the control character U+%(code)04X, which cannot be stored: remove it.")
                            % {"code": ord(control.group())})
        if max_length and len(value) > max_length:
            raise CellError(_("Too long: at most %(n)s characters.") % {"n": max_length})
        if pattern and not pattern.match(value):
            if column.name == "patient_id":
                raise CellError(_("Not a patient ID: a patient ID looks like MUC-7K3QZ9 (centre code, '-', "
                                  "2 to 12 capital letters or digits)."))
            raise CellError(_("Does not have the required format %(pattern)s.") % {"pattern": column.pattern})
        return value
    return convert


def _local_id(column):
    text = _text(column)

    def convert(raw):
        value = text(raw)
        # Only the registry issues pseudonyms: a key shaped like one would pass for one.
        if PSEUDONYM_SHAPE.match(value.upper()):
            raise CellError(_("Looks like a registry pseudonym. A local_id is your own key for a patient new in this "
                              "file, e.g. 1, 2, 3 or P017 (the registry issues the pseudonym); a patient already in "
                              "the registry is named by its pseudonym in patient_id instead."))
        return value
    return convert


def _code(column, codes):
    lookup = {str(code).lower(): code for code in codes}
    listing = ", ".join(codes) if len(codes) <= 12 else ", ".join(codes[:12]) + ", …"

    def convert(raw):
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        value = lookup.get(str(raw).strip().lower())
        if value is None:
            if column.name == "centre":
                raise CellError(_("There is no centre with this code."))
            raise CellError(_("Not a code of %(label)s: use one of %(codes)s.")
                            % {"label": column.label, "codes": listing})
        return value
    return convert


def _check_range(column, value):
    if (column.low is not None and value < column.low) or (column.high is not None and value > column.high):
        raise CellError(_("Out of range: %(label)s must be between %(low)s and %(high)s.")
                        % {"label": column.label, "low": column.low, "high": column.high})
    return value


def _int(column):
    def convert(raw):
        if isinstance(raw, bool):
            raise CellError(_("Not a whole number."))
        if isinstance(raw, int):
            value = raw
        elif isinstance(raw, float):
            if not raw.is_integer():
                raise CellError(_("Not a whole number."))
            value = int(raw)
        else:
            text = str(raw).strip()
            if not INTEGER.match(text):
                raise CellError(_("Not a whole number."))
            if len(text) > MAX_DIGITS:
                raise CellError(_("The number is too large."))
            value = int(text.split(".")[0])
        return _check_range(column, value)
    return convert


def _number(column, decimal_comma):
    step = Decimal(1).scaleb(-column.decimals)

    def convert(raw):
        if isinstance(raw, bool):
            raise CellError(_("Not a number."))
        if isinstance(raw, float):
            text = repr(raw)
        else:
            text = str(raw).strip()
            if decimal_comma and "," in text and "." not in text:
                text = text.replace(",", ".")
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise CellError(_("Not a number (use '.' as the decimal separator).")) from None
        if not value.is_finite():
            raise CellError(_("Not a number."))
        if value.adjusted() >= MAX_DIGITS:  # before any arithmetic: 1e1000000 overflows it
            raise CellError(_("The number is too large."))
        rounded = value.quantize(step) if abs(value) < 10**6 else value
        if rounded != value:
            raise CellError(_("At most %(n)s decimal place(s).") % {"n": column.decimals})
        return _check_range(column, rounded)
    return convert


def _from_serial(serial):
    if not 1 <= serial <= 2958465:
        raise CellError(_("Not a date: write it as YYYY-MM-DD."))
    return EXCEL_EPOCH + datetime.timedelta(days=serial)


def _date(column):
    def convert(raw):
        value = parse(raw)
        if column.not_in_future:  # the model's own validator, so its message
            try:
                not_in_future(value)
            except ValidationError as error:
                raise CellError(" ".join(error.messages)) from None
        return value

    def parse(raw):
        if isinstance(raw, datetime.datetime):
            if raw.time() != datetime.time(0):
                raise CellError(_("A date without a time of day is expected."))
            return raw.date()
        if isinstance(raw, datetime.date):
            return raw
        if isinstance(raw, bool):
            raise CellError(_("Not a date: write it as YYYY-MM-DD."))
        if isinstance(raw, (int, float)):
            if isinstance(raw, float) and not raw.is_integer():
                raise CellError(_("A date without a time of day is expected."))
            return _from_serial(int(raw))
        text = str(raw).strip()
        match = ISO_DATE.match(text)
        if match:
            try:
                return datetime.date(*map(int, match.groups()))
            except ValueError:
                raise CellError(_("There is no such date.")) from None
        if SERIAL.match(text):
            return _from_serial(int(text.split(".")[0]))
        raise CellError(_("Not a date: write it as YYYY-MM-DD."))
    return convert


def _bool(column):
    def convert(raw):
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, (int, float)) and raw in (0, 1):
            return bool(raw)
        text = str(raw).strip().lower()
        if text in TRUE:
            return True
        if text in FALSE:
            return False
        raise CellError(_("Not yes or no (also accepted: true/false, 1/0)."))
    return convert


def missing_code(column, raw):
    """The missing-data code a cell of `column` holds (UNK, ND or NA, any case), or None.

    Looked for in every data column, so a code in a required column is reported as such rather
    than as a malformed value; a code column whose own codes include it reads it as its own."""
    if raw.__class__ is not str or column.name in KEY_COLUMNS:
        return None
    code = MISSING.get(raw.strip().lower())
    if code is None or (column.type == "code" and code.lower() in {c.lower() for c in column.code_values}):
        return None
    return code


def converter(column, *, centre_codes=(), decimal_comma=False):
    """The function that turns a non-blank raw cell of `column` into its stored value."""
    if column.type == "code":
        return _code(column, tuple(centre_codes) if column.name == "centre" else column.code_values)
    if column.type == "int":
        return _int(column)
    if column.type == "number":
        return _number(column, decimal_comma)
    if column.type == "date":
        return _date(column)
    if column.type == "bool":
        return _bool(column)
    if column.name == LOCAL_ID:
        return _local_id(column)
    return _text(column)
