"""Who may open which page: generated from the URL names of registry/web/urls.py, so a new page
cannot be added without saying who may open it.

- an anonymous visitor is sent to sign in, for GET and POST alike;
- a nurse of another centre gets a refusal (404: not even the existence is shown);
- a PI of the centre reads every page but gets 403 on every form, GET or POST;
- a refused POST changes nothing.
"""
import pytest
from django.urls import reverse

from registry.models import FollowUp, Metastasectomy, Patient, PrimaryTumour, SystemicTherapy
from registry.web import urls as web_urls

pytestmark = pytest.mark.django_db

KINDS = {
    "primary-tumour": PrimaryTumour,
    "metastasectomies": Metastasectomy,
    "systemic-therapies": SystemicTherapy,
    "follow-up": FollowUp,
}


def url_for(name, case, kind=None):
    """The URL of a page about the `case` fixture (a MUC patient with one record of each type)."""
    if name == "patient_list":
        return reverse(name) + "?centre=MUC"
    if name in ("patient_new", "data_quality"):
        return reverse(name, args=["MUC"])
    if name in ("patient_detail", "patient_edit", "patient_delete", "patient_history"):
        return reverse(name, args=[case.pk])
    if name == "record_add":
        return reverse(name, args=[case.pk, kind])
    record = KINDS[kind].objects.get(patient=case) if kind != "metastasectomies" else case.metastasectomies.get()
    return reverse(name, args=[case.pk, kind, record.pk])


# Every URL name with the record types it serves; READ pages are open to a PI, the rest are forms.
CENTRE_PAGES = ["patient_list", "patient_new", "data_quality", "patient_detail", "patient_edit",
                "patient_delete", "patient_history"]
RECORD_PAGES = ["record_add", "record_edit", "record_delete"]
OWN_SCOPE_PAGES = ["home", "study_progress", "follow_up_due", "deleted_records"]  # only the user's own centres
READ_PAGES = {"patient_list", "data_quality", "patient_detail", "patient_history"}

PAGES = [(name, None) for name in CENTRE_PAGES] + [(name, kind) for name in RECORD_PAGES for kind in KINDS]


def main_content(response):
    """The page without its header (whose language form echoes the requested URL)."""
    return response.content.decode().split("</header>")[-1]


def table_counts():
    return [model.objects.count() for model in (Patient, *KINDS.values())]


STATUS_PAGE = "record_status"  # a POST only: the buttons that move a record's status
RESTORE_PAGE = "deleted_record_restore"  # a POST only: a coordinator restores a deletion (tests/registry/test_deletions.py)
# A PI's signature pages and a verifier's field verification pages: forms with their own rules, in
# tests/test_access_matrix.py (every role), tests/registry/test_signatures.py and test_field_verification.py.
SIGN_AND_VERIFY_PAGES = {"patient_sign", "centre_sign", "patient_verify", "record_verify"}
# Queries: every role on each of them in tests/test_access_matrix.py, their moves in tests/registry/test_queries.py.
QUERY_PAGES = {"query_list", "query_detail", "query_new"}
# The data freezes' pages, for coordinators only: tests/test_access_matrix.py (every role) and
# tests/registry/web/test_web_freezes.py.
FREEZE_PAGES = {"freeze_list", "freeze_diff", "freeze_diff_csv"}


def test_every_url_name_is_covered_by_these_tests():
    names = {pattern.name for pattern in web_urls.urlpatterns}
    assert names == (set(CENTRE_PAGES) | set(RECORD_PAGES) | set(OWN_SCOPE_PAGES) | {STATUS_PAGE, RESTORE_PAGE}
                     | SIGN_AND_VERIFY_PAGES | QUERY_PAGES | FREEZE_PAGES)


def test_a_status_move_is_refused_to_the_anonymous_another_centre_and_a_pi(client, case, other_nurse, pi):
    url, move = reverse(STATUS_PAGE, args=[case.pk]), {"kind": "patient", "pk": case.pk, "status": "complete"}
    assert client.post(url, move)["Location"].startswith(reverse("login") + "?next=")
    client.force_login(other_nurse)
    assert client.post(url, move).status_code == 404
    client.force_login(pi)
    assert client.post(url, move).status_code == 403
    assert client.get(url).status_code == 405
    assert Patient.objects.get(pk=case.pk).status == "in_progress"


@pytest.mark.parametrize("name,kind", PAGES + [("home", None)])
def test_anonymous_visitor_is_sent_to_sign_in(client, case, name, kind):
    url = url_for(name, case, kind) if name != "home" else reverse("home")
    before = table_counts()
    for method in (client.get, client.post):
        response = method(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login") + "?next=")
    assert table_counts() == before


@pytest.mark.parametrize("name,kind", PAGES)
def test_nurse_of_another_centre_is_refused(client, case, other_nurse, name, kind):
    client.force_login(other_nurse)
    before = table_counts()
    url = url_for(name, case, kind)
    for method in (client.get, client.post):
        response = method(url)
        read_only_page_posted = name in READ_PAGES and method == client.post
        assert response.status_code in ((405,) if read_only_page_posted else (403, 404))
        assert case.pk not in main_content(response)
    assert table_counts() == before


@pytest.mark.parametrize("name,kind", PAGES)
def test_pi_reads_but_every_form_is_refused(client, case, pi, name, kind):
    client.force_login(pi)
    before = table_counts()
    url = url_for(name, case, kind)
    if name in READ_PAGES:
        assert client.get(url).status_code == 200
        assert client.post(url).status_code == 405  # read-only pages take no POST at all
    else:
        assert client.get(url).status_code == 403
        assert client.post(url).status_code == 403
    assert table_counts() == before


def test_pi_sees_no_buttons_or_forms_on_the_patient_page(client, case, pi):
    client.force_login(pi)
    html = client.get(reverse("patient_detail", args=[case.pk])).content.decode()
    assert "/edit/" not in html and "/delete/" not in html and "/add/" not in html
    assert 'method="post"' not in html.split("</header>")[1]


def test_home_of_another_centres_nurse_does_not_show_the_centre(client, case, other_nurse):
    client.force_login(other_nurse)
    response = client.get(reverse("home"), follow=True)
    assert response.status_code == 200
    assert "MUC" not in response.content.decode()


def test_patient_list_without_centre_filter_shows_only_own_centres(client, case, other_nurse):
    client.force_login(other_nurse)
    response = client.get(reverse("patient_list"))
    assert response.status_code == 200
    assert case.pk not in response.content.decode()


def test_coordinator_sees_all_centres(client, case, coordinator):
    from tests import factories as f
    berlin = f.patient("BER")
    client.force_login(coordinator)
    home = client.get(reverse("home")).content.decode()
    assert "Centre MUC" in home and "Centre BER" in home
    listing = client.get(reverse("patient_list")).content.decode()
    assert case.pk in listing and berlin.pk in listing
    assert client.get(reverse("patient_detail", args=[berlin.pk])).status_code == 200
    assert client.get(reverse("data_quality", args=["BER"])).status_code == 200
