"""python manage.py audit_export [--patient ID] [--username NAME] [--since DATE] [--until DATE]
[--format csv|json] [--out PATH] [--limit N]"""
from django.core.management.base import BaseCommand, CommandError

from registry.security.export import FORMATS, AuditExportForm, recorded_stream


class Command(BaseCommand):
    help = ("Write the audit trail (clinical changes with their values before and after, reads of patient data, "
            "refused requests, security events) in time order, as on the coordinators' audit export page. "
            "The export is itself recorded as a read (by the system).")

    def add_arguments(self, parser):
        parser.add_argument("--patient", default="", help="only what concerns this patient (pseudonym)")
        parser.add_argument("--username", default="", help="only what this user name did")
        parser.add_argument("--since", default="", help="from this date (YYYY-MM-DD)")
        parser.add_argument("--until", default="", help="up to this date, inclusive (YYYY-MM-DD)")
        parser.add_argument("--format", dest="fmt", choices=FORMATS, default="csv")
        parser.add_argument("--out", help="the file to write; default: standard output")
        parser.add_argument("--limit", type=int, help="at most this many rows (default: AUDIT_EXPORT_MAX_ROWS)")

    def handle(self, *args, patient, username, since, until, fmt, out, limit, **options):
        form = AuditExportForm({"patient_id": patient, "user": username, "since": since, "until": until,
                                "format": fmt})
        if not form.is_valid():
            raise CommandError("; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()))
        pieces = recorded_stream(form.trail_filter(), FORMATS[fmt][1], what="manage.py audit_export", limit=limit)
        if not out:
            for piece in pieces:
                self.stdout.write(piece, ending="")
            return
        with open(out, "w", encoding="utf-8", newline="") as target:
            for piece in pieces:
                target.write(piece)
