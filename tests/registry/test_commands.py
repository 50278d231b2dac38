"""The cohort generator command and the one-command demo."""
import openpyxl
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from registry.models import Centre, FollowUp, Membership, Metastasectomy, Patient, PrimaryTumour, SystemicTherapy

pytestmark = pytest.mark.django_db
TABLES = (Patient, PrimaryTumour, Metastasectomy, SystemicTherapy, FollowUp)


def strip_timestamps():
    """Table contents without the bookkeeping columns that depend on when they were written (ids and
    REDCap instances are never given twice, so a reload after a deletion gets new ones)."""
    return {model.__name__: sorted(
        repr(sorted((k, v) for k, v in row.items() if k not in ("id", "created_at", "updated_at", "redcap_instance")))
        for row in model.objects.values()) for model in TABLES}


def test_generate_cohort_with_the_same_seed_loads_the_same_cohort():
    call_command("generate_cohort", patients=40, centres=2, seed=11, load=True)
    first = strip_timestamps()
    for model in reversed(TABLES):
        model.objects.all().delete()
    call_command("generate_cohort", patients=40, centres=2, seed=11, load=True)
    assert strip_timestamps() == first
    assert Patient.objects.count() == 40
    assert set(Patient.objects.values_list("centre", flat=True)) == {"MUC", "HD"}


def test_loaded_cohort_is_audited_as_created_by_the_system():
    call_command("generate_cohort", patients=10, centres=1, seed=3, load=True)
    assert Patient.history.filter(history_type="+", history_user__isnull=True).count() == 10


def test_generate_cohort_writes_a_workbook_with_one_sheet_per_table(tmp_path):
    out = tmp_path / "cohort.xlsx"
    call_command("generate_cohort", patients=20, centres=2, seed=5, out=str(out))
    workbook = openpyxl.load_workbook(out, read_only=True)
    assert workbook.sheetnames == ["patients", "primary_tumours", "metastasectomies", "systemic_therapies", "follow_up"]
    header = next(workbook["patients"].iter_rows(max_row=1, values_only=True))
    assert header[:3] == ("local_id", "centre", "sex")  # new patients: the registry issues their pseudonyms
    assert not Patient.objects.exists()

    # With --load the workbook names the loaded patients, by their pseudonyms.
    call_command("generate_cohort", patients=6, centres=2, seed=5, out=str(out), load=True)
    rows = openpyxl.load_workbook(out, read_only=True)["patients"].iter_rows(values_only=True)
    assert next(rows)[0] == "patient_id"
    assert sorted(row[0] for row in rows) == sorted(Patient.objects.values_list("pk", flat=True))


def test_generate_cohort_needs_an_output():
    with pytest.raises(CommandError):
        call_command("generate_cohort", patients=5, seed=1)


def test_seed_demo_twice_duplicates_nothing():
    call_command("seed_demo", patients=30)
    counts = (Centre.objects.count(), get_user_model().objects.count(), Membership.objects.count(),
              Patient.objects.count(), FollowUp.objects.count())
    call_command("seed_demo", patients=30)
    assert (Centre.objects.count(), get_user_model().objects.count(), Membership.objects.count(),
            Patient.objects.count(), FollowUp.objects.count()) == counts
    assert counts[0] == 3 and counts[3] == 30
    roles = set(Membership.objects.values_list("role", flat=True))
    assert roles == {"nurse", "coordinator", "pi", "monitor"}


def test_the_demo_fixture_loads_on_its_own_with_the_demo_password(settings):
    """fixtures/demo.json is plain loaddata input: centres, users and memberships by natural key."""
    from registry.management.commands.seed_demo import DEMO_FIXTURE, DEMO_PASSWORD

    call_command("loaddata", DEMO_FIXTURE, verbosity=0)
    call_command("loaddata", DEMO_FIXTURE, verbosity=0)
    assert Membership.objects.get(user__username="nurse.multi", centre="ESS").role == "nurse"
    assert Membership.objects.filter(user__username="nurse.multi").count() == 2
    assert not Patient.objects.exists()
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # the fixture's hashes
    assert get_user_model().objects.get(username="nurse.muc").check_password(DEMO_PASSWORD)


def test_generate_cohort_help_describes_every_option():
    from io import StringIO

    from registry.management.commands.generate_cohort import Command

    help_text = StringIO()
    Command().create_parser("manage.py", "generate_cohort").print_help(help_text)
    for option in ("--patients", "--centres", "--seed", "--out", "--load", "--user"):
        line = help_text.getvalue().split(option, 1)[1].split("\n  --", 1)[0]
        assert len(line.split()) > 3, f"{option} has no description: {line!r}"
