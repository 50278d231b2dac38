"""Source data verification, field by field: a monitor ticks the fields checked against the source;
a field whose value changes shows unverified again; verifying every field of a complete record makes
it verified; and the status icons of the patient list and the patient page, with their words."""
import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse

from registry import services
from registry.models import FieldVerification, Metastasectomy, Patient, SystemicTherapy
from registry.services import RecordLocked, StaleRecordError
from registry.services import verification as sdv
from tests import factories as f

pytestmark = pytest.mark.django_db

PM_FIELDS = ["surgery_date", "side", "approach", "resection_type", "lesions_resected", "max_lesion_diameter_mm",
             "diameter_source", "margin", "lymph_node_sampling", "clavien_dindo", "hospital_stay_days"]


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


def complete_pm(nurse, case):
    return services.record_status_set(user=nurse, record=Metastasectomy.objects.get(patient=case), status="complete")


def test_the_verifiable_fields_are_the_values_entered():
    assert [field.name for field in sdv.verifiable_fields(Metastasectomy)] == PM_FIELDS
    assert [field.name for field in sdv.verifiable_fields(Patient)] == [
        "sex", "birth_year", "histology", "lung_mets_diagnosis_date", "extrapulmonary_disease_at_pm", "ecog"]


def test_a_monitor_verifies_fields_and_each_row_keeps_the_value_who_and_when(case, nurse, monitor):
    pm = complete_pm(nurse, case)
    pm, written = sdv.fields_verify(user=monitor, record=pm, fields=["side", "max_lesion_diameter_mm", "diameter_source"])
    rows = {row.field: row for row in FieldVerification.objects.all()}
    assert len(written) == 3 and set(rows) == {"side", "max_lesion_diameter_mm", "diameter_source"}
    assert [json.loads(rows[name].value) for name in ("side", "max_lesion_diameter_mm", "diameter_source")] == [
        "right", "15", None]
    side = rows["side"]
    assert (side.patient_id, side.table, side.record_pk, side.verified_by, side.username) == (
        case.pk, "metastasectomies", str(pm.pk), monitor, "monitor")
    states = {state.name: state.verified for state in sdv.field_states(pm)}
    assert [name for name, verified in states.items() if verified] == ["side", "max_lesion_diameter_mm",
                                                                       "diameter_source"]
    assert pm.status == "complete"  # eight fields are still to be checked
    _pm, again = sdv.fields_verify(user=monitor, record=pm, fields=["side"])
    assert again == [] and FieldVerification.objects.count() == 3  # verified already: nothing new


def test_a_field_whose_value_changed_shows_unverified_again_and_the_others_stay_verified(case, nurse, monitor):
    pm = complete_pm(nurse, case)
    pm, _rows = sdv.fields_verify(user=monitor, record=pm, fields=["side", "margin"])
    pm.margin = "R1"
    services.record_save(user=nurse, record=pm, reason="pathology report corrected")
    states = {state.name: state for state in sdv.field_states(Metastasectomy.objects.get(pk=pm.pk))}
    assert states["side"].verified and not states["margin"].verified
    assert states["margin"].changed_since and json.loads(states["margin"].verification.value) == "R0"
    sdv.fields_verify(user=monitor, record=Metastasectomy.objects.get(pk=pm.pk), fields=["margin"])
    assert sdv.field_states(Metastasectomy.objects.get(pk=pm.pk))[PM_FIELDS.index("margin")].verified


def test_verifying_every_field_of_a_complete_record_makes_it_verified(case, nurse, monitor):
    pm = complete_pm(nurse, case)
    pm, _rows = sdv.fields_verify(user=monitor, record=pm, fields=PM_FIELDS[:-1])
    assert pm.status == "complete"
    pm, _rows = sdv.fields_verify(user=monitor, record=pm, fields=PM_FIELDS[-1:], source="web")
    assert Metastasectomy.objects.get(pk=pm.pk).status == "verified"
    latest = Metastasectomy.history.filter(id=pm.pk).first()
    assert (latest.status, latest.history_user, latest.history_change_reason) == (
        "verified", monitor, "web: every field verified")


def test_a_nurse_and_a_pi_may_not_verify_a_coordinator_may(case, nurse, pi, coordinator):
    pm = complete_pm(nurse, case)
    for user in (nurse, pi, f.user("ber_monitor", memberships=[("BER", "monitor")])):
        with pytest.raises(PermissionDenied):
            sdv.fields_verify(user=user, record=pm, fields=["side"])
    sdv.fields_verify(user=coordinator, record=pm, fields=["side"])
    assert FieldVerification.objects.get().username == "coordinator"


def test_a_record_in_progress_a_locked_one_and_an_unknown_field_are_refused(case, nurse, monitor, coordinator):
    therapy = SystemicTherapy.objects.get(patient=case)
    with pytest.raises(ValidationError, match="still in progress"):
        sdv.fields_verify(user=monitor, record=therapy, fields=["regimen"])
    pm = complete_pm(nurse, case)
    with pytest.raises(ValidationError, match="has no field status"):
        sdv.fields_verify(user=monitor, record=pm, fields=["status"])
    for status in ("verified", "locked"):
        pm = services.record_status_set(user=coordinator, record=pm, status=status)
    with pytest.raises(RecordLocked):
        sdv.fields_verify(user=monitor, record=pm, fields=["side"])
    assert not FieldVerification.objects.exists()


