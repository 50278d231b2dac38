"""python manage.py seed_demo — the demo centres, users and memberships of fixtures/demo.json and a
synthetic cohort.

Idempotent: the fixture's records are matched by their natural keys (centre code, user name,
user name and centre), so loading it again changes nothing; the cohort is added only to an
empty registry.
"""
import json

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from registry import synthetic
from registry.management.commands.generate_cohort import cohort_load
from registry.models import Patient

DEMO_FIXTURE = settings.BASE_DIR / "fixtures" / "demo.json"
DEMO_PASSWORD = "demo-registry-2025"  # of every user in the fixture


def demo_logins(records):
    """[(username, "role at centre, ..." or "administrator")] in the fixture's order."""
    roles = {}
    for record in records:
        if record["model"] == "registry.membership":
            fields = record["fields"]
            roles.setdefault(fields["user"][0], []).append(f"{fields['role']} at {fields['centre']}")
    return [(r["fields"]["username"], ", ".join(roles.get(r["fields"]["username"], [])) or "administrator")
            for r in records if r["model"] == "auth.user"]


class Command(BaseCommand):
    help = "Load the demo centres and users (fixtures/demo.json) and a synthetic cohort (only once)."

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, default=300)
        parser.add_argument("--seed", type=int, default=2025)

    @transaction.atomic
    def handle(self, *args, patients, seed, **options):
        call_command("loaddata", DEMO_FIXTURE, verbosity=0)
        records = json.loads(DEMO_FIXTURE.read_text())
        self.stdout.write("Demo logins (password for all: %s):" % DEMO_PASSWORD)
        for username, roles in demo_logins(records):
            self.stdout.write(f"  {username:<12} {roles}")
        if Patient.objects.exists():
            self.stdout.write(f"The registry already holds {Patient.objects.count()} patients; none added.")
            return
        centres = [r["pk"] for r in records if r["model"] == "registry.centre"]
        cohort_load(synthetic.generate_cohort(patients=patients, centres=centres, seed=seed))
        self.stdout.write(f"Loaded {patients} synthetic patients (seed {seed}).")
