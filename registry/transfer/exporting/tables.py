"""The export's content: the five tables as row iterators, the analysis frame, and de-identification.

Rows are read with `values_list(...).iterator()`, so a table never sits in memory as model
instances; columns are those of the data dictionary, in its order.

De-identification (the same for every table and the analysis frame of one export):
- shift-dates: every date of a patient moves back by the same offset, 1…180 days, derived from
  HMAC-SHA256(EXPORT_SHIFT_KEY, patient_id): stable across exports (and across rotations of
  SECRET_KEY), unknown without the key, and every interval within a patient is preserved. Only
  back: a date moved forward could lie after the export day, which would tell the offset's sign
  and bound (and the registry's own import would refuse the file).
- intervals: every date column <name> becomes <name>_days, the days from the patient's index
  operation (earliest metastasectomy); blank for a patient without one. No calendar information
  is left: birth_year is not exported (age_at_pm, whole years at the index operation, is), and
  the analysis frame's exclusion reason names no dates.
"""
import datetime
import hashlib
import hmac

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from registry import dictionary
from registry.index_date import index_date
from registry.models import Patient
from registry.transfer.exporting.missing import with_codes

DEIDENTIFY = ("none", "shift-dates", "intervals")
# Columns that are calendar information without being dates: left out of an intervals export.
CALENDAR_COLUMNS = {("patients", "birth_year")}
MAX_SHIFT_DAYS = 180
CHUNK = 2000


def shift_days(patient_id):
    """The secret, stable date offset of one patient: -180…-1 days (never 0, never forward)."""
    if not settings.EXPORT_SHIFT_KEY:
        raise ImproperlyConfigured("Set EXPORT_SHIFT_KEY to export with shifted dates.")
    digest = hmac.new(settings.EXPORT_SHIFT_KEY.encode(), b"export-date-shift:" + patient_id.encode(), hashlib.sha256)
    return -1 - int.from_bytes(digest.digest()[:8], "big") % MAX_SHIFT_DAYS


def scope_patients(centre=None):
    patients = Patient.objects.all()
    return patients.filter(centre_id=centre) if centre else patients


def index_dates(patients):
    """{patient_id: index date} of the patients in scope that have one."""
    return dict(patients.order_by().annotate(first=index_date()).filter(first__isnull=False)
                .values_list("patient_id", "first"))


class Deidentifier:
    """Turns one table's rows into their exported form (dates shifted or made intervals)."""

    def __init__(self, mode, patients=None, *, index=None):
        """`patients`: the Patient queryset in scope, whose index dates an intervals export reads;
        or `index`, those dates already known ({patient_id: date}, a freeze's)."""
        if mode not in DEIDENTIFY:
            raise ValueError(f"unknown de-identification {mode!r}: one of {', '.join(DEIDENTIFY)}")
        self.mode = mode
        self.index = {} if mode != "intervals" else index if index is not None else index_dates(patients)
        self._shifts = {}

    def shift(self, patient_id):
        days = self._shifts.get(patient_id)
        if days is None:
            days = self._shifts[patient_id] = shift_days(patient_id)
        return days

    def exported(self, table, column_name):
        """Whether a column of a dictionary table is exported in this mode."""
        return not (self.mode == "intervals" and (table, column_name) in CALENDAR_COLUMNS)

    def name(self, column_name, column_type):
        """The exported name of a column (date columns get '_days' in intervals mode)."""
        return f"{column_name}_days" if self.mode == "intervals" and column_type == "date" else column_name

    def date(self, patient_id, value):
        """One date (or moment) of a patient as exported: moved back by the patient's offset, the
        days from the index operation (None without one), or as it is."""
        if value is None or self.mode == "none":
            return value
        if self.mode == "shift-dates":
            return value + datetime.timedelta(days=self.shift(patient_id))
        index = self.index.get(patient_id)
        return (value - index).days if index is not None else None

    def converter(self, types):
        """A function (row tuple with patient_id first) → exported row tuple."""
        dates = [i for i, kind in enumerate(types) if kind == "date"]
        if self.mode == "none" or not dates:
            return None
        if self.mode == "shift-dates":
            deltas = {}

            def convert(row):
                delta = deltas.get(row[0])
                if delta is None:
                    delta = deltas[row[0]] = datetime.timedelta(days=self.shift(row[0]))
                row = list(row)
                for i in dates:
                    if row[i] is not None:
                        row[i] = row[i] + delta
                return row
        else:
            def convert(row):
                index = self.index.get(row[0])
                row = list(row)
                for i in dates:
                    if row[i] is not None:
                        row[i] = (row[i] - index).days if index is not None else None
                return row
        return convert


