"""Electronic signatures of cases: a PI of the centre signs with the password (and the second factor
where set up); the signature stores signer, time, meaning and a SHA-256 of the canonical case; any
later change of the case makes it invalid, visibly; refusals are recorded and count toward the
lockout."""
import hashlib
import json

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client, override_settings
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from registry import services
from registry.audit_tables import BY_TABLE
from registry.cases import assemble, case_canonical, case_digest
from registry.models import Metastasectomy, Patient, SecurityEvent, Signature
from registry.selectors import case_load
from registry.services import signatures
from tests import factories as f
from tests.registry.api.test_api_helpers import verify_two_factor

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery"


def complete(user, patient):
    """Every record of the case moved to complete by `user` (a nurse); returns the stored patient."""
    for record in case_load(Patient.objects.get(pk=patient.pk)).records():
        services.record_status_set(user=user, record=record, status="complete")
    return Patient.objects.get(pk=patient.pk)


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


def wrong_code(device):
    """A 6-digit code the device does not accept now (it accepts the codes of one step either side)."""
    accepted = {f"{totp(device.bin_key, drift=drift):06d}" for drift in (-1, 0, 1)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in accepted)


def sign(pi, patient, password=PASSWORD, otp=None):
    return signatures.case_sign(user=pi, patient=patient, password=password, otp=otp, ip_address="10.0.0.7",
                                source="test")


def test_a_pi_signs_a_complete_case_with_signer_time_meaning_and_the_hash_of_the_case(case, nurse, pi):
    patient = complete(nurse, case)
    signature = sign(pi, patient)
    stored = Signature.objects.get()
    assert (stored.patient_id, stored.centre, stored.signer, stored.username) == (case.pk, "MUC", pi, "pi")
    assert stored.meaning == signatures.meaning_text("MUC") and "accurate and complete" in stored.meaning
    assert stored.ip_address == "10.0.0.7" and stored.records == 5 and stored.signed_at is not None
    assert signature.data_hash == case_digest(case_load(patient))


def test_the_hash_is_the_sha256_of_every_records_values_and_version_in_a_canonical_order(case, nurse, pi):
    patient = complete(nurse, case)
    signature = sign(pi, patient)
    loaded = case_load(patient)
    canonical = case_canonical(loaded)
    assert hashlib.sha256(canonical).hexdigest() == signature.data_hash
    rows = json.loads(canonical)
    assert [row["table"] for row in rows] == ["patients", "primary_tumours", "metastasectomies",
                                              "systemic_therapies", "follow_up"]
    pm = loaded.metastasectomies[0]
    pm_row = rows[2]["values"]
    assert (pm_row["max_lesion_diameter_mm"], pm_row["surgery_date"]) == ("15", "2015-04-01")
    assert "status" not in pm_row and "version" not in pm_row  # the data are signed, not their place in the cycle
    assert pm.status == "complete"
    # The same records in another order are the same case.
    shuffled = assemble(loaded.patient, list(reversed(list(loaded.records())[1:])))
    assert case_digest(shuffled) == signature.data_hash


def test_a_change_of_any_record_changes_the_hash(case, nurse, pi):
    patient = complete(nurse, case)
    before = case_digest(case_load(patient))
    pm = Metastasectomy.objects.get(patient=case)
    pm.lesions_resected = 2
    services.record_save(user=nurse, record=pm, reason="re-read the pathology report")
    assert case_digest(case_load(patient)) != before


def test_a_later_edit_marks_the_signature_invalid_on_the_patient_page(case, nurse, pi):
    patient = complete(nurse, case)
    sign(pi, patient)
    page = signed_in(nurse).get(reverse("patient_detail", args=[case.pk])).content.decode()
    assert "Signed by pi on" in page and "(valid)" in page and "Signature invalid" not in page
    pm = Metastasectomy.objects.get(patient=case)
    pm.lesions_resected = 2
    services.record_save(user=nurse, record=pm, reason="re-read the pathology report")
    page = signed_in(pi).get(reverse("patient_detail", args=[case.pk])).content.decode()
    assert "Signature invalid:" in page and "(valid)" not in page
    assert "by nurse (metastasectomy (2015-04-01) changed)" in page
    assert "It was signed by pi on" in page


def test_verifying_or_locking_keeps_the_signature_and_a_new_record_invalidates_it(case, nurse, monitor, pi):
    patient = complete(nurse, case)
    sign(pi, patient)
    services.record_status_set(user=monitor, record=Metastasectomy.objects.get(patient=case), status="verified")
    assert signatures.signature_states(case_load(patient))[0].valid  # the data signed are unchanged
    services.record_save(user=nurse, record=f.follow_up(patient, event_date=f.D(2017, 1, 1)))
    state = signatures.signature_states(case_load(patient))[0]
    assert not state.valid
    assert (state.change["action"], state.change["user"]) == ("added", "nurse")  # not the monitor's status move


