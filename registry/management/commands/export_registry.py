"""python manage.py export_registry --format csv|xlsx|dta|sav --out PATH [--centre CODE]
[--deidentify none|shift-dates|intervals] [--user NAME] [--freeze NAME | --since TIMESTAMP]"""
from pathlib import Path

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from registry import selectors
from registry.management.users import command_user
from registry.transfer.exporting import DEIDENTIFY, FORMATS, dataset_export


class Command(BaseCommand):
    help = ("Export the pooled dataset (or one centre's) as a zip archive: one file per table, the analysis "
            "frame, the data dictionary and a README. Every export is logged.")

    def add_arguments(self, parser):
        parser.add_argument("--format", dest="file_format", choices=FORMATS, default="csv")
        parser.add_argument("--out", required=True, help="the zip file to write (a directory: a named file in it)")
        parser.add_argument("--centre", help="export only this centre's patients")
        parser.add_argument("--deidentify", choices=DEIDENTIFY, default="none")
        parser.add_argument("--user", help="export as this user (their export permission; logged); default: the system")
        parser.add_argument("--freeze", metavar="NAME",
                            help="export this data freeze (manage.py freeze_create) instead of the live registry")
        parser.add_argument("--since", metavar="TIMESTAMP",
                            help="a change feed: only records created or changed at or after this ISO date or "
                                 "date-time, and deletions.<format> listing the deletions and restores since then")

    def handle(self, *args, file_format, out, centre, deidentify, user, freeze, since, **options):
        from registry.transfer.exporting import export_filename

        frozen = selectors.freeze_named(freeze) if freeze else None
        if freeze and frozen is None:
            raise CommandError(f"There is no freeze {freeze!r} (manage.py freeze_create makes one).")
        path = Path(out)
        if path.is_dir():
            path = path / export_filename(centre=centre, file_format=file_format, deidentify=deidentify)
        if path.suffix.lower() != ".zip":
            raise CommandError("The export is a zip archive: give --out a path ending in .zip (or a directory).")
        try:
            with path.open("wb") as handle:
                log = dataset_export(user=command_user(user), out=handle, file_format=file_format,
                                     centre=centre.upper() if centre else None, deidentify=deidentify, freeze=frozen,
                                     since=moment(since) if since else None)
        except (PermissionDenied, ValueError) as error:
            path.unlink(missing_ok=True)
            raise CommandError(str(error)) from error
        rows = ", ".join(f"{count} {table}" for table, count in log.counts.items())
        source = f"freeze {log.freeze}" if log.freeze else f"data version {log.data_version}"
        self.stdout.write(f"Wrote {path} ({rows}; {source}).")


def moment(text):
    """An ISO date (midnight, local time) or date-time; a naive one is local time."""
    import datetime

    from django.utils import timezone
    from django.utils.dateparse import parse_date, parse_datetime

    try:
        value = parse_datetime(text) or parse_date(text)
    except ValueError:
        value = None
    if value is None:
        raise CommandError(f"--since {text!r}: use an ISO date (2025-01-31) or date-time (2025-01-31T08:00:00Z).")
    if not isinstance(value, datetime.datetime):
        value = datetime.datetime(value.year, value.month, value.day)
    return timezone.make_aware(value) if timezone.is_naive(value) else value
