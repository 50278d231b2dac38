"""python manage.py import_registry PATH [--user NAME] [--dry-run] [--table TABLE] [--errors-csv FILE]
[--mapping-out FILE]"""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from registry.dictionary import TABLES
from registry.management.users import command_user
from registry.transfer.importing import file_import


class Command(BaseCommand):
    help = ("Import a centre's data (an .xlsx workbook with one sheet per table, a .zip of CSV files, or one "
            "CSV file) all or nothing, through the same checks as the web upload. Exits non-zero on any error.")

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--user", help="import as this user (their write access; recorded in the audit "
                                           "trail); default: the system, which may write every centre")
        parser.add_argument("--dry-run", action="store_true", help="check and count, write nothing")
        parser.add_argument("--table", choices=TABLES, help="the table of a single CSV file whose name does not say it")
        parser.add_argument("--errors-csv", help="also write every error to this CSV file")
        parser.add_argument("--mapping-out", help="write the pseudonyms issued to the file's new patients to this CSV "
                                                  "file (local_id, patient_id, centre), when the import wrote "
                                                  "something; without it they are printed")

    def handle(self, *args, path, user, dry_run, table, errors_csv, mapping_out, **options):
        source = Path(path)
        if not source.is_file():
            raise CommandError(f"There is no file {path}.")
        report = file_import(user=command_user(user), data=source.read_bytes(), filename=source.name,
                             table=table, dry_run=dry_run)
        for warning in report.warnings:
            self.stderr.write("warning: " + describe(warning))
        if not report.ok:
            for error in report.errors:
                self.stderr.write("error: " + describe(error))
            if errors_csv:
                Path(errors_csv).write_text(report.errors_csv(), encoding="utf-8")
            raise CommandError(f"{len(report.errors)} error(s): nothing was written.")
        for table_name, counts in report.counts.items():
            self.stdout.write(f"{table_name:20} {counts['created']:>7} created {counts['updated']:>7} updated "
                              f"{counts['unchanged']:>7} unchanged")
        verb = "Dry run: nothing written" if dry_run else f"Imported as import #{report.run.pk}"
        self.stdout.write(f"{verb}; {report.rows} rows checked in {report.seconds:.1f} s "
                          f"({report.rows / max(report.seconds, 1e-9):,.0f} rows/s).")
        if not report.written:
            return
        # The only copy of the mapping: the registry keeps no local key.
        if mapping_out:
            Path(mapping_out).write_text(report.mapping_csv(), encoding="utf-8")
            self.stdout.write(f"The pseudonyms of {len(report.pseudonyms)} new patient(s) are in {mapping_out}.")
        elif report.pseudonyms:
            self.stdout.write("New patients (local_id → patient_id, centre):")
            for local_id, pseudonym, centre in report.pseudonyms:
                self.stdout.write(f"  {local_id} → {pseudonym}, {centre}")


def describe(problem):
    where = ", ".join(str(part) for part in (problem.sheet, f"row {problem.row}" if problem.row != "" else "",
                                             problem.column) if part)
    value = f" [{problem.value}]" if problem.value else ""
    return f"{where}{value}: {problem.message}" if where else problem.message
