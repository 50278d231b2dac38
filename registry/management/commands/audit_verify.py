"""python manage.py audit_verify: recompute the audit tables' hash chain; exits 1 on any tampering."""
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from registry.security.audit_verify import audit_verify


class Command(BaseCommand):
    help = ("Recompute the seals of the audit tables (history, logs) and compare them with the rows: per table the "
            "rows checked and the first broken row. Exits with status 1 if anything was changed or deleted.")

    def handle(self, *args, **options):
        try:
            result = audit_verify()
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from error
        for table in result.tables:
            status = "OK" if table.ok else f"BROKEN: {table.broken}"
            self.stdout.write(f"{table.table:36} {table.checked:>9} rows checked {table.erased:>6} erased "
                              f"{table.unsealed:>6} not sealed yet  {status}")
        self.stdout.write(f"{result.seals} seals; the last: {result.head or '-'} (keep it outside the database: "
                          "a chain cut short after it shows)")
        if not result.ok:
            problems = [result.broken] if result.broken else []
            problems += [f"{table.table}: {table.broken}" for table in result.tables if not table.ok]
            raise CommandError("The audit trail was tampered with: " + "; ".join(problems))
        self.stdout.write("The audit trail is intact.")
