"""The file's rows merged with the database: access, natural keys, single- and cross-record rules.

Every row is matched to a stored record by its table's natural key (dictionary.KEYS): no match →
create; a match whose values differ → update (only the columns present in the file); otherwise
unchanged. The merged state of every patient the file touches — stored records with the file's
changes applied, plus the new ones — is then checked with the models' own `clean()` and
`rules.check_case`, exactly what a form save checks, before anything is written.

A record is never deleted by an import, and a row whose key changed (e.g. a corrected surgery
date) is a new record: the old one stays until someone deletes it in the web application.

Patients: a row names a patient already in the registry by its pseudonym (`patient_id`), or a
patient new in the file by the file's own key (`local_id`, defined by its row on the patients
sheet). A pseudonym the registry does not hold is refused, whatever its shape: only the registry
issues pseudonyms. A new patient carries a provisional id through the merge; services.import_write
replaces it by the pseudonym it issues.
"""
import re
from collections import defaultdict
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models.base import ModelState
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from registry import access, cases, rules, selectors
from registry.dictionary import KEYS, LOCAL_ID, TABLE_MODELS, TABLES, column
from registry.models import PATIENT_ID_PATTERN
from registry.services.status import lock_refusal
from registry.transfer.importing.cells import shown
from registry.transfer.importing.validation import Problem

CHILD_TABLES = ("metastasectomies", "systemic_therapies", "follow_up")
ATTNAMES = {model: [f.attname for f in model._meta.concrete_fields] for model in TABLE_MODELS.values()}
DEFAULTS = {"version": 1, "status": "in_progress"}
BLANK = {model: {name: DEFAULTS.get(name) for name in names} for model, names in ATTNAMES.items()}
TABLE_OF = {model: table for table, model in TABLE_MODELS.items()}
# A new patient's id until the import is written: lower case, so never a stored pseudonym.
PROVISIONAL_ID = "{centre}-new{number}"


@dataclass
class Plan:
    """What an import would do: new instances, (instance, changed attnames) pairs, unchanged counts."""

    creates: dict = field(default_factory=lambda: {t: [] for t in TABLES})
    updates: dict = field(default_factory=lambda: {t: [] for t in TABLES})
    unchanged: dict = field(default_factory=lambda: {t: 0 for t in TABLES})
    new_patients: list = field(default_factory=list)  # [(local_id, new Patient)] in file order

    def counts(self):
        return {t: {"created": len(self.creates[t]), "updated": len(self.updates[t]),
                    "unchanged": self.unchanged[t]} for t in TABLES}


def new_instance(model, values):
    """An unsaved instance with the given attribute values (other fields: default or None).

    Built without Model.__init__, which costs ~50 µs a record in descriptor and signal machinery
    (60,000 rows: 3 s). No registry model has pre_init/post_init receivers or field defaults
    other than `version`, so the result is the same instance __init__ would build.
    """
    record = model.__new__(model)
    attributes = BLANK[model].copy()
    attributes.update(values)
    attributes["missing_codes"] = dict(values.get("missing_codes") or {})  # its own dict, never a shared one
    record.__dict__.update(attributes)
    record._state = ModelState()
    return record


def _same(stored, value):
    return stored == value or (stored in (None, "") and value in (None, ""))


def merged_codes(stored, values):
    """The missing-data codes of a stored record after a row: the row's columns take the row's codes
    (a value or a blank there clears a stored code); a column the sheet lacks keeps its own."""
    kept = {name: code for name, code in (stored.missing_codes or {}).items() if name not in values}
    return {**kept, **values.get("missing_codes", {})}


