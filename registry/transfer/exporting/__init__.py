"""The pooled (or one centre's) dataset as a zip archive for R, Stata and SPSS.

    log = dataset_export(user=user, out=file_object, file_format="dta", centre=None,
                         deidentify="shift-dates")

The archive holds one file per table (patients, primary_tumours, metastasectomies,
systemic_therapies, follow_up; for Excel one workbook, registry.xlsx, with a sheet per table), the
analysis frame (analysis/frame.py, default analysis plan, when the analysis app is installed),
the data dictionary (data_dictionary.csv: variable, table, type, label, codes, unit, required,
rule, missing_codes), the dataset for other systems in every format alike: as a REDCap project
(redcap_*.csv, exporting/redcap_files.py) and as CDISC ODM 1.3.2 (odm.xml, exporting/odm.py), and
README.txt (data version, date, scope, options). Every export is logged (ExportLog).
With a data freeze (registry.services.freezes) every file but README.txt's export time is that of
the freeze, however the live data have changed since; the REDCap and ODM files are written for
the live registry only (they read its records, history and instance numbers, which a freeze does
not keep), so an export of a freeze goes without them and its README says so.

Tables are streamed from the database in chunks into the archive, which is written to `out` as it
grows (the web view spools it to a temporary file), so memory stays flat for CSV and XLSX;
Stata and SPSS files are built one table at a time as a DataFrame (pyreadstat needs one).
"""
import zipfile
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.utils import timezone, translation

from registry import access, dictionary, selectors
from registry.models import Centre, ExportLog
from registry.transfer.exporting import odm, redcap_files
from registry.transfer.exporting.tables import (
    DEIDENTIFY,
    Deidentifier,
    frame_deidentified,
    frozen_index_dates,
    frozen_table_rows,
    scope_patients,
    table_rows,
)
from registry.transfer.exporting.writers import FORMATS, WORKBOOK, ExportColumn, TableFiles, write_table

__all__ = ["DEIDENTIFY", "FORMATS", "dataset_export", "export_filename"]

DICTIONARY_FIELDS = ("variable", "table", "type", "label", "codes", "unit", "required", "rule", "missing_codes")


def export_filename(*, centre=None, file_format="csv", deidentify="none", freeze=None, when=None):
    when = when or timezone.localtime()
    suffix = ("" if deidentify == "none" else f"-{deidentify}") + (f"-freeze-{freeze}" if freeze else "")
    return f"registry-{centre or 'pooled'}-{file_format}{suffix}-{when:%Y%m%d-%H%M}.zip"


def _columns(table, deidentifier):
    result = []
    for column in dictionary.columns(table):
        if not deidentifier.exported(table, column.name):
            continue
        kind = column.type
        if kind == "date" and deidentifier.mode == "intervals":
            kind = "days"
        label = column.label  # it names the unit already: "largest lesion (mm)", "year of birth"
        if kind == "days":
            label = f"{column.label}: days from the index operation"
        codes = column.codes if column.name != "centre" else ()
        result.append(ExportColumn(deidentifier.name(column.name, column.type),
                                   kind if column.name != "centre" else "text", label, codes, column.decimals,
                                   column.missing_codes))
    return result


def _frame_columns(frame, descriptions):
    """The frame's columns as export columns; `descriptions` {name: (type, label, codes)} come with it."""
    return [ExportColumn(name, *descriptions.get(name, ("text", name, ()))) for name in frame.columns]


def _frame_rows(frame):
    """The frame's rows as plain Python values (None when unknown, datetime.date for dates)."""
    import pandas as pd

    columns = []
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_datetime64_any_dtype(series):
            series = series.dt.date
        columns.append(series.astype(object).where(series.notna(), None).tolist())
    return zip(*columns)


# The analysis app adds its frame to every export by registering a loader here when it starts
# (analysis/apps.py): the registry never imports the analysis app, so without it the export simply
# goes without the frame. A loader is called as load(user=..., centre=..., freeze=...) and returns
# (frame, plan, {column: (type, label, codes)}), types as in writers.ExportColumn.
_frame_loader = None


def register_frame_loader(load):
    global _frame_loader
    _frame_loader = load


def load_frame(*, user, centre, freeze=None):
    """(frame, plan, column descriptions, None) under the default plan, or (None, None, {}, why)
    when no app provides one."""
    if _frame_loader is None:
        return None, None, {}, "analysis frame not included: the analysis app is not installed"
    return (*_frame_loader(user=user, centre=centre, freeze=freeze), None)


