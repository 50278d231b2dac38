"""Signing cases on the web (registry.services.signatures): a principal investigator's sign page for
one patient and for every complete case of a centre, and the signature panel of the patient page.

A signature page is a form like any other: 404 for another centre's patient, 403 for everyone but
a PI of the centre. The page shows what is signed (the case's records) and what the signature
means, and asks for the password again (and the authenticator's code, when the PI has one);
registry.security.reauthentication records each refusal and counts wrong passwords toward the
sign-in lockout.
"""
from axes.helpers import get_client_ip_address
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_http_methods

from registry import access, rules, selectors
from registry.security import audit
from registry.security.reauthentication import identity_checked
from registry.services import signatures
from registry.web import presentation
from registry.web import views as pages


class SignForm(forms.Form):
    password = forms.CharField(label=gettext_lazy("Your password"), strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    otp = forms.CharField(label=gettext_lazy("6-digit code from your authenticator app"), max_length=8,
                          required=False,  # the service asks for it, and records its absence
                          widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                                        "pattern": "[0-9 ]*", "required": True}))

    def __init__(self, *args, needs_code=False, **kwargs):
        super().__init__(*args, **kwargs)
        if not needs_code:
            del self.fields["otp"]

    def add_service_error(self, error):
        if not hasattr(error, "error_dict"):
            self.add_error(None, error.messages)
            return
        for key, messages_ in error.message_dict.items():
            self.add_error(key if key in self.fields else None, messages_)


def _sign(request, form, sign, **scope):
    """Call `sign` (a service) with the form's password and code; the Signature(s), or None after a
    refusal (put on the form)."""
    try:
        with identity_checked(request, user=request.user, **scope):
            return sign(user=request.user, password=form.cleaned_data["password"], otp=form.cleaned_data.get("otp"),
                        ip_address=get_client_ip_address(request), source="web")
    except ValidationError as error:
        form.add_service_error(error)
        return None


@login_required
@require_http_methods(["GET", "POST"])
def patient_sign(request, patient_id):
    """Sign one patient's case as accurate and complete."""
    patient = pages.readable_patient(request, patient_id)
    if not access.can_sign(request.user, patient.centre_id):
        raise PermissionDenied(_("Only a principal investigator of the centre may sign its cases."))
    case = selectors.case_load(patient)
    meaning = signatures.meaning_text(patient.centre_id)
    form = SignForm(request.POST or None, needs_code=signatures.needs_code(request.user))
    if request.method == "POST" and form.is_valid():
        signature = _sign(request, form, lambda **given: signatures.case_sign(patient=patient, meaning=meaning,
                                                                               **given),
                          patient_id=patient.pk)
        if signature is not None:
            messages.success(request, _("You signed the case of %(id)s.") % {"id": patient.pk})
            return redirect(pages.patient_url(patient, "signatures"))
    audit.log_read(request, patient_ids=[patient.pk])  # the page shows the case's values
    return render(request, "registry/sign_patient.html", {
        "patient": patient, "form": form, "meaning": meaning, "pending": signatures.unfinished(case),
        "records": [(record, rules.describe(record), presentation.details(record)) for record in case.records()],
        "states": signatures.signature_states(case, explain=1),
    }, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def centre_sign(request, code):
    """Sign every complete case of a centre that no valid signature covers, with one password."""
    centre = pages.readable_centre(request, code)
    if not access.can_sign(request.user, centre.code):
        raise PermissionDenied(_("Only a principal investigator of the centre may sign its cases."))
    meaning = signatures.meaning_text(centre.code)
    form = SignForm(request.POST or None, needs_code=signatures.needs_code(request.user))
    if request.method == "POST" and form.is_valid():
        done = _sign(request, form, lambda **given: signatures.centre_sign(centre=centre, meaning=meaning, **given),
                     centre=centre.code)
        if done is not None:
            messages.success(request, ngettext("You signed %(n)s case.", "You signed %(n)s cases.", len(done.signed))
                             % {"n": len(done.signed)})
            return redirect("centre_sign", centre.code)
    plan = signatures.centre_plan(centre.code)
    listed = [case.patient.pk for case in plan.signed] + plan.already_signed + [pid for pid, _r in plan.not_complete]
    if listed:
        audit.log_read(request, patient_ids=listed)
    return render(request, "registry/sign_centre.html", {
        "centre": centre, "form": form, "meaning": meaning, "plan": plan,
    }, status=400 if form.errors else 200)


def panel(user, patient, case):
    """What the patient page shows of the case's signatures: each with its validity (newest first),
    and whether the user may sign the case now."""
    states = signatures.signature_states(case, explain=1)  # the older ones show valid or not
    may_sign = access.can_sign(user, patient.centre_id)
    return {
        "latest": states[0] if states else None,
        "older": states[1:],
        "may_sign": may_sign,
        "ready": not signatures.unfinished(case),
        "sign_url": reverse("patient_sign", args=[patient.pk]) if may_sign else "",
    }
