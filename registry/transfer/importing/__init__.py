"""Bulk import of centre spreadsheets: all or nothing, every error at once.

    report = file_import(user=user, data=bytes_of_the_file, filename="muc.xlsx", dry_run=False)
    report.ok, report.counts, report.errors, report.warnings, report.run (the ImportRun),
    report.pseudonyms, report.mapping_csv() (the pseudonyms issued to the file's new patients)

The one code path for the web upload and `manage.py import_registry`:
1. sources    read the file (xlsx / zip of CSV / one CSV), refusing hostile or broken files;
2. validation every cell against the data dictionary (types, codes, ranges, required);
3. merge      rows ↔ stored records by natural keys, write access, duplicates, the models'
              clean() and the cross-record rules on each patient's merged case;
4. writing    only when nothing failed and it is no dry run: one transaction, audited rows.
Steps 3 and 4 run in one transaction with the touched patients locked, so what was checked is
what is written.

A patient new to the registry is named in the file by a local key (`local_id`); the registry
issues its pseudonym when the import is written, and the report hands the uploader the mapping
(local_id, patient_id, centre). The registry keeps no local key: not in the clinical or audit
tables, not in the ImportRun, not in the log. A dry run issues no pseudonym.
"""
import contextlib
import csv
import gc
import hashlib
import io
import logging
import time
from dataclasses import dataclass, field

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from registry import access, services
from registry.dictionary import TABLES
from registry.models import Centre, ImportRun
from registry.security import audit
from registry.transfer.importing.merge import Plan, plan_import
from registry.transfer.importing.sources import FileRefused, read_source
from registry.transfer.importing.validation import Problem, parse_sheet

log = logging.getLogger("registry.transfer.importing")

PROBLEM_COLUMNS = ("sheet", "row", "column", "value", "message")
MAPPING_COLUMNS = ("local_id", "patient_id", "centre")
TABLE_ORDER = {table: index for index, table in enumerate(TABLES)}


@dataclass
class ImportReport:
    file_name: str
    sha256: str
    dry_run: bool
    rows: int = 0
    counts: dict = field(default_factory=lambda: Plan().counts())
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    run: ImportRun | None = None
    seconds: float = 0.0
    sheet_order: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)  # seconds per step: read, check, merge, write
    # [(local_id, pseudonym, centre)] of the file's new patients, in file order; the pseudonym is
    # None in a dry run (issued only when the file is imported).
    pseudonyms: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.errors

    @property
    def written(self):
        return self.run is not None

    def totals(self):
        return {kind: sum(c[kind] for c in self.counts.values()) for kind in ("created", "updated", "unchanged")}

    def errors_csv(self):
        """Every error as CSV (sheet, row, column, value, message), UTF-8 with BOM for Excel."""
        return problems_csv(self.errors)

    def mapping_csv(self):
        """The file's new patients as CSV (local_id, patient_id, centre): the pseudonym the registry
        issued for each local_id (blank in a dry run), UTF-8 with BOM for Excel. The only copy: the
        registry keeps no local key."""
        return _csv(MAPPING_COLUMNS, ([local_id, pseudonym or "", centre] for local_id, pseudonym, centre
                                      in self.pseudonyms))


def problems_csv(problems):
    return _csv(PROBLEM_COLUMNS, (problem.as_list() for problem in problems))


def _csv(header, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_neutral(cell) for cell in row])
    return "\ufeff" + buffer.getvalue()


def _neutral(cell):
    # The error report echoes file content back into a spreadsheet: keep formulas inert.
    text = "" if cell is None else str(cell)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text




@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector: an import allocates several objects per row, and the
    collector would rescan the growing heap again and again (a quarter of the CPU time for
    60,000 rows). Nothing here builds reference cycles that must be freed meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def file_import(*, user, data, filename, table=None, dry_run=False, on_step=None):
    """Check a whole file and, if every row passes and it is no dry run, write it in one transaction.

    `user` is the importing user (access.SYSTEM for the command without --user); `table` names the
    table of a single CSV file whose name does not; `on_step(name, rows, fraction)` is told when each
    step begins (read, check, merge, write) and after each sheet checked: the rows checked so far and
    the share of the work done (0–1, by STEP_SHARES). Returns an ImportReport; never raises for a bad file.
    """
    started, clock = timezone.now(), time.perf_counter()
    report = ImportReport(file_name=filename, sha256=hashlib.sha256(data).hexdigest(), dry_run=dry_run)
    try:
        with gc_paused():
            _run(report, user=user, data=data, table=table, started=started,
                 on_step=on_step or (lambda step, rows, fraction: None))
    except FileRefused as refusal:
        report.errors = [Problem("", "", "", "", str(refusal))]
    except IntegrityError as error:  # a concurrent writer created the same record meanwhile
        report.errors = [Problem("", "", "", "", _("The import conflicts with a change saved at the same moment; "
                                                   "nothing was written. Upload the file again. (%(error)s)")
                                 % {"error": str(error).splitlines()[0]})]
        report.run = None
    except DatabaseError:
        log.exception("import of %s failed", filename)
        raise
    report.errors.sort(key=lambda p: (report.sheet_order.get(p.sheet, -1), p.row if isinstance(p.row, int) else 10**9))
    report.seconds = time.perf_counter() - clock
    log.info("import %s by %s: %s, %d errors, %s", filename, getattr(user, "username", "system"),
             "dry run" if dry_run else ("written" if report.written else "refused"), len(report.errors),
             report.totals())
    if report.errors:  # a refused file (or a dry run that found errors): the security log keeps who and which
        audit.log_import_refused(user=user, file_name=filename, sha256=report.sha256, errors=len(report.errors),
                                 rows=report.rows, dry_run=dry_run)
    return report


