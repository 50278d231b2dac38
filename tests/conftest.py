"""Shared fixtures: one user per role and a complete case at centre MUC."""
import pytest

from registry import services
from tests import factories as f


@pytest.fixture
def nurse(db):
    return f.user("nurse", memberships=[("MUC", "nurse")])


@pytest.fixture
def other_nurse(db):
    """A nurse of another centre (BER): may see nothing of MUC."""
    return f.user("other_nurse", memberships=[("BER", "nurse")])


@pytest.fixture
def pi(db):
    return f.user("pi", memberships=[("MUC", "pi")])


@pytest.fixture
def coordinator(db):
    return f.user("coordinator", memberships=[("MUC", "coordinator")])


@pytest.fixture
def case(nurse):
    """A MUC patient with a primary, a PM (2015-04-01), a therapy and a contact (2016-01-01)."""
    patient = f.patient("MUC")
    for record in (f.primary_tumour(patient), f.metastasectomy(patient), f.systemic_therapy(patient),
                   f.follow_up(patient)):
        services.record_save(user=nurse, record=record)
    return patient


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Real hashing costs ~0.3 s per user; tests need no protection against brute force."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
