"""The access module answers, for every role, which patients a user may read and write."""
import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied

from registry import access, services
from registry.models import FollowUp, Metastasectomy
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def patients():
    """One patient in each of three centres."""
    return {code: f.patient(code) for code in ("MUC", "HD", "ESS")}


def readable(user):
    return set(access.patients_readable(user).values_list("centre", flat=True))


def writable(user):
    return set(access.patients_writable(user).values_list("centre", flat=True))


def test_nurse_reads_and_writes_only_own_centres_patients(patients):
    nurse = f.user(memberships=[("MUC", "nurse")])
    assert readable(nurse) == writable(nurse) == {"MUC"}


def test_nurse_cannot_read_other_centres_patients(patients):
    nurse = f.user(memberships=[("MUC", "nurse")])
    assert not access.patients_readable(nurse).filter(pk=patients["HD"].pk).exists()


def test_nurse_cannot_write_other_centres_patients(patients):
    nurse = f.user(memberships=[("MUC", "nurse")])
    with pytest.raises(PermissionDenied):
        services.record_save(user=nurse, record=f.metastasectomy(patients["HD"]))
    assert not Metastasectomy.objects.exists()


def test_nurse_of_several_centres_reads_and_writes_each(patients):
    nurse = f.user(memberships=[("MUC", "nurse"), ("HD", "nurse")])
    assert readable(nurse) == writable(nurse) == {"MUC", "HD"}
    services.record_save(user=nurse, record=f.metastasectomy(patients["HD"]))


def test_coordinator_reads_and_writes_all_centres(patients):
    coordinator = f.user(memberships=[("MUC", "coordinator")])
    assert readable(coordinator) == writable(coordinator) == {"MUC", "HD", "ESS"}
    assert access.can_export_pooled(coordinator)


def test_pi_reads_own_centre_records_writes_nothing_and_analyses_all(patients):
    pi = f.user(memberships=[("HD", "pi")])
    assert readable(pi) == {"HD"}
    assert writable(pi) == set()
    assert set(access.patients_for_analysis(pi).values_list("centre", flat=True)) == {"MUC", "HD", "ESS"}
    with pytest.raises(PermissionDenied):
        services.record_save(user=pi, record=f.metastasectomy(patients["HD"]))


def test_monitor_reads_and_verifies_the_assigned_centres_and_writes_nothing(patients):
    monitor = f.user(memberships=[("HD", "monitor"), ("ESS", "monitor")])
    assert readable(monitor) == {"HD", "ESS"}
    assert writable(monitor) == set() and not access.can_import(monitor) and not access.can_export(monitor)
    assert access.status_moves(monitor, "HD", "complete") == {"verified"}
    assert access.status_moves(monitor, "HD", "verified") == {"complete"}
    assert access.status_moves(monitor, "HD", "in_progress") == set()
    assert access.status_moves(monitor, "MUC", "complete") == set()  # not assigned to MUC
    with pytest.raises(PermissionDenied):
        services.record_save(user=monitor, record=f.metastasectomy(patients["HD"]))
    assert not Metastasectomy.objects.exists()


def test_only_a_coordinator_locks_and_unlocks(patients):
    coordinator = f.user(memberships=[("MUC", "coordinator")])
    nurse = f.user(memberships=[("HD", "nurse")])
    assert access.status_moves(coordinator, "HD", "verified") == {"complete", "locked"}
    assert access.status_moves(coordinator, "ESS", "locked") == {"verified"}
    assert access.status_moves(nurse, "HD", "locked") == set()
    assert access.status_moves(nurse, "HD", "in_progress") == {"complete"}


def test_nurse_analysis_scope_is_own_centre(patients):
    nurse = f.user(memberships=[("ESS", "nurse")])
    assert set(access.patients_for_analysis(nurse).values_list("centre", flat=True)) == {"ESS"}


def test_deactivated_and_anonymous_users_see_nothing(patients):
    former = f.user(memberships=[("MUC", "coordinator")], is_active=False)
    for user in (former, AnonymousUser()):
        assert readable(user) == writable(user) == set()
        assert not access.centres_readable(user).exists()
        assert not access.can_export_pooled(user)


def test_user_without_membership_sees_nothing(patients):
    assert readable(f.user()) == set()


def test_records_of_other_centres_are_filtered_for_every_clinical_table(patients):
    coordinator = f.user(memberships=[("MUC", "coordinator")])
    for patient in patients.values():
        services.record_save(user=coordinator, record=f.metastasectomy(patient))
        services.record_save(user=coordinator, record=f.follow_up(patient))
    nurse = f.user(memberships=[("HD", "nurse")])
    for model in (Metastasectomy, FollowUp):
        assert set(access.records_readable(nurse, model).values_list("patient__centre", flat=True)) == {"HD"}


def test_superuser_counts_as_coordinator(patients):
    admin = f.user(is_superuser=True)
    assert readable(admin) == {"MUC", "HD", "ESS"}
