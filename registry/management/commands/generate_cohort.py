"""python manage.py generate_cohort --patients N --centres K --seed S [--out FILE.xlsx] [--load]"""
import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from registry import access, services, synthetic
from registry import cases as rows
from registry.management.users import command_user
from registry.models import Centre


class Command(BaseCommand):
    help = "Draw a synthetic multicentre cohort (documented in registry/synthetic/); write it and/or load it."

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, required=True, help="number of patients to generate")
        parser.add_argument("--centres", type=int, default=3, help="number of centres (default 3)")
        parser.add_argument("--seed", type=int, default=1,
                            help="random seed (default 1): the same seed always gives the same cohort")
        parser.add_argument("--out", help="write an import workbook (.xlsx), one sheet per table: new patients "
                                          "named by local keys (local_id), or with --load the loaded patients "
                                          "by their pseudonyms (patient_id)")
        parser.add_argument("--load", action="store_true", help="write the cohort into the database")
        parser.add_argument("--user", help="username recorded in the audit trail for --load")

    def handle(self, *args, patients, centres, seed, out, load, user, **options):
        if not (out or load):
            raise CommandError("Say what to do with the cohort: --out FILE.xlsx and/or --load.")
        started = time.perf_counter()
        cohort = synthetic.generate_cohort(patients=patients, centres=centres, seed=seed)
        counts = ", ".join(f"{len(cohort[t])} {t}" for t in synthetic.TABLES)
        self.stdout.write(f"Generated {counts} (seed {seed}).")
        if out:
            synthetic.write_workbook(cohort, out, pseudonyms=load)
            self.stdout.write(f"Wrote {out}.")
        if load:
            cohort_load(cohort, user=command_user(user, default=None))
            self.stdout.write(f"Loaded {patients} patients into the database.")
        self.stdout.write(f"Done in {time.perf_counter() - started:.1f} s.")


def cohort_load(cohort, *, user=None):
    """Load a generated cohort through the same validation as every other bulk write.

    Centres the cohort names are created when missing (synthetic data only; real centres are
    managed by administrators). Without a user the audit trail records the system.
    """
    for code in sorted({row["centre"] for row in cohort["patients"]}):
        Centre.objects.get_or_create(code=code, defaults={"name": f"Synthetic centre {code}"})
    try:
        services.cases_create(user=user or access.SYSTEM, cases=rows.cases_from_rows(cohort))
    except ValidationError as error:
        raise CommandError("The cohort is invalid:\n" + "\n".join(error.messages[:20])) from error