def _dictionary_rows(centre_codes, frame_columns, deidentifier):
    rows = []
    for row in dictionary.as_rows(centre_codes):
        if not deidentifier.exported(row["table"], row["variable"]):
            continue
        if row["type"] == "date" and deidentifier.mode == "intervals":
            row = {**row, "variable": deidentifier.name(row["variable"], "date"), "type": "int",
                   "unit": "days from the index operation"}
        rows.append([row[f] for f in DICTIONARY_FIELDS])
    for column in frame_columns:
        codes = " | ".join(f"{code}={label}" for code, label in column.codes)
        rows.append([column.name, "analysis_frame", column.type, column.label, codes, "", "", "", ""])
    return rows


def dataset_export(*, user, out, file_format="csv", centre=None, deidentify="none", freeze=None, since=None):
    """Write the export archive to `out` (a path or a writable binary file); returns the ExportLog.

    Raises PermissionDenied unless `access.can_export(user, centre)` (user access.SYSTEM: the command without a
    user), ValueError for an unknown format, option or centre. With `freeze` (a Freeze) the tables and
    the frame are that data freeze's instead of the live registry's: the same files, whenever exported.
    With `since` (an aware datetime) the export is a change feed: the records created or changed at or
    after it, and `deletions` (every deletion and restore since), for a downstream copy to apply; the
    analysis frame and the REDCap and ODM files, which describe a whole dataset, are left out.
    """
    if since is not None and freeze is not None:
        raise ValueError("A data freeze does not change: --since applies to the live registry only.")
    if user is not access.SYSTEM and not access.can_export(user, centre or access.ALL):
        raise PermissionDenied("You may not export this dataset.")
    if file_format not in FORMATS:
        raise ValueError(f"unknown format {file_format!r}: one of {', '.join(FORMATS)}")
    if deidentify not in DEIDENTIFY:
        raise ValueError(f"unknown de-identification {deidentify!r}: one of {', '.join(DEIDENTIFY)}")
    if centre and not Centre.objects.filter(code=centre).exists():
        raise ValueError(f"There is no centre {centre}.")
    created = timezone.now()
    counts = {}
    with translation.override("en"), selectors.one_snapshot():  # the files agree with each other
        if freeze is None:
            version = selectors.data_version([centre] if centre else None)
            patients, frozen_rows = scope_patients(centre), None
            deidentifier = Deidentifier(deidentify, patients)
            label = f"Sarcoma PM registry, {centre or 'pooled'}, data version {version}"
        else:
            version = selectors.freeze_version(freeze)
            frozen_rows = selectors.FrozenRows(freeze, [centre] if centre else None, number=Decimal)
            deidentifier = Deidentifier(deidentify, index=frozen_index_dates(frozen_rows) if deidentify == "intervals"
                                        else None)
            label = f"Sarcoma PM registry, {centre or 'pooled'}, freeze {freeze.name}"
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=5) as archive:
            with TableFiles(archive, file_format=file_format) as tables:
                for table in dictionary.TABLES:
                    if freeze is None:
                        columns, _names, rows, count = table_rows(table, patients, deidentifier, since)
                    else:
                        columns, _names, rows, count = frozen_table_rows(table, frozen_rows, deidentifier)
                    tables.add(table, _columns(table, deidentifier), rows, file_label=f"{label}: {table}")
                    counts[table] = count
                if since is not None:
                    columns, rows = deletion_rows(centre, since)
                    tables.add("deletions", columns, rows, file_label=f"{label}: deletions since {since.isoformat()}")
                    counts["deletions"] = len(rows)
            frame, plan, descriptions, gap = (None, None, None, None) if since is not None else load_frame(
                user=None if user is access.SYSTEM else user, centre=centre, freeze=freeze)
            frame_columns = []
            if frame is not None:
                frame = frame_deidentified(frame, deidentifier)
                frame_columns = _frame_columns(frame, descriptions)
                write_table(archive, "analysis_frame", frame_columns, _frame_rows(frame), file_format=file_format,
                            file_label=f"{label}: analysis frame")
                counts["analysis_frame"] = len(frame)
            centre_codes = [centre] if centre else (sorted(freeze.counts) if freeze is not None else
                                                    list(Centre.objects.values_list("code", flat=True)))
            dictionary_format = "xlsx" if file_format == "xlsx" else "csv"
            write_table(archive, "data_dictionary",
                        [ExportColumn(name, "text", name) for name in DICTIONARY_FIELDS],
                        _dictionary_rows(centre_codes, frame_columns, deidentifier), file_format=dictionary_format)
            if freeze is None and since is None:
                centres = dict(Centre.objects.filter(code__in=centre_codes).values_list("code", "name"))
                redcap_files.write_redcap_files(archive, patients=patients, centres=centres, deidentifier=deidentifier)
                odm.write_odm(archive, patients=patients, centres=centres, deidentifier=deidentifier, created=created,
                              file_oid=f"registry-{centre or 'pooled'}-{version}-{created:%Y%m%dT%H%M%S}",
                              description=f"{label}; de-identification: {deidentify}", single_site=bool(centre))
            archive.writestr("README.txt", readme(
                version=version, created=created, centre=centre, file_format=file_format,
                deidentify=deidentify, counts=counts, plan=plan, gap=gap, freeze=freeze))
    audit = access.audit_user(user)
    return ExportLog.objects.create(
        user=audit, username=getattr(audit, "username", ""), scope=centre or "", file_format=file_format,
        deidentify=deidentify, data_version=version, freeze=freeze.name if freeze is not None else "", counts=counts)


