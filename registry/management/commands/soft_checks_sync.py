"""python manage.py soft_checks_sync: bring every case's soft-check queries up to date (run it daily).

Every write keeps its case's queries in step; this catches what changes with the calendar alone (a
patient's last news growing older than the limit) and a changed threshold."""
from django.core.management.base import BaseCommand
from django.db import transaction

from registry.models import Patient, Query
from registry.services import queries

CHUNK = 2000  # patients locked and synced per transaction


class Command(BaseCommand):
    help = "Open and close the soft checks' queries of every case (run it daily: some checks fire as time passes)."

    def handle(self, *args, **options):
        ids = list(Patient.objects.order_by("pk").values_list("pk", flat=True))
        before = Query.objects.filter(origin=Query.SOFT_CHECK).exclude(state=Query.CLOSED).count()
        for start in range(0, len(ids), CHUNK):
            with transaction.atomic():  # the patients' rows locked, as every write locks them
                queries.cases_checks_sync(queries.stored_cases(ids[start:start + CHUNK], lock=True))
        after = Query.objects.filter(origin=Query.SOFT_CHECK).exclude(state=Query.CLOSED).count()
        self.stdout.write(f"{len(ids)} cases checked; {after} soft-check queries pending (before: {before}).")
