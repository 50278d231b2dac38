"""python manage.py audit_seal: seal every audit row not sealed yet (run it periodically)."""
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from registry.services.seals import tables_seal


class Command(BaseCommand):
    help = ("Seal the audit tables' rows written since their last seal. Rows are sealed when their transaction "
            "commits; this catches those a busy table left for later (run it every few minutes).")

    def handle(self, *args, **options):
        total = 0
        while seals := _seal():  # a seal holds at most MAX_ROWS rows: go on until none is left
            for seal in seals:
                self.stdout.write(f"{seal.table:36} {seal.rows:>9} rows sealed (up to id {seal.last_id})")
            total += sum(seal.rows for seal in seals)
        self.stdout.write(f"{total} rows sealed.")


def _seal():
    try:
        return tables_seal(wait=True)
    except ImproperlyConfigured as error:
        raise CommandError(str(error)) from error
