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
def monitor(db):
    """A monitor of MUC: reads and verifies its records, changes no clinical data."""
    return f.user("monitor", memberships=[("MUC", "monitor")])


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


@pytest.fixture(autouse=True)
def english_after_each_test():
    """A request in German activates German in the test's thread; every test starts in English,
    whichever test ran before it (the suite also runs in random order in CI)."""
    from django.utils import translation

    translation.activate("en")
    yield
    translation.activate("en")


@pytest.fixture(autouse=True)
def only_services_write_clinical_tables():
    """Every test runs under the one-writer rule (tests/writers.py)."""
    from tests.writers import only_services_write

    with only_services_write():
        yield
