"""python manage.py erase_patient PSEUDONYM --reference REF --user NAME [--yes]"""
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from registry.management.users import command_user
from registry.models import Patient
from registry.services import patient_erase, patient_erasure_counts


class Command(BaseCommand):
    help = ("Erase one patient on a documented legal request: the patient, every record, every history copy and "
            "every audit row naming it, in one transaction. A tombstone keeps who, when, the request's reference, "
            "the centre and how many rows of each table went, never the pseudonym. Backups keep older copies "
            "until they are rotated.")

    def add_arguments(self, parser):
        parser.add_argument("pseudonym", help="the patient's registry pseudonym, e.g. MUC-7K3QZ9")
        parser.add_argument("--reference", required=True, help="the legal request's reference (kept in the tombstone)")
        parser.add_argument("--user", required=True, help="the coordinator who carries out the request")
        parser.add_argument("--yes", action="store_true", help="erase without asking for confirmation")

    def handle(self, *args, pseudonym, reference, user, yes, **options):
        account = command_user(user)
        counts = patient_erasure_counts(patient_id=pseudonym)
        if not counts:
            raise CommandError(f"No patient {pseudonym} is in the registry or its history: nothing was erased.")
        self.stdout.write(f"Erasing {pseudonym} on request {reference!r} removes for good:")
        for table, count in counts.items():
            self.stdout.write(f"  {table:36} {count:>6} rows")
        if not yes and input(f"Type {pseudonym} to erase it: ").strip() != pseudonym:
            raise CommandError("Not confirmed: nothing was erased.")
        try:
            tombstone = patient_erase(user=account, patient_id=pseudonym, reference=reference)
        except (PermissionDenied, ValidationError, ImproperlyConfigured, Patient.DoesNotExist) as error:
            raise CommandError(" ".join(getattr(error, "messages", [str(error)]))) from error
        self.stdout.write(f"Erased {sum(counts.values())} rows; tombstone {tombstone.pk} keeps the reference, "
                          f"the centre ({tombstone.centre}) and the counts. Older copies remain in backups until "
                          "they are rotated.")
