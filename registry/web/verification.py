"""Source data verification, field by field, on the web (registry.services.verification): a page
per record where a monitor (or a coordinator) ticks the fields checked against the source
documents, and the progress the patient page shows beside each record's status.

The page is a form: 404 for another centre's patient, 403 for everyone who may not verify the
centre's records (a nurse, a PI).
"""
import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods

from registry import access, rules
from registry.models import Patient
from registry.security import audit
from registry.services import StaleRecordError
from registry.services import verification as sdv
from registry.services.status import COMPLETE, LOCKED, VERIFIED
from registry.web import presentation
from registry.web import views as pages


def verify_url(patient, kind, record):
    if kind == "patient":
        return reverse("patient_verify", args=[patient.pk])
    return reverse("record_verify", args=[patient.pk, kind, record.pk])


def add_field_progress(user, patient, records, statuses):
    """Adds to each record's status on the patient page its verified fields ("fields": (verified,
    of)), shown once one is verified or to whoever verifies, and the link to verify them
    ("verify_url") for a verifier (one query)."""
    may_verify = access.can_verify_fields(user, patient.centre_id)
    newest = sdv.verifications_of(patient.pk)
    for record in records:
        status = statuses[(type(record), record.pk)]
        verified, total = sdv.progress(record, newest)
        status["fields"] = (verified, total) if verified or may_verify else None
        status["verify_url"] = verify_url(patient, status["kind"], record) if may_verify else ""


def field_rows(record, states):
    """(state, label, value as shown, value verified as shown) of each field, for the page."""
    model = type(record)
    rows = []
    for state in states:
        attname = model._meta.get_field(state.name).attname
        then = None
        if state.changed_since:
            then = presentation.shown(model, state.name, json.loads(state.verification.value))
        rows.append((state, presentation.label(model, state.name),
                     presentation.shown(model, state.name, getattr(record, attname)), then))
    return rows


@login_required
@require_http_methods(["GET", "POST"])
def record_verify(request, patient_id, kind="patient", pk=None):
    """Tick the fields of one record checked against the source documents."""
    patient = pages.readable_patient(request, patient_id)
    if not access.can_verify_fields(request.user, patient.centre_id):
        raise PermissionDenied(_("Only a monitor of the centre or a coordinator verifies its records."))
    if kind == "patient" and pk is None:
        record, section = Patient.objects.get(pk=patient.pk), "patient"
    else:
        record, section = pages.patient_record(request, patient, kind, pk), kind
    errors = []
    if request.method == "POST":
        version = request.POST.get("version", "")
        try:
            record, written = sdv.fields_verify(
                user=request.user, record=record, fields=request.POST.getlist("fields"), source="web",
                expected_version=int(version) if version.isdecimal() else None)
        except ValidationError as error:
            errors = error.messages
        except StaleRecordError as stale:
            record = stale.current
            errors = [_("This record was changed meanwhile. Check its values again before you verify them.")]
        else:
            message = ngettext("%(n)s field verified.", "%(n)s fields verified.", len(written)) % {"n": len(written)}
            if record.status == VERIFIED:
                message += " " + _("%(record)s is verified.") % {"record": rules.describe(record)}
            messages.success(request, message)
            return redirect(pages.patient_url(patient, section))
    audit.log_read(request, patient_ids=[patient.pk])  # the page shows the record's values
    states = sdv.field_states(record)
    locked = LOCKED in (record.status, patient.status)
    return render(request, "registry/field_verification.html", {
        "patient": patient, "record": record, "description": rules.describe(record),
        "rows": field_rows(record, states), "errors": errors,
        "open": record.status in (COMPLETE, VERIFIED) and not locked, "locked": locked,
        "all_verified": all(state.verified for state in states),
        "cancel_url": pages.patient_url(patient, section),
    }, status=400 if errors else 200)
