"""python manage.py seed_demo — three demo centres, a user for every role, a synthetic cohort.

Idempotent: running it again adds nothing that is already there.
"""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from registry import synthetic
from registry.management.commands.generate_cohort import cohort_load
from registry.models import Centre, Membership, Patient

DEMO_PASSWORD = "demo-registry-2025"
CENTRES = {"MUC": "Klinikum München (demo)", "HD": "Thoraxklinik Heidelberg (demo)", "ESS": "Ruhrlandklinik Essen (demo)"}
USERS = [  # username, [(centre, role)], superuser
    ("nurse.muc", [("MUC", "nurse")], False),
    ("nurse.hd", [("HD", "nurse")], False),
    ("nurse.multi", [("HD", "nurse"), ("ESS", "nurse")], False),
    ("coordinator", [("MUC", "coordinator")], False),
    ("pi", [("MUC", "pi")], False),
    ("admin", [], True),
]


class Command(BaseCommand):
    help = "Create demo centres, demo users for every role and a synthetic cohort (only once)."

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, default=300)
        parser.add_argument("--seed", type=int, default=2025)

    @transaction.atomic
    def handle(self, *args, patients, seed, **options):
        for code, name in CENTRES.items():
            Centre.objects.update_or_create(code=code, defaults={"name": name})
        self.stdout.write("Demo logins (password for all: %s):" % DEMO_PASSWORD)
        for username, memberships, superuser in USERS:
            user, created = get_user_model().objects.get_or_create(
                username=username, defaults={"is_superuser": superuser, "is_staff": superuser})
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            for code, role in memberships:
                Membership.objects.get_or_create(user=user, centre_id=code, defaults={"role": role})
            roles = ", ".join(f"{role} at {code}" for code, role in memberships) or "administrator"
            self.stdout.write(f"  {username:<12} {roles}")
        if Patient.objects.exists():
            self.stdout.write(f"The registry already holds {Patient.objects.count()} patients; none added.")
            return
        cohort = synthetic.generate_cohort(patients=patients, centres=list(CENTRES), seed=seed)
        cohort_load(cohort)
        self.stdout.write(f"Loaded {patients} synthetic patients (seed {seed}).")
