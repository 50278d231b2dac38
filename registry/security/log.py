"""The security log: sign-ins, sign-outs, failed sign-ins, two-factor events, reads of patient
data, refused requests, imports and exports in one list, newest first, for one user name or all.
Coordinators only. The rows come from django-axes (AccessLog, AccessFailureLog) and from the
registry's own SecurityEvent, ImportRun and ExportLog; the whole audit trail, clinical changes
included, is downloaded from the audit export (registry.security.export)."""
from dataclasses import dataclass
from datetime import datetime

from axes.models import AccessFailureLog, AccessLog
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from registry import access
from registry.models import ExportLog, ImportRun, SecurityEvent

SHOWN = 500  # newest rows on the page


@dataclass
class Entry:
    at: datetime
    username: str
    event: str
    detail: str = ""
    alert: bool = False


def _newest(queryset, field, username):
    if username:
        queryset = queryset.filter(username=username)
    return queryset.order_by(f"-{field}")[:SHOWN]


def entries(username=""):
    """The newest SHOWN entries of every kind, merged and sorted newest first."""
    rows = []
    for log in _newest(AccessLog.objects.all(), "attempt_time", username):
        rows.append(Entry(log.attempt_time, log.username, _("signed in"), log.ip_address or ""))
        if log.logout_time:
            rows.append(Entry(log.logout_time, log.username, _("signed out"), log.ip_address or ""))
    for failure in _newest(AccessFailureLog.objects.all(), "attempt_time", username):
        event = _("failed sign-in, account locked") if failure.locked_out else _("failed sign-in")
        rows.append(Entry(failure.attempt_time, failure.username, event, failure.ip_address or "", alert=True))
    for event in _newest(SecurityEvent.objects.all(), "at", username):
        rows.append(Entry(event.at, event.username, event.get_event_display(), event_detail(event),
                          alert=event.event in SecurityEvent.ALERTS))
    for export in _newest(ExportLog.objects.all(), "created_at", username):
        detail = f"{export.scope or _('pooled')}, {export.file_format}, {export.deidentify}"
        rows.append(Entry(export.created_at, export.username, _("exported the dataset"), detail))
    for run in _newest(ImportRun.objects.all(), "finished_at", username):
        rows.append(Entry(run.finished_at, run.username, _("imported a file"), run.file_name))
    rows.sort(key=lambda entry: entry.at, reverse=True)
    return rows[:SHOWN]


def event_detail(event):
    """What a SecurityEvent concerns, in one line: page or endpoint, status, scope, rows, detail, address."""
    scope = event.patient_id or ("" if not event.centres else _("every centre") if event.centres == "*"
                                 else event.centres)
    parts = [
        event.what,
        str(event.status) if event.status else "",
        scope,
        _("%(rows)s rows") % {"rows": event.rows} if event.rows is not None else "",
        event.detail,
        event.ip_address or "",
    ]
    return ", ".join(part for part in parts if part)


@login_required
@require_GET
def security_log(request):
    if not access.is_coordinator(request.user):
        raise PermissionDenied(_("Only coordinators may read the security log."))
    username = request.GET.get("user", "").strip()
    return render(request, "registry/security_log.html",
                  {"entries": entries(username), "username": username, "shown": SHOWN})
