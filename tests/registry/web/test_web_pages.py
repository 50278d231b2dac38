"""The read pages: patient list (search, filters, sort, pages, counts), history, data quality,
completeness checks, sign-in landing and the German translation."""
import datetime

import pytest
from django.urls import reverse

from registry import services
from registry.models import Patient
from registry.web import quality
from tests import factories as f

pytestmark = pytest.mark.django_db
D = datetime.date


def complete_case(nurse, centre="MUC", **patient_fields):
    patient = f.patient(centre, **patient_fields)
    for record in (f.primary_tumour(patient), f.metastasectomy(patient),
                   f.follow_up(patient, event_date=datetime.date.today())):
        services.record_save(user=nurse, record=record)
    return patient


def test_nurse_of_one_centre_lands_on_its_patient_list_after_signing_in(client, nurse):
    response = client.post(reverse("login"), {"username": "nurse", "password": "correct-horse-battery"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("patient_list") + "?centre=MUC"
    assert response.status_code == 200


def test_a_principal_investigator_lands_on_the_survival_dashboard(client):
    client.force_login(f.user("pi", memberships=[("MUC", "pi")]))
    assert client.get(reverse("home"))["Location"] == reverse("analysis:dashboard")
    client.force_login(f.user("pi.and.nurse", memberships=[("MUC", "pi"), ("BER", "nurse")]))
    assert client.get(reverse("home")).status_code == 200  # who also enters data chooses a centre


def test_user_of_several_centres_chooses_a_centre(client):
    user = f.user("twocentres", memberships=[("MUC", "nurse"), ("BER", "pi")])
    client.force_login(user)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Centre MUC" in html and "Centre BER" in html
    assert reverse("patient_new", args=["MUC"]) in html and reverse("patient_new", args=["BER"]) not in html


def test_patient_list_searches_filters_sorts_and_counts(client, nurse, case):
    complete = complete_case(nurse, histology="UPS")
    newest = f.patient("MUC", histology="SyS")
    f.patient("BER")
    client.force_login(nurse)

    def listed(**params):
        response = client.get(reverse("patient_list"), params)
        assert response.status_code == 200
        return [patient.pk for patient, _gaps in response.context["rows"]]

    assert len(listed()) == 3  # BER is not the nurse's centre
    assert listed(q=complete.pk[-4:].lower()) == [complete.pk]
    assert listed(histology="UPS") == [complete.pk]
    assert listed(completeness="complete") == [complete.pk]
    assert complete.pk not in listed(completeness="incomplete")
    assert listed(sort="-updated_at")[0] == newest.pk
    response = client.get(reverse("patient_list"))
    assert [(c.code, total, incomplete) for c, total, incomplete, _w in response.context["summaries"]] == [("MUC", 3, 2)]


def test_patient_list_pages_through_many_patients(client, nurse, django_assert_max_num_queries):
    for _ in range(30):
        f.patient("MUC")
    client.force_login(nurse)
    # no query per patient (one more: the read recorded; one more: the records counted by status; one
    # more: the statuses of the page's records, for the form-status grid)
    with django_assert_max_num_queries(15):
        first = client.get(reverse("patient_list"), {"centre": "MUC"})
    assert len(first.context["rows"]) == 25
    second = client.get(reverse("patient_list"), {"centre": "MUC", "page": 2})
    assert len(second.context["rows"]) == 5
    assert "centre=MUC" in first.content.decode().split("Next")[0].rsplit("href=", 1)[1]


def test_history_shows_who_changed_which_field_from_what_to_what(client, nurse, case):
    pm = case.metastasectomies.get()
    pm.margin = "R1"
    services.record_save(user=nurse, record=pm, expected_version=1)
    services.record_delete(user=nurse, record=case.follow_ups.get(), reason="entered in error")
    client.force_login(nurse)
    response = client.get(reverse("patient_history", args=[case.pk]))
    entries = response.context["entries"]
    assert [(e["action"], e["record"].split(" (")[0]) for e in entries[:2]] == [
        ("deleted", "follow-up event"), ("changed", "metastasectomy")]
    assert entries[1]["changes"] == [("Margin", "R0", "R1")] and entries[1]["user"] == "nurse"
    assert {e["action"] for e in entries} == {"created", "changed", "deleted"}
    assert [e["date"] for e in entries] == sorted((e["date"] for e in entries), reverse=True)


def test_data_quality_page_is_paged_and_its_counts_filter_by_gap(client, nurse, case, settings):
    from registry.web import views

    complete_case(nurse)
    for _ in range(views.PAGE_SIZE + 3):
        f.patient("MUC")  # nothing entered but the patient: no primary tumour, no PM, no follow-up
    client.force_login(nurse)
    first = client.get(reverse("data_quality", args=["MUC"]))
    assert len(first.context["page"].object_list) == views.PAGE_SIZE and "Page 1 of 2" in first.content.decode()
    assert '?gap=no_primary_tumour"' in first.content.decode()
    second = client.get(reverse("data_quality", args=["MUC"]), {"page": 2})
    assert len(second.context["page"].object_list) == len(first.context["rows"]) - views.PAGE_SIZE
    stale = client.get(reverse("data_quality", args=["MUC"]), {"gap": "follow_up_stale"})
    assert [patient.pk for patient, _gaps in stale.context["page"].object_list] == [case.pk]
    assert dict((gap.code, n) for gap, n in stale.context["counts"])["no_primary_tumour"] == views.PAGE_SIZE + 3


def test_completeness_checks_each_gap(nurse):
    today = datetime.date.today()
    bare = f.patient("MUC", ecog=None)
    stale = f.patient("MUC")
    services.record_save(user=nurse, record=f.primary_tumour(stale, grade=None, margin=None))
    services.record_save(user=nurse, record=f.metastasectomy(stale))
    services.record_save(user=nurse, record=f.follow_up(stale, event_date=today - datetime.timedelta(days=400)))
    dead = f.patient("MUC")
    for record in (f.primary_tumour(dead), f.metastasectomy(dead), f.follow_up(dead, event="death", event_date=D(2016, 1, 1))):
        services.record_save(user=nurse, record=record)
    found = {p.pk: {gap.code for gap in quality.gaps(p)} for p in quality.with_completeness(Patient.objects.all())}
    assert found[bare.pk] == {"no_primary_tumour", "no_metastasectomy", "no_follow_up", "ecog_blank"}
    assert found[stale.pk] == {"follow_up_stale", "grade_blank", "primary_margin_blank"}
    assert found[dead.pk] == set()  # a death ends follow-up: nothing is stale


def test_data_quality_page_lists_every_incomplete_patient_with_a_link_to_fix_it(client, nurse, case,
                                                                              django_assert_max_num_queries):
    complete = complete_case(nurse)
    for _ in range(5):
        f.patient("MUC")
    client.force_login(nurse)
    with django_assert_max_num_queries(11):  # with the read recorded
        response = client.get(reverse("data_quality", args=["MUC"]))
    listed = [patient.pk for patient, _gaps in response.context["rows"]]
    assert case.pk in listed and complete.pk not in listed and len(listed) == 6
    html = response.content.decode()
    assert "Last follow-up is more than 12 months ago." in html
    assert reverse("record_add", args=[case.pk, "follow-up"]) in html


def test_patient_page_lists_what_the_analysis_still_lacks(client, nurse):
    patient = f.patient("MUC", ecog=None)
    client.force_login(nurse)
    html = client.get(reverse("patient_detail", args=[patient.pk])).content.decode()
    assert "Still missing for the analysis" in html
    assert "No primary tumour entered." in html and "ECOG at the first metastasectomy is blank." in html
    assert reverse("patient_edit", args=[patient.pk]) in html


def test_german_browser_gets_german_pages(client, nurse, case):
    client.force_login(nurse)
    html = client.get(reverse("patient_detail", args=[case.pk]), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert 'lang="de"' in html
    for text in ("Primärtumor", "Pulmonale Metastasektomien", "Nachsorge", "Abmelden", "Extremität"):
        assert text in html, text
    form = client.get(reverse("record_add", args=[case.pk, "follow-up"]), HTTP_ACCEPT_LANGUAGE="de")
    assert "Ereignisdatum" in form.content.decode()
    refused = client.post(reverse("record_add", args=[case.pk, "follow-up"]),
                          {"event_date": "2015-03-01", "event": "contact"}, HTTP_ACCEPT_LANGUAGE="de")
    assert "vor der ersten Metastasektomie" in " ".join(refused.context["form"].errors["event_date"])


def test_user_switches_language_with_the_picker(client, nurse):
    client.force_login(nurse)
    client.post(reverse("set_language"), {"language": "de", "next": reverse("patient_list")})
    assert "Patienten" in client.get(reverse("patient_list")).content.decode()


def test_every_code_label_field_label_and_help_text_has_a_german_translation():
    from django.utils import translation
    from django.utils.functional import Promise

    from registry import codes
    from registry.models import CLINICAL_MODELS

    lazy = []
    for name, value in vars(codes).items():
        if name.isupper() and all(isinstance(item, tuple) and len(item) == 2 for item in value):
            lazy += [label for _code, label in value]
    for model in CLINICAL_MODELS:
        lazy.append(model._meta.verbose_name)
        for field in model._meta.get_fields():
            lazy += [getattr(field, "verbose_name", ""), getattr(field, "help_text", "")]
    with translation.override("en"):
        msgids = {str(text) for text in lazy if isinstance(text, Promise)}
    catalog = translation.trans_real.translation("de")._catalog
    missing = sorted(msgid for msgid in msgids if msgid not in catalog)
    assert not missing, f"untranslated (run makemessages and translate locale/de): {missing}"


def test_history_shows_where_each_change_came_from(client, nurse, case):
    from tests.registry.api.test_api_helpers import client_for

    pm = case.metastasectomies.get()
    client.force_login(nurse)
    edit = reverse("record_edit", args=[case.pk, "metastasectomies", pm.pk])
    from tests.registry.web.test_web_entry import form_values

    assert client.post(edit, {**form_values(client.get(edit)), "margin": "R1"}).status_code == 302
    assert client_for(nurse).patch(f"/api/v1/metastasectomies/{pm.pk}/", {"margin": "R2"}, format="json",
                                   HTTP_IF_MATCH='"2"').status_code == 200
    response = client.get(reverse("patient_history", args=[case.pk]))
    assert [e["source"] for e in response.context["entries"][:2]] == ["api", "web"]
    assert "via api" in response.content.decode() and "via web" in response.content.decode()


def test_a_unit_stands_once_beside_its_box_not_also_in_the_label(client, nurse, case):
    client.force_login(nurse)
    for language in ("en", "de"):
        html = client.get(reverse("record_add", args=[case.pk, "metastasectomies"]),
                          HTTP_ACCEPT_LANGUAGE=language).content.decode()
        label = html.split('for="id_max_lesion_diameter_mm"', 1)[1].split("</label>", 1)[0]
        assert "(mm)" not in label, label
        field = html.split('id="id_max_lesion_diameter_mm"', 1)[1].split("</div>", 1)[0]
        assert '<span class="unit">mm</span>' in field


def test_every_yes_no_question_offers_the_same_choices_and_shows_what_is_stored(client, nurse, case):
    from registry.models import Metastasectomy

    client.force_login(nurse)
    html = client.get(reverse("record_add", args=[case.pk, "metastasectomies"])).content.decode()
    select = html.split('name="lymph_node_sampling"', 1)[1].split("</select>", 1)[0]
    assert [option.split(">", 1)[1].split("<", 1)[0] for option in select.split("<option")[1:]] == \
        ["---------", "yes", "no"]
    pm = Metastasectomy.objects.filter(patient=case).first()
    pm.lymph_node_sampling = True
    pm.save()
    html = client.get(reverse("record_edit", args=[case.pk, "metastasectomies", pm.pk])).content.decode()
    assert '<option value="true" selected>' in html.split('name="lymph_node_sampling"', 1)[1].split("</select>")[0]


def test_a_whole_number_of_a_decimal_field_shows_without_a_decimal_point(client, nurse, case):
    client.force_login(nurse)
    tumour = case.primary_tumour
    tumour.size_mm = 85
    tumour.save()
    html = client.get(reverse("record_edit", args=[case.pk, "primary-tumour", tumour.pk])).content.decode()
    box = html.split('id="id_size_mm"', 1)[0].rsplit("<input", 1)[1] + html.split('id="id_size_mm"', 1)[1].split(">", 1)[0]
    assert 'value="85"' in box


def test_the_timeline_shows_later_operations_and_therapies_beside_follow_up_in_date_order(client, nurse, case):
    from registry import services

    services.record_save(user=nurse, record=f.metastasectomy(case, surgery_date=f.D(2016, 2, 1), side="left"))
    services.record_save(user=nurse, record=f.systemic_therapy(case, start_date=f.D(2015, 6, 1)))
    client.force_login(nurse)
    response = client.get(reverse("patient_detail", args=[case.pk]))
    kinds = [(entry["kind"], entry["date"].isoformat()) for entry in response.context["timeline"]]
    assert ("operation", "2016-02-01") in kinds and ("therapy", "2015-06-01") in kinds
    assert [date for _kind, date in kinds] == sorted(date for _kind, date in kinds)
    timeline = response.content.decode().split('<ol class="timeline">', 1)[1].split("</ol>", 1)[0]
    assert "Metastasectomy" in timeline and "Systemic therapy started" in timeline


def test_the_demo_shows_the_registrys_404_page_not_the_url_list(client, nurse, settings):
    from django.test import override_settings

    client.force_login(nurse)
    middleware = [*settings.MIDDLEWARE, "registry.web.middleware.RegistryNotFoundPageMiddleware"]
    with override_settings(DEBUG=True, MIDDLEWARE=middleware):
        page = client.get("/no-such-page/")
        assert page.status_code == 404
        assert "This page does not exist" in page.content.decode()
        assert "URLconf" not in page.content.decode()
        settings.DEBUG_TECHNICAL_404 = True
        assert "URLconf" in client.get("/no-such-page/").content.decode()