def table_rows(table, patients, deidentifier, since=None):
    """(columns, exported column names, row iterator, count) of one dictionary table in scope; a cell
    with a missing-data code holds it (registry/transfer/exporting/missing.py). With `since`, only the
    records created or changed at or after that moment (the change feed)."""
    model = dictionary.TABLE_MODELS[table]
    columns = [c for c in dictionary.columns(table) if deidentifier.exported(table, c.name)]
    lookups = [c.attname for c in columns] + [dictionary.MISSING_CODES_FIELD]
    if model is Patient:
        queryset = patients.order_by("patient_id")
    else:
        queryset = model.objects.filter(patient__in=patients.values("pk")).order_by(
            "patient_id", *[k for k in dictionary.KEYS[table][1:]], "pk")
    if since is not None:
        queryset = queryset.filter(updated_at__gte=since)
    names = [deidentifier.name(c.name, c.type) for c in columns]
    convert = deidentifier.converter([c.type for c in columns] + ["codes"])
    rows = queryset.values_list(*lookups).iterator(chunk_size=CHUNK)
    if convert is not None:
        rows = map(convert, rows)
    return columns, names, with_codes(columns, rows), queryset.count()


def frozen_index_dates(frozen_rows):
    """{patient_id: index date} from a freeze's metastasectomies (selectors.FrozenRows): the earliest
    operation, as index_dates() reads it from the live tables."""
    index = {}
    for patient_id, surgery_date in frozen_rows.rows("metastasectomies", ["patient_id", "surgery_date"]):
        if surgery_date is not None and (patient_id not in index or surgery_date < index[patient_id]):
            index[patient_id] = surgery_date
    return index


def frozen_table_rows(table, frozen_rows, deidentifier):
    """table_rows() of a data freeze (selectors.FrozenRows): the same columns, names, missing-data
    codes and order (patient, then the table's natural key, then the record id)."""
    columns = [c for c in dictionary.columns(table) if deidentifier.exported(table, c.name)]
    names = [deidentifier.name(c.name, c.type) for c in columns]
    wanted = [c.name for c in columns] + [dictionary.MISSING_CODES_FIELD]
    if table == "patients":
        rows = sorted(frozen_rows.rows(table, wanted), key=lambda row: row[0])
    else:
        keys = ["patient_id", *dictionary.KEYS[table][1:], "id"]
        keyed = frozen_rows.rows(table, keys + wanted)
        rows = [row[len(keys):] for row in sorted(keyed, key=lambda row: row[:len(keys)])]
    convert = deidentifier.converter([c.type for c in columns] + ["codes"])
    return columns, names, with_codes(columns, rows if convert is None else map(convert, rows)), len(rows)


def frame_deidentified(frame, deidentifier):
    """The analysis frame with index_date shifted or made index_date_days (= 0)."""
    if deidentifier.mode == "none" or frame is None or "index_date" not in frame:
        return frame
    frame = frame.copy()
    if deidentifier.mode == "shift-dates":
        import pandas as pd
        offsets = pd.to_timedelta(frame["patient_id"].map(deidentifier.shift), unit="D")
        frame["index_date"] = frame["index_date"] + offsets
    else:
        position = frame.columns.get_loc("index_date")
        days = (frame["index_date"] - frame["index_date"]).dt.days.astype("Int64")
        frame = frame.drop(columns=["index_date"])
        frame.insert(position, "index_date_days", days)
        # The study period's criterion names its calendar dates: say it without them.
        period = frame["exclusion_reason"].fillna("").str.startswith("index date outside")
        frame.loc[period, "exclusion_reason"] = "index date outside the study period"
    return frame
