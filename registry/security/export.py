"""The audit export (/security/audit/, coordinators only): the audit trail (registry.security.trail)
as CSV or JSON, filtered by patient, user name and dates, streamed as it is read and cut at
settings.AUDIT_EXPORT_MAX_ROWS rows. The download is itself a read of patient data, recorded with
the number of rows sent, also when the download stops early."""
import datetime

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from registry import access
from registry.models import PATIENT_ID_PATTERN
from registry.security import audit
from registry.security.trail import TrailFilter, csv_pieces, json_pieces

FORMATS = {"csv": ("text/csv; charset=utf-8", csv_pieces), "json": ("application/json", json_pieces)}


class AuditExportForm(forms.Form):
    patient_id = forms.RegexField(PATIENT_ID_PATTERN, required=False, label=gettext_lazy("Patient (pseudonym)"),
                                  error_messages={"invalid": gettext_lazy("A patient ID looks like MUC-7K3QZ9.")})
    user = forms.CharField(required=False, max_length=150, label=gettext_lazy("User name"))
    since = forms.DateField(required=False, label=gettext_lazy("From (date)"))
    until = forms.DateField(required=False, label=gettext_lazy("To (date, inclusive)"))
    format = forms.ChoiceField(choices=[("csv", "CSV"), ("json", "JSON")], initial="csv",
                               label=gettext_lazy("Format"))

    def clean_patient_id(self):
        return self.cleaned_data["patient_id"].strip().upper()

    def trail_filter(self):
        data = self.cleaned_data
        return TrailFilter(patient_id=data["patient_id"], username=data["user"].strip(),
                           since=start_of(data["since"]),
                           until=start_of(data["until"] + datetime.timedelta(days=1) if data["until"] else None))


def start_of(day):
    """Midnight at the start of a day, in the registry's time zone (None for None)."""
    if day is None:
        return None
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time()))


def export_filename(filters, fmt):
    parts = ["audit", filters.patient_id, timezone.localtime().strftime("%Y%m%d-%H%M")]
    return "-".join(part for part in parts if part) + f".{fmt}"


def recorded_stream(filters, pieces, *, request=None, what="", limit=None):
    """The export's pieces; when it ends (or the client goes away), its read is recorded with the
    rows sent, as a read of the request's user (or, for a command, `what` run by the system)."""
    sent = [0]
    try:
        yield from pieces(filters, limit or settings.AUDIT_EXPORT_MAX_ROWS, sent)
    finally:
        audit.log_read(request, centres=[audit.centre_of(filters.patient_id)] if filters.patient_id else None,
                       patient=filters.patient_id, rows=sent[0], what=what)


@login_required
@require_GET
def audit_export(request):
    if not access.is_coordinator(request.user):
        raise PermissionDenied(_("Only coordinators may export the audit trail."))
    form = AuditExportForm(request.GET if "format" in request.GET else None)
    if not form.is_bound or not form.is_valid():
        return render(request, "registry/audit_export.html", {"form": form}, status=400 if form.is_bound else 200)
    filters, fmt = form.trail_filter(), form.cleaned_data["format"]
    content_type, pieces = FORMATS[fmt]
    response = StreamingHttpResponse(recorded_stream(filters, pieces, request=request), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{export_filename(filters, fmt)}"'
    return response