class Merger:
    """One merge: the steps of `run()` in order; problems are appended to `errors`."""

    def __init__(self, sheets, *, user, errors, lock):
        self.rows = {table: [] for table in TABLES}
        for sheet in sheets:
            self.rows[sheet.table] = sheet.rows
        self.user, self.errors, self.lock = user, errors, lock
        self.writable = access.writable_centre_codes(user)
        self.bad = set()          # patient ids with any problem: their cases are not rule-checked
        self.origin = {}          # id(record) -> Row it came from
        self.plan = Plan()
        self.file_patients = {}   # patient id -> Patient instance (new or stored, from the file)
        self.new_children = {t: defaultdict(list) for t in CHILD_TABLES}
        self.file_tumours = {}
        self.touched = set()
        self.provisional = set()  # the provisional ids of the patients new in the file
        self.deleted = {}         # pseudonym -> date its patient was deleted (for the message)

    # --- helpers ---------------------------------------------------------------------------

    def fail(self, row, column_name, value, message):
        self.errors.append(Problem(row.sheet, row.number, column_name, shown(value), message))
        row.ok = False
        self.bad.add(row.patient_id)

    def all_rows(self):
        for table in TABLES:
            yield from self.rows[table]

    def patient_cell(self, row):
        """(column, value) that names the row's patient in the file: its local_id or its patient_id."""
        return (LOCAL_ID, row.local_id) if row.local_id is not None else ("patient_id", row.values.get("patient_id"))

    def no_such_patient(self, pid):
        deleted = self.deleted.get(pid)
        if deleted:
            return _("The patient %(id)s was deleted from the registry on %(date)s; an import does not bring a "
                     "deleted patient back. To enter the patient again, name it by a local_id instead (the "
                     "registry issues a new pseudonym).") % {"id": pid, "date": deleted.isoformat()}
        return _("There is no patient %(id)s in the registry, and only the registry issues pseudonyms. Name a "
                 "patient new in this file by a local_id on every sheet (its patient_id blank); the import "
                 "answers with the pseudonym issued for it.") % {"id": pid}

    # --- the steps -------------------------------------------------------------------------

    def run(self):
        self.name_new_patients()
        for row in self.all_rows():
            if not row.ok:
                self.bad.add(row.patient_id)
        self.check_access()
        self.check_duplicates()
        self.load_stored()
        self.merge_patients()
        self.merge_children()
        self.check_records()
        self.check_cases()
        return self.plan

    def name_new_patients(self):
        """Give each patient new in the file (a local_id on the patients sheet) a provisional id, and
        every row that names it by its local_id the same. Local keys match case-insensitively."""
        defined = {}  # folded local_id -> (its row on the patients sheet, provisional id or None)
        for row in self.rows["patients"]:
            if not isinstance(row.local_id, str):
                continue
            key = row.local_id.casefold()
            if key in defined:
                first, pid = defined[key]
                self.fail(row, LOCAL_ID, row.local_id,
                          _("Duplicate: row %(row)s has the same local_id.") % {"row": first.number})
                self.bad.add(pid)
                continue
            pid = None  # a row with an error gives no id: its patient's other rows are left out
            if row.ok:
                pid = PROVISIONAL_ID.format(centre=row.values["centre_id"], number=len(self.provisional))
                row.values["patient_id"] = pid
                self.provisional.add(pid)
            defined[key] = row, pid
        for table in ("primary_tumours", *CHILD_TABLES):
            for row in self.rows[table]:
                if not isinstance(row.local_id, str) or row.patient_id is not None:  # (both: refused already)
                    continue
                key = row.local_id.casefold()
                if key not in defined:
                    self.fail(row, LOCAL_ID, row.local_id, _(
                        "No row of the patients sheet has this local_id: a local_id names a patient new in this "
                        "file, entered on the patients sheet. A patient already in the registry is named by its "
                        "pseudonym in patient_id."))
                    continue
                _first, pid = defined[key]
                if pid is None:
                    row.ok = False  # the patient's own row has the error
                else:
                    row.values["patient_id"] = pid

    def check_access(self):
        """Every row must concern a patient of a centre the user may write (the pseudonym names it; a
        new patient's provisional id the centre of its row)."""
        valid_id = re.compile(PATIENT_ID_PATTERN)
        allowed = {}  # patient id -> may write (many rows share a patient)
        refused = {}  # (table, centre) -> its rows, in file order
        self.ids = set()
        for table in TABLES:
            for row in self.rows[table]:
                pid = row.patient_id
                may = allowed.get(pid)
                if may is None:
                    if not isinstance(pid, str) or not (pid in self.provisional or valid_id.match(pid)):
                        continue
                    centre = pid.split("-", 1)[0]
                    may = allowed[pid] = self.writable == access.ALL or centre in self.writable
                    if may and pid not in self.provisional:
                        self.ids.add(pid)
                if not may:
                    refused.setdefault((table, pid.split("-", 1)[0]), []).append(row)
        # One error per sheet and centre, at its first row, not one per row: a nurse who uploads the
        # pooled workbook reads one line per other centre, not hundreds of the same.
        for (table, centre), rows in refused.items():
            first = rows[0]
            where, value = ("centre", first.values.get("centre_id")) if table == "patients" \
                else self.patient_cell(first)
            message = _("You may not write patients of centre %(centre)s.") % {"centre": centre}
            if len(rows) > 1:
                message += " " + ngettext("This row and %(n)s more row of this sheet concern them (up to row %(last)s).",
                                          "This row and %(n)s more rows of this sheet concern them (up to row %(last)s).",
                                          len(rows) - 1) % {"n": len(rows) - 1, "last": rows[-1].number}
            self.fail(first, where, value, message)
            for row in rows[1:]:
                row.ok = False
                self.bad.add(row.patient_id)

    def check_duplicates(self):
        for table in TABLES:
            keys = [column(table, name).attname for name in KEYS[table]]
            seen = {}
            for row in self.rows[table]:
                if row.patient_id is None:  # a patient new in the file whose own row has an error
                    continue
                try:
                    key = tuple(row.values.get(name) for name in keys)
                    first = seen.setdefault(key, row)
                except TypeError:  # an unhashable raw value: already an error
                    continue
                if first is not row:
                    names = [LOCAL_ID if name == "patient_id" and row.local_id is not None else name
                             for name in KEYS[table]]
                    value = row.local_id if names[-1] == LOCAL_ID else row.values.get(keys[-1])
                    self.fail(row, names[-1], value, _("Duplicate: row %(row)s has the same %(key)s.")
                              % {"row": first.number, "key": ", ".join(names)})
                    self.bad.add(first.patient_id)

    def load_stored(self):
        self.stored_patients, self.stored_tumours, self.stored_children = selectors.stored_records(
            sorted(self.ids), lock=self.lock)
        unknown = sorted(self.ids - self.stored_patients.keys())
        if unknown:
            self.deleted = selectors.deleted_patients(unknown)

    def _diff(self, table, row, stored):
        changed = [name for name, value in row.values.items()
                   if name not in ("patient_id", "missing_codes") and not _same(getattr(stored, name), value)]
        codes = merged_codes(stored, row.values)
        row.record = stored
        self.origin[id(stored)] = row
        if codes != (stored.missing_codes or {}):
            stored.missing_codes = codes
            changed.append("missing_codes")
        if changed:
            for name in changed:
                if name != "missing_codes":
                    setattr(stored, name, row.values[name])
            self.plan.updates[table].append((stored, changed))
        else:
            self.plan.unchanged[table] += 1

    def _create(self, table, row):
        record = new_instance(TABLE_MODELS[table], row.values)
        row.record = record
        self.origin[id(record)] = row
        self.plan.creates[table].append(record)
        return record

    def merge_patients(self):
        for row in self.rows["patients"]:
            if not row.ok:
                continue
            pid = row.patient_id
            self.touched.add(pid)
            stored = self.stored_patients.get(pid)
            if stored is None:
                if pid in self.provisional:
                    self.file_patients[pid] = self._create("patients", row)
                    self.plan.new_patients.append((row.local_id, self.file_patients[pid]))
                else:
                    self.fail(row, "patient_id", pid, self.no_such_patient(pid))
                continue
            if row.values.get("centre_id") != stored.centre_id:
                self.fail(row, "centre", row.values.get("centre_id"),
                          _("A patient cannot move to another centre: the pseudonym names it."))
                continue
            self._diff("patients", row, stored)
            self.file_patients[pid] = stored

    def merge_children(self):
        failed_patient_rows = {row.patient_id for row in self.rows["patients"] if not row.ok}
        known = self.file_patients.keys() | self.stored_patients.keys()
        for table in ("primary_tumours", *CHILD_TABLES):
            attnames = [column(table, name).attname for name in KEYS[table]]
            key_of, stored_key_of = itemgetter(*attnames), attrgetter(*attnames)
            stored_for = self.stored_tumours if table == "primary_tumours" else self.stored_children[table]
            new_for = self.file_tumours if table == "primary_tumours" else self.new_children[table]
            for row in self.rows[table]:
                if not row.ok:
                    continue
                pid = row.patient_id
                if pid not in known:
                    if pid not in failed_patient_rows:
                        self.fail(row, "patient_id", pid, self.no_such_patient(pid))
                    else:
                        self.bad.add(pid)
                    continue
                self.touched.add(pid)
                stored = stored_for.get(pid)
                if table == "primary_tumours":
                    if stored is None:
                        new_for[pid] = self._create(table, row)
                    else:
                        self._diff(table, row, stored)
                    continue
                key = key_of(row.values)
                matches = [r for r in stored if stored_key_of(r) == key] if stored else ()
                if len(matches) > 1:
                    self.fail(row, KEYS[table][-1], row.values[attnames[-1]],
                              _("%(n)s stored records have this %(key)s: correct them in the web application first.")
                              % {"n": len(matches), "key": ", ".join(KEYS[table])})
                elif matches:
                    self._diff(table, row, matches[0])
                else:
                    new_for[pid].append(self._create(table, row))

    def check_records(self):
        """The models' single-record rules (clean()) on every new or changed record, and the locks
        of the stored ones (registry.services.status)."""
        changed = [(t, r) for t in TABLES for r in self.plan.creates[t]]
        changed += [(t, r) for t in TABLES for r, _names in self.plan.updates[t]]
        for table, record in changed:
            row = self.origin[id(record)]
            locked = lock_refusal(record, self.stored_patients.get(record.patient_id))
            if locked is not None:
                self.fail(row, "patient_id", record.patient_id, locked.message)
                continue
            try:
                record.clean()
            except ValidationError as error:
                for name, messages in error.message_dict.items():
                    name = "" if name == NON_FIELD_ERRORS else name
                    value = getattr(record, column(table, name).attname) if name else ""
                    self.fail(row, name, value, " ".join(messages))

    def check_cases(self):
        """The cross-record rules on each touched patient's merged case."""
        for pid in self.touched:
            if pid in self.bad:
                continue
            tumour = self.file_tumours.get(pid) or self.stored_tumours.get(pid)
            case = cases.assemble(
                self.file_patients.get(pid) or self.stored_patients[pid],
                [*([tumour] if tumour else []),
                 *(record for table in CHILD_TABLES
                   for record in self.stored_children[table].get(pid, []) + self.new_children[table].get(pid, []))])
            for violation in rules.check_case(case):
                self.report(violation)

    def report(self, violation):
        """Show a violation at the first record it involves that came from the file."""
        refs = [(record, name) for record, name in violation.refs if id(record) in self.origin] or violation.refs
        record, name = refs[0]
        value = getattr(record, name, "")
        row = self.origin.get(id(record))
        if row is None:  # only stored records are involved
            table = TABLE_OF[type(record)]
            self.errors.append(Problem(table, _("stored"), name, shown(value),
                                       f"{rules.describe(record)}: {violation.message}"))
            return
        message = violation.message
        others = [r for r, _n in violation.refs if id(r) not in self.origin]
        if others:
            message += " " + _("(involves %(record)s, already in the registry)") % {"record": rules.describe(others[0])}
        self.fail(row, name, value, message)


def plan_import(sheets, *, user, errors, lock=True):
    """Merge parsed sheets with the database; problems go to `errors`; returns the Plan."""
    return Merger(sheets, user=user, errors=errors, lock=lock).run()