DEIDENTIFY_TEXT = {
    "none": "none: dates as recorded.",
    "shift-dates": ("shift-dates: every date of a patient is moved back by the same secret offset of 1 to "
                    "180 days (never forward, so no date lies after the export; keyed on the registry's "
                    "export key and the patient ID, stable across exports). Intervals within a patient "
                    "are exact; calendar dates are not. birth_year and age_at_pm are as recorded."),
    "intervals": ("intervals: every date column <name> is replaced by <name>_days, the days from the "
                  "patient's index operation (earliest metastasectomy; negative = before it); blank "
                  "for a patient without a metastasectomy. No calendar information is exported: "
                  "birth_year is left out (age_at_pm, whole years at the index operation, is kept) "
                  "and the exclusion reason names no dates."),
}
FORMAT_TEXT = {
    "csv": ("CSV, UTF-8, comma-separated, header row; dates YYYY-MM-DD; '.' decimals; blank = unknown. "
            "Registry tables use the data dictionary's codes and yes/no; the analysis frame uses 1/0. "
            "Text starting with = + - @ is prefixed with an apostrophe so spreadsheets do not run it (the "
            "import takes it off again)."),
    "xlsx": (f"One Excel workbook, {WORKBOOK}, with a sheet per registry table, in the import's format "
             "(sheet names, column names, the data dictionary's codes and yes/no): without "
             "de-identification it imports back into this registry as it is (rows name patients by "
             "pseudonym; another registry takes them only as new patients named by local_id). Real dates; "
             "blank = unknown. Text is as recorded, also when it starts with = + - @: it is stored as "
             "text, never as a formula. The analysis frame and the data dictionary are workbooks of their own."),
    "dta": ("Stata .dta format 118 (Stata 14 and later), with variable labels. Code columns are numbers "
            "1..n in the order of the data dictionary's code list, with value labels 'code: label'; "
            "yes/no columns are 1/0 labelled; dates are Stata dates (%td)."),
    "sav": ("SPSS .sav, with variable labels and measure levels (codes and yes/no nominal; grade, "
            "margin, Clavien-Dindo, best response and ECOG ordinal, a 'not assessable' code (GX, RX, NE) "
            "last; numbers and dates scale). Code columns are numbers 1..n in the order of the data "
            "dictionary's code list, with value labels 'code: label' and no decimals (F1.0); yes/no "
            "columns are 1/0 labelled; whole numbers show no decimals; dates are SPSS dates."),
}


MISSING_TEXT = {
    "csv": ("an optional cell may hold UNK (unknown), ND (not done) or NA (not applicable) instead of a value: "
            "an answer, unlike a blank (not entered); the data dictionary's missing_codes column lists them. "
            "The analysis frame has none: a code is missing there."),
    "xlsx": ("an optional cell may hold UNK (unknown), ND (not done) or NA (not applicable) as text instead of "
             "a value: an answer, unlike a blank (not entered). The analysis frame has none."),
    "dta": ("extended missing values .a = UNK (unknown), .b = ND (not done), .c = NA (not applicable) in numeric "
            "and date columns, value-labelled; text columns hold the code itself. Stata treats them as missing; "
            "a blank is system missing (.). The analysis frame has none."),
    "sav": ("user-missing values, value-labelled: 99997 = UNK (unknown), 99998 = ND (not done), 99999 = NA (not "
            "applicable) in numeric columns, 1582-10-15/16/17 in date columns, the codes themselves in text "
            "columns. SPSS leaves them out of analyses; a blank is system missing. The analysis frame has none."),
}


REDCAP_TEXT = (
    "REDCap: to recreate the dataset in a new classic REDCap project, upload redcap_data_dictionary.csv as its "
    "data dictionary (an instrument per table; patient_id is the record ID; primary_tumours.surgery_date and "
    ".margin are primary_surgery_date and primary_margin), make metastasectomies, systemic_therapies and "
    "follow_up repeating instruments (redcap_repeating_instruments.csv) and enter the missing data codes UNK, "
    "ND, NA (Additional customizations; required fields are tagged @NOMISSING), then import redcap_records.csv "
    "(flat format; each repeating record keeps the registry's instance number and its registry ID in "
    "<instrument>_id). Codes are the data dictionary's; yes/no are 1/0; dates YYYY-MM-DD; free text starting "
    "with = + - @ carries a leading apostrophe.")