STEPS = ("read", "check", "merge", "write")
# The share of an import's time each step takes (bench/import.py, 2,000 to 10,000 patients), for
# the job page's progress bar and its estimate of the time left.
STEP_SHARES = {"read": 0.15, "check": 0.35, "merge": 0.3, "write": 0.2}


def _done_before(step):
    return sum(STEP_SHARES[s] for s in STEPS[:STEPS.index(step)])


def _run(report, *, user, data, table, started, on_step):
    if not access.can_import(user):
        raise FileRefused(_("You may not import data."))
    clock = time.perf_counter()
    on_step(STEPS[0], 0, 0.0)

    def lap(step):
        nonlocal clock
        now = time.perf_counter()
        report.timings[step] = now - clock
        clock = now
        if step != STEPS[-1]:
            following = STEPS[STEPS.index(step) + 1]
            on_step(following, report.rows, _done_before(following))

    source = read_source(data, filename=report.file_name, table=table)
    lap("read")
    report.warnings.extend(Problem(*warning) for warning in source.warnings)
    report.sheet_order = {sheet.name: TABLE_ORDER[sheet.table] for sheet in source.sheets}
    report.sheet_order.update({table: TABLE_ORDER[table] for table in TABLES if table not in report.sheet_order})
    centre_codes = list(Centre.objects.values_list("code", flat=True))
    sheets = []
    for number, sheet in enumerate(source.sheets, 1):
        sheet.load()  # a workbook's sheets are parsed in a thread, one ahead of this loop
        sheets.append(parse_sheet(sheet, centre_codes=centre_codes, errors=report.errors, warnings=report.warnings))
        sheet.rows = None  # the raw cells are no longer needed
        on_step("check", sum(len(s.rows) for s in sheets),
                _done_before("check") + STEP_SHARES["check"] * number / len(source.sheets))
    missing = [t for t in TABLES if t not in {s.table for s in sheets}]
    if missing and source.kind != "csv":
        report.warnings.append(Problem("", "", "", "", _("No sheet for %(tables)s: those tables are left as they are.")
                                           % {"tables": ", ".join(missing)}))
    report.rows = sum(len(s.rows) for s in sheets)
    lap("check")
    if report.rows == 0 and not report.errors:
        raise FileRefused(_("The file contains no data rows."))
    with transaction.atomic():
        plan = plan_import(sheets, user=user, errors=report.errors, lock=not report.dry_run)
        report.counts = plan.counts()
        if plan.new_patients:
            _refuse_a_second_time(report)
        lap("merge")
        if report.errors or report.dry_run:
            transaction.set_rollback(True)
            if report.dry_run and not report.errors and plan.new_patients:
                report.pseudonyms = [(local_id, None, patient.centre_id) for local_id, patient in plan.new_patients]
                report.warnings.append(Problem("", "", "", "", _(
                    "Dry run: %(n)s new patients would be created. The registry issues their pseudonyms only "
                    "when the file is imported, so a dry run cannot name them.") % {"n": len(plan.new_patients)}))
            return
        username = getattr(access.audit_user(user), "username", "")
        reason = f"import {report.file_name}"[:100]
        finished = services.import_write(user=user, creates=plan.creates, updates=plan.updates, reason=reason)
        report.run = ImportRun.objects.create(
            user=access.audit_user(user), username=username, started_at=started, finished_at=finished,
            file_name=report.file_name[:255], sha256=report.sha256, file_size=len(data), rows=report.rows,
            counts=report.counts, warnings=[[_storable(part) for part in w.as_list()] for w in report.warnings][:200])
        # import_write gave each new patient the pseudonym it issued.
        report.pseudonyms = [(local_id, patient.patient_id, patient.centre_id) for local_id, patient in plan.new_patients]
        lap("write")


def _refuse_a_second_time(report):
    """The same file (byte for byte) created patients before: its local keys would create them again."""
    for earlier in ImportRun.objects.filter(sha256=report.sha256).order_by("started_at"):
        if earlier.counts.get("patients", {}).get("created"):
            report.errors.append(Problem("", "", "", "", _(
                "This file was imported before (import #%(run)s on %(date)s), and its new patients were created "
                "then. Importing it again would create them a second time. To change them, write their "
                "pseudonyms (the mapping of that import) into patient_id instead of their local_id.")
                % {"run": earlier.pk, "date": timezone.localtime(earlier.finished_at).date().isoformat()}))
            return


def _storable(value):
    """A warning's part as PostgreSQL's jsonb can hold it (no NUL; the header named may have one)."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value