def test_a_change_past_the_application_is_caught_without_a_change_in_the_audit_trail(case, nurse, pi):
    patient = complete(nurse, case)
    sign(pi, patient)
    Metastasectomy.objects.filter(patient=case).update(lesions_resected=7)  # an UPDATE past the services
    state = signatures.signature_states(case_load(patient))[0]
    assert not state.valid and state.change is None
    page = signed_in(pi).get(reverse("patient_detail", args=[case.pk])).content.decode()
    assert "the data differ from those signed" in page


def test_a_case_with_a_record_in_progress_is_not_signed(case, nurse, pi):
    with pytest.raises(ValidationError, match="still in progress"):
        sign(pi, case)
    assert not Signature.objects.exists()


def test_a_nurse_a_coordinator_and_a_pi_of_another_centre_may_not_sign(case, nurse, coordinator):
    patient = complete(nurse, case)
    other_pi = f.user("other_pi", memberships=[("BER", "pi")])
    for user in (nurse, coordinator, other_pi):
        with pytest.raises(PermissionDenied):
            sign(user, patient)
    assert signed_in(nurse).get(reverse("patient_sign", args=[case.pk])).status_code == 403
    assert signed_in(coordinator).post(reverse("patient_sign", args=[case.pk]), {"password": PASSWORD}).status_code == 403
    assert signed_in(other_pi).get(reverse("patient_sign", args=[case.pk])).status_code == 404
    assert signed_in(other_pi).post(reverse("centre_sign", args=["MUC"]), {"password": PASSWORD}).status_code == 404
    assert not Signature.objects.exists()


