"""The coordinators' security log shows reads of patient data and refused requests among the other
events, for one user name or all."""
import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


def test_the_security_log_shows_reads_and_refusals_for_the_user_asked_for(case, nurse, other_nurse, coordinator):
    signed_in(nurse).get(f"/patients/{case.pk}/")
    signed_in(nurse).get("/security/")  # refused: 403
    signed_in(other_nurse).get(f"/patients/{case.pk}/")  # another centre's patient: 404

    page = signed_in(coordinator).get("/security/", {"user": "nurse"}).content.decode()
    assert "read patient data" in page and f"patient_detail, {case.pk}, 1 rows" in page
    assert "request refused" in page and "security_log, 403" in page
    assert "other_nurse" not in page

    page = signed_in(coordinator).get("/security/", {"user": "other_nurse"}).content.decode()
    assert f"patient_detail, 404, {case.pk}" in page and "security_log, 403" not in page