FROZEN_INTEROP_TEXT = ("REDCap and CDISC ODM files: not in the export of a freeze (they are made from the live "
                       "registry's records, instance numbers and audit trail); export the live registry for them.")
ODM_TEXT = {
    mode: ("CDISC ODM 1.3.2 (odm.xml, a Snapshot): the data dictionary as metadata (a form and item group per "
           "table, repeating for metastasectomies, systemic_therapies and follow_up; code lists with English and "
           "German decodes; yes/no as 1/0), a subject per patient (SubjectKey = patient_id, SiteRef = centre), "
           "the values in the export's de-identification. " + audit)
    for mode, audit in {
        "none": ("Every record carries the audit record of its current version: the user by id only (USR.<id>), "
                 "the centre, the time and the reason for the change."),
        "shift-dates": ("Every record carries the audit record of its current version: the user by id only "
                        "(USR.<id>), the centre, the reason for the change and its time, moved back by the "
                        "patient's offset like the dates."),
        "intervals": "No audit records: their times are calendar information.",
    }.items()
}


def deletion_rows(centre, since):
    """The deletions (and their restores) at or after `since`, in time order: (columns, rows) of the
    change feed's `deletions` table. A deletion names its record as the table files do; `restored_at`
    is filled when the record came back (then it is also among the changed rows)."""
    names = ["table", "record_id", "patient_id", "centre", "deleted_at", "restored_at"]
    columns = [ExportColumn(name, "text", name) for name in names]
    tombstones = selectors.deletions_since(since, centres=[centre] if centre else None)
    rows = [[t.table, t.record_pk, t.patient_id, t.centre_id, t.deleted_at.isoformat(),
             t.restoration.restored_at.isoformat() if t.restoration_or_none else ""] for t in tombstones]
    return columns, rows


def readme(*, version, created, centre, file_format, deidentify, counts, plan, gap, freeze=None):
    ext = file_format
    lines = [
        "Sarcoma PM registry - dataset export",
        "",
        f"Data version: {version}",
    ]
    if freeze is not None:
        lines += [f"Data freeze:  {freeze.name}, frozen {freeze.created_at.isoformat()} "
                  f"({'verified and locked records only' if freeze.rule == 'verified' else 'all records'})",
                  f"              content hash (SHA-256) {freeze.content_hash}",
                  f"              data dictionary version {freeze.dictionary_version}"]
    lines += [
        f"Exported:     {timezone.localtime(created).isoformat(timespec='seconds')}",
        f"Software:     Sarcoma PM registry {settings.REGISTRY_VERSION}",
        f"Scope:        {'centre ' + centre if centre else 'pooled (all centres)'}",
        f"Format:       {file_format}",
        f"De-identification: {DEIDENTIFY_TEXT[deidentify]}",
        "",
        "Files (rows):",
    ]
    for table, count in counts.items():
        if ext == "xlsx" and table in dictionary.TABLES:
            if table == dictionary.TABLES[0]:
                lines.append(f"  {WORKBOOK}, a sheet per table:")
            lines.append(f"    {table}  ({count})")
        else:
            lines.append(f"  {table}.{ext}  ({count})")
    lines.append(f"  data_dictionary.{'xlsx' if ext == 'xlsx' else 'csv'}  (variable, table, type, label, "
                 "codes, unit, required, rule, missing_codes)")
    if freeze is None:
        lines += [f"  {redcap_files.DICTIONARY}  (REDCap's data dictionary: Project Setup > Data Dictionary)",
                  f"  {redcap_files.INSTRUMENTS}  (instrument_name, instrument_label)",
                  f"  {redcap_files.REPEATING}  (the repeating instruments, as REDCap's repeatingFormsEvents "
                  "import takes them)",
                  f"  {redcap_files.RECORDS}  (REDCap's flat records: import them with the Data Import Tool)",
                  f"  {odm.FILENAME}  (CDISC ODM 1.3.2: metadata, clinical data and audit records)"]
    lines.append("  README.txt")
    lines += ["", "Conventions: " + FORMAT_TEXT[file_format], "", "Missing-data codes: " + MISSING_TEXT[file_format],
              ""]
    if freeze is None:
        lines += [REDCAP_TEXT, "", ODM_TEXT[deidentify], ""]
    else:
        lines += [FROZEN_INTEROP_TEXT, ""]
    if plan is not None:
        lines.append(f"Analysis frame: one row per patient, computed under the analysis plan "
                     f"'{plan.name}' (hash {plan.hash}); see analysis/plan.py and endpoints.md.")
    if gap:
        lines.append(f"Note: {gap}.")
    lines += ["", "Keys: patients by patient_id; primary_tumours by patient_id; metastasectomies by "
              "(patient_id, surgery_date); systemic_therapies by (patient_id, start_date, regimen); "
              "follow_up by (patient_id, event_date, event).", ""]
    return "\n".join(lines)