def test_values_changed_since_the_monitor_opened_the_record_are_not_verified(case, nurse, monitor):
    pm = complete_pm(nurse, case)
    opened = pm.version
    pm.side = "left"
    services.record_save(user=nurse, record=pm, reason="side corrected")
    with pytest.raises(StaleRecordError):
        sdv.fields_verify(user=monitor, record=pm, fields=["side"], expected_version=opened)
    assert not FieldVerification.objects.exists()


def test_the_verification_page_shows_each_field_with_its_value_and_a_checkbox(case, nurse, monitor):
    pm = complete_pm(nurse, case)
    client = signed_in(monitor)
    url = reverse("record_verify", args=[case.pk, "metastasectomies", pm.pk])
    page = client.get(url).content.decode()
    assert page.count('type="checkbox" name="fields"') == len(PM_FIELDS)
    assert "Largest lesion (mm)" in page and "<td>15</td>" in page and "not verified" in page
    response = client.post(url, {"fields": ["side", "margin"], "version": pm.version})
    assert response.status_code == 302 and response["Location"].endswith("#metastasectomies")
    page = client.get(url).content.decode()
    assert page.count('type="checkbox" name="fields"') == len(PM_FIELDS) - 2
    assert page.count("verified by monitor on") == 2
    detail = client.get(reverse("patient_detail", args=[case.pk])).content.decode()
    assert "2 of 11 fields verified" in detail and url in detail and "Verify fields" in detail


def test_the_page_shows_a_changed_field_as_unverified_with_the_value_verified(case, nurse, monitor):
    pm = complete_pm(nurse, case)
    sdv.fields_verify(user=monitor, record=pm, fields=["margin"])
    pm = Metastasectomy.objects.get(pk=pm.pk)
    pm.margin = "R1"
    services.record_save(user=nurse, record=pm, reason="pathology report corrected")
    page = signed_in(monitor).get(reverse("record_verify", args=[case.pk, "metastasectomies", pm.pk])).content.decode()
    assert "unverified: changed since monitor verified R0 on" in page
    nurse_page = signed_in(nurse).get(reverse("patient_detail", args=[case.pk])).content.decode()
    assert "0 of 11 fields verified" not in nurse_page and "Verify fields" not in nurse_page


def test_the_patient_is_verified_on_its_own_page_and_a_stale_form_is_refused(case, nurse, monitor):
    patient = services.record_status_set(user=nurse, record=Patient.objects.get(pk=case.pk), status="complete")
    client = signed_in(monitor)
    url = reverse("patient_verify", args=[case.pk])
    assert "Year of birth" in client.get(url).content.decode()
    stale = client.post(url, {"fields": ["sex"], "version": patient.version - 1})
    assert stale.status_code == 400 and "changed meanwhile" in stale.content.decode()
    fields = [field.name for field in sdv.verifiable_fields(Patient)]
    response = client.post(url, {"fields": fields, "version": patient.version})
    assert response.status_code == 302 and Patient.objects.get(pk=case.pk).status == "verified"


def test_nurses_and_pis_cannot_open_the_verification_page(case, nurse, pi, other_nurse):
    pm = complete_pm(nurse, case)
    url = reverse("record_verify", args=[case.pk, "metastasectomies", pm.pk])
    assert signed_in(nurse).get(url).status_code == 403
    assert signed_in(pi).post(url, {"fields": ["side"], "version": pm.version}).status_code == 403
    assert signed_in(other_nurse).get(url).status_code == 404
    assert not FieldVerification.objects.exists()


# --- status icons ---------------------------------------------------------------------------------

def test_the_patient_list_shows_a_status_icon_per_form_with_its_words(client, case, nurse, coordinator):
    complete_pm(nurse, case)
    bare = f.patient("MUC")
    client.force_login(nurse)
    page = client.get(reverse("patient_list"), {"centre": "MUC"}).content.decode()
    assert '<span class="visually-hidden">Metastasectomies: complete</span>' in page
    assert 'title="Metastasectomies: complete"' in page
    assert '<span class="visually-hidden">Systemic therapies: in progress</span>' in page
    assert f"Status of each form of {bare.pk}" in page
    row = page.split(f"Status of each form of {bare.pk}")[1].split("</ul>")[0]
    assert row.count("none entered") == 2 * 4  # each empty form: its words, and the tooltip
    assert 'aria-hidden="true">&#x2714;</span>' in page  # the complete form's icon (the words beside it)
    services.record_status_set(user=coordinator, record=Metastasectomy.objects.get(patient=case), status="verified")
    services.record_save(user=nurse, record=f.metastasectomy(case, surgery_date=f.D(2017, 1, 10)))
    page = client.get(reverse("patient_list"), {"centre": "MUC"}).content.decode()
    assert "Metastasectomies: in progress" in page  # a form shows its least advanced record


def test_the_counts_per_centre_show_icons_and_words_on_the_home_page(client, case, nurse, coordinator):
    complete_pm(nurse, case)
    f.patient("BER")
    client.force_login(coordinator)
    page = client.get(reverse("home")).content.decode()
    muc = page.split("Centre MUC")[1].split("</li>")[0]
    assert "Records:" in muc and '<strong>1</strong> complete' in muc and '<strong>4</strong> in progress' in muc
    assert 'aria-hidden="true">&#x2714;</span> <strong>1</strong> complete' in muc
