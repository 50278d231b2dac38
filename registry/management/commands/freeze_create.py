"""python manage.py freeze_create NAME [--verified-only] [--user NAME]"""
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from registry import services
from registry.management.users import command_user
from registry.models import Freeze


class Command(BaseCommand):
    help = ("Freeze the registry: an unchangeable copy of the clinical tables at this instant, with its data "
            "dictionary version and content hash, from which survival_report, analysis_frame and "
            "export_registry can run again with --freeze NAME.")

    def add_arguments(self, parser):
        parser.add_argument("name", help="the freeze's name: letters, digits, '.', '_' and '-' (unique)")
        parser.add_argument("--verified-only", action="store_true",
                            help="only records that are verified or locked, of patients who are verified or locked")
        parser.add_argument("--user", help="freeze as this user (a coordinator; recorded); default: the system")

    def handle(self, *args, name, verified_only, user, **options):
        try:
            freeze = services.freeze_create(user=command_user(user), name=name,
                                            rule=Freeze.VERIFIED if verified_only else Freeze.ALL)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        except PermissionDenied as error:
            raise CommandError(str(error)) from error
        rows = ", ".join(f"{count} {table}" for table, count in freeze.table_counts().items()) or "no patients"
        self.stdout.write(f"Froze {freeze.name} at {freeze.created_at.isoformat()} ({freeze.rule} records: {rows}); "
                          f"data dictionary {freeze.dictionary_version}, content hash {freeze.content_hash}.")
