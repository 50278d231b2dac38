"""The canonical form of a data freeze: what a frozen case is, how its content hash is computed,
and what changed between two states of the registry. Pure functions over rows; the reads are
registry.selectors, the writes registry.services.freezes.

The canonical serialisation (format 1), hashed with SHA-256 as UTF-8:

    {"columns":{"follow_up":[...],"metastasectomies":[...],...},"format":1}\\n
    [patient row,[primary tumour rows],[metastasectomy rows],[systemic therapy rows],[follow-up rows]]\\n
    ... one line per patient, in patient_id order (Unicode code points, not a database collation)

- JSON with sorted keys, no spaces, non-ASCII characters as they are;
- each row is an array of values in the order of `columns(table)`: the data dictionary's columns
  (registry.dictionary), with the record's `id` first for the four tables below patients (the
  key by which a record is followed across freezes), then its missing-data codes (an object
  {column: "UNK" | "ND" | "NA"}, keys sorted) and its data-management `status` last;
  bookkeeping (version, created and updated times) is left out;
- dates are ISO strings (YYYY-MM-DD), numbers with decimals are strings as stored ("15.0"),
  booleans true/false, unknown values null; records of a patient are in id order.

The same registry content always gives the same lines and hash, whenever and wherever it is
frozen (two freezes of unchanged data have the same hash).
"""
import datetime
import gc
import hashlib
import json
import operator
from decimal import Decimal

from registry import dictionary

FORMAT = 1
TABLES = dictionary.TABLES  # patients first, then the four tables of a patient's records
CHILD_TABLES = TABLES[1:]
RULES = ("all", "verified")
VERIFIED_STATUSES = ("verified", "locked")


def columns(table):
    """The frozen columns of a table, in order."""
    names = [column.name for column in dictionary.columns(table)] + [dictionary.MISSING_CODES_FIELD, "status"]
    return tuple(names if table == "patients" else ["id", *names])


def attname(table, name):
    """The model attribute (values_list lookup) holding a frozen column."""
    return "centre_id" if (table, name) == ("patients", "centre") else name


def column_type(table, name):
    """The data dictionary's type of a frozen column ("int" for the record id, "code" for status,
    "codes" for the missing-data codes, {column: code})."""
    if name == "id":
        return "int"
    if name == "status":
        return "code"
    if name == dictionary.MISSING_CODES_FIELD:
        return "codes"
    return dictionary.column(table, name).type


def _dumps(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def header():
    """The first line of the serialisation: the format and every table's columns."""
    return _dumps({"columns": {table: list(columns(table)) for table in TABLES}, "format": FORMAT})


def _encode(value):
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def case_line(patient_row, records):
    """The canonical line of one case: `patient_row` a tuple in columns("patients") order,
    `records` {child table: [row tuples in columns(table) order]} (any order: sorted by id here)."""
    case = [[_encode(v) for v in patient_row]]
    for table in CHILD_TABLES:
        case.append([[_encode(v) for v in row] for row in sorted(records.get(table, ()), key=lambda row: row[0])])
    return _dumps(case)


def content_hash(lines):
    """The SHA-256 (hex) of the serialisation: the header, then the case lines given (in order)."""
    digest = hashlib.sha256((header() + "\n").encode())
    for line in lines:
        digest.update((line + "\n").encode())
    return digest.hexdigest()


def decoder(table, names=None, *, number=Decimal, date=datetime.date.fromisoformat):
    """A function: a frozen row (JSON values) -> a tuple of the values of the columns `names` (None:
    every column) as the models hold them: `date` for dates (datetime.date; None: the ISO text, for
    arrays that parse it at once) and `number` for numbers with decimals (Decimal, or float)."""
    frozen_names = columns(table)
    names = frozen_names if names is None else names
    get = operator.itemgetter(*[frozen_names.index(name) for name in names])
    pick = (lambda row: (get(row),)) if len(names) == 1 else get
    converts = [(position, convert) for position, name in enumerate(names)
                if (convert := {"date": date, "number": number}.get(column_type(table, name))) is not None]
    if not converts:  # codes, text, integers and booleans are stored as they are
        return pick

    def decode(row):
        values = list(pick(row))
        for position, convert in converts:
            if values[position] is not None:
                values[position] = convert(values[position])
        return tuple(values)
    return decode


def tables_of(lines):
    """The rows of many canonical lines, table by table: [patient rows, primary tumour rows, ...].

    One JSON document for them all, parsed with the cyclic garbage collector paused: the ~700,000
    objects of 10,000 cases set off collection after collection, which made the parse 3-5 times
    slower (JSON values hold no reference cycles, so there is nothing for it to find)."""
    document = "[" + ",".join(lines) + "]"
    collecting = gc.isenabled()
    gc.disable()
    try:
        cases = json.loads(document)
        tables = [[case[0] for case in cases]]
        for position in range(1, len(TABLES)):
            tables.append([row for case in cases for row in case[position]])
    finally:
        if collecting:
            gc.enable()
    return tables


def case_tables(line):
    """{table: [rows as JSON values]} of one canonical line."""
    return dict(zip(TABLES, [[row] if i == 0 else row for i, row in enumerate(json.loads(line))]))


# --- what changed ----------------------------------------------------------------------------------

def _keyed(line, table):
    """{record key: row} of one table of a case (patients: the pseudonym; other tables: the id)."""
    if line is None:
        return {}
    return {row[0]: row for row in case_tables(line)[table]}


def case_changes(before, after):
    """[(table, change, record key, [changed columns])] between two canonical lines of one patient
    (None where the patient is absent); change is "added", "changed" or "removed"."""
    changes = []
    for table in TABLES:
        old, new, names = _keyed(before, table), _keyed(after, table), columns(table)
        for key in sorted(old.keys() | new.keys(), key=str):
            if key not in old:
                changes.append((table, "added", key, []))
            elif key not in new:
                changes.append((table, "removed", key, []))
            elif old[key] != new[key]:
                fields = [name for name, a, b in zip(names, old[key], new[key]) if a != b]
                changes.append((table, "changed", key, fields))
    return changes


def diff(before, after):
    """Every change from one state to another, each given as {patient_id: (centre, line)}: a list
    of {centre, table, change, patient_id, record_id, fields}, by patient then table."""
    rows = []
    for patient_id in sorted(before.keys() | after.keys()):
        old, new = before.get(patient_id), after.get(patient_id)
        if old is not None and new is not None and old[1] == new[1]:
            continue  # the canonical form makes equal cases equal strings
        centre = (new or old)[0]
        for table, change, key, fields in case_changes(old and old[1], new and new[1]):
            rows.append({"centre": centre, "table": table, "change": change, "patient_id": patient_id,
                         "record_id": None if table == "patients" else key, "fields": fields})
    return rows


def diff_summary(rows):
    """[{centre, table, added, changed, removed}] of diff rows, by centre then table order."""
    counts = {}
    for row in rows:
        entry = counts.setdefault((row["centre"], row["table"]), {"added": 0, "changed": 0, "removed": 0})
        entry[row["change"]] += 1
    order = {table: i for i, table in enumerate(TABLES)}
    return [{"centre": centre, "table": table, **entry}
            for (centre, table), entry in sorted(counts.items(), key=lambda item: (item[0][0], order[item[0][1]]))]