def test_the_pi_signs_on_the_sign_page_which_shows_the_meaning(case, nurse, pi):
    complete(nurse, case)
    client = signed_in(pi)
    page = client.get(reverse("patient_sign", args=[case.pk])).content.decode()
    assert "I confirm that the data of this case are accurate and complete" in page
    assert 'type="password"' in page and 'name="otp"' not in page  # no authenticator: no code asked
    response = client.post(reverse("patient_sign", args=[case.pk]), {"password": PASSWORD}, REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 302 and response["Location"].endswith("#signatures")
    signature = Signature.objects.get()
    assert signature.source == "web" and signature.ip_address == "10.1.2.3"
    assert "(valid)" in client.get(response["Location"]).content.decode()


def test_a_wrong_password_is_refused_recorded_and_counted_toward_the_lockout(case, nurse, pi):
    complete(nurse, case)
    response = signed_in(pi).post(reverse("patient_sign", args=[case.pk]), {"password": "guess"})
    assert response.status_code == 400 and "The password is not correct." in response.content.decode()
    assert not Signature.objects.exists()
    event = SecurityEvent.objects.get(event=SecurityEvent.SIGNATURE_REFUSED)
    assert (event.username, event.patient_id, event.detail, event.what) == ("pi", case.pk, "wrong password",
                                                                           "patient_sign")
    assert AccessAttempt.objects.get(username="pi").failures_since_start == 1
    assert AccessFailureLog.objects.filter(username="pi").count() == 1


@override_settings(AXES_PAIR_FAILURE_LIMIT=2)
def test_after_too_many_wrong_passwords_signing_and_signing_in_are_locked(case, nurse, pi):
    complete(nurse, case)
    client = signed_in(pi)
    url = reverse("patient_sign", args=[case.pk])
    client.post(url, {"password": "guess"})
    client.post(url, {"password": "guess again"})
    response = client.post(url, {"password": PASSWORD})
    assert response.status_code == 400 and "Too many failed attempts" in response.content.decode()
    assert not Signature.objects.exists()
    assert SecurityEvent.objects.filter(event=SecurityEvent.SIGNATURE_REFUSED, detail="locked out").exists()
    assert Client().post("/accounts/login/", {"username": "pi", "password": PASSWORD}).status_code == 429


def test_the_second_factor_is_required_when_the_pi_has_an_authenticator(case, nurse, pi):
    patient = complete(nurse, case)
    device = TOTPDevice.objects.create(user=pi, name="phone", confirmed=True)
    with pytest.raises(signatures.SignatureRefused) as no_code:
        sign(pi, patient)
    assert no_code.value.code == signatures.CODE_REQUIRED
    with pytest.raises(signatures.SignatureRefused) as wrong:
        sign(pi, patient, otp=wrong_code(device))
    assert wrong.value.code == signatures.CODE
    device.refresh_from_db()
    assert device.throttling_failure_count == 1  # counted by the authenticator's throttle, and kept
    device.throttle_reset()
    sign(pi, patient, otp=f"{totp(device.bin_key):06d}")
    assert Signature.objects.count() == 1


def test_the_sign_page_asks_for_the_code_and_records_a_wrong_one(case, nurse, pi):
    complete(nurse, case)
    client = verify_two_factor(Client(), pi)  # signed in with both factors
    device = TOTPDevice.objects.get(user=pi)
    assert 'name="otp"' in client.get(reverse("patient_sign", args=[case.pk])).content.decode()
    response = client.post(reverse("patient_sign", args=[case.pk]), {"password": PASSWORD, "otp": wrong_code(device)})
    assert response.status_code == 400 and "That code is not valid" in response.content.decode()
    assert SecurityEvent.objects.get(event=SecurityEvent.SIGNATURE_REFUSED).detail == "wrong code"
    assert not AccessAttempt.objects.exists()  # a wrong code is the authenticator's throttle's to count


def test_a_pi_signs_every_complete_case_of_the_centre_and_the_rest_is_listed(case, nurse, pi):
    complete(nurse, case)
    second = f.patient("MUC")
    services.record_status_set(user=nurse, record=second, status="complete")
    signed_before = f.patient("MUC")
    signed_before = complete(nurse, signed_before)
    sign(pi, signed_before)
    unfinished = f.patient("MUC")
    client = signed_in(pi)
    page = client.get(reverse("centre_sign", args=["MUC"])).content.decode()
    assert "2 cases to sign" in page and "1 case signed, signature valid" in page
    assert "1 case not complete yet (not signed)" in page and unfinished.pk in page
    response = client.post(reverse("centre_sign", args=["MUC"]), {"password": PASSWORD})
    assert response.status_code == 302
    assert sorted(Signature.objects.values_list("patient_id", flat=True)) == sorted(
        [case.pk, second.pk, signed_before.pk])
    again = client.post(reverse("centre_sign", args=["MUC"]), {"password": PASSWORD})
    assert again.status_code == 400 and "No case of centre MUC is waiting" in again.content.decode()
    assert Signature.objects.count() == 3


def test_the_patient_page_offers_the_pi_to_sign_once_the_case_is_complete(case, nurse, pi):
    client = signed_in(pi)
    page = client.get(reverse("patient_detail", args=[case.pk])).content.decode()
    assert "Not signed." in page and "Sign this case" not in page and "once every record is complete" in page
    complete(nurse, case)
    page = client.get(reverse("patient_detail", args=[case.pk])).content.decode()
    assert reverse("patient_sign", args=[case.pk]) in page
    assert "Sign this case" not in signed_in(nurse).get(reverse("patient_detail", args=[case.pk])).content.decode()


def test_signatures_are_an_append_only_audit_table_erased_only_with_the_patient(case, nurse, pi, coordinator):
    sign(pi, complete(nurse, case))
    assert BY_TABLE[Signature._meta.db_table].patient_column == "patient_id"
    services.patient_erase(user=coordinator, patient_id=case.pk, reference="request 2025/1")
    assert not Signature.objects.exists()


def test_deleting_a_signed_patient_keeps_the_signature_in_the_audit_trail(case, nurse, pi):
    patient = complete(nurse, case)
    sign(pi, patient)
    services.record_delete(user=nurse, record=Patient.objects.get(pk=case.pk), reason="entered twice")
    assert Signature.objects.filter(patient_id=case.pk).exists()


def test_the_audit_export_of_the_patient_shows_the_signature_and_the_verified_fields(case, nurse, monitor, pi,
                                                                                     coordinator):
    from registry.services import verification

    patient = complete(nurse, case)
    verification.fields_verify(user=monitor, record=Metastasectomy.objects.get(patient=case), fields=["side"])
    signature = sign(pi, Patient.objects.get(pk=patient.pk))
    response = signed_in(coordinator).get("/security/audit/", {"format": "json", "patient_id": case.pk})
    rows = json.loads(b"".join(response.streaming_content))["rows"]
    signed = next(row for row in rows if row["kind"] == "signature")
    assert (signed["user"], signed["patient_id"], signed["rows"]) == ("pi", case.pk, 5)
    assert signed["detail"].startswith(f"sha256 {signature.data_hash}: I confirm")
    verified = next(row for row in rows if row["kind"] == "verification")
    assert (verified["user"], verified["detail"]) == ("monitor", 'side = "right"')


def test_an_older_invalid_signature_shows_as_such_under_the_newest(case, nurse, pi):
    patient = complete(nurse, case)
    sign(pi, patient)
    services.record_save(user=nurse, record=f.follow_up(patient, event_date=f.D(2017, 1, 1)))
    services.record_status_set(user=nurse, record=case_load(patient).follow_ups[-1], status="complete")
    sign(pi, patient)
    page = signed_in(pi).get(reverse("patient_detail", args=[case.pk])).content.decode()
    assert "(valid)" in page and "1 earlier signature" in page and "the case has changed since." in page
