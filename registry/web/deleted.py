"""Deleted records: the tombstones a user may read, the history of a deleted patient, and a
coordinator's restore.

A deletion stays readable to the people who could read the record (registry.access): coordinators
every centre's, the nurses, PIs and monitors of a centre their own; another centre's deletions
are not shown, and their pages answer 404 as a living patient's would. Putting a record back goes
through registry.services.record_restore, which checks the rules again.
"""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from registry import access, rules, services
from registry.cases import records_from_values
from registry.models import DeletedRecord, Patient
from registry.security import audit
from registry.services.status import REASON_MAX_LENGTH
from registry.web.presentation import details, history_entries, source_and_reason

PAGE_SIZE = 25
STATES = ("deleted", "restored")  # ?state=: still deleted, or restored since


def deleted_row(tombstone):
    """What the page shows of one tombstone: the record in words, its last values, how many records of
    the case went with a patient, and the restoration if there was one."""
    records = records_from_values(tombstone.values)
    return {
        "tombstone": tombstone,
        "description": rules.describe(records[0]),
        "details": details(records[0]),
        "with_records": len(records) - 1,
        "restoration": tombstone.restoration_or_none,
    }


@login_required
@require_GET
def deleted_records(request):
    """The deletions the user may read, newest first; ?centre=, ?patient= and ?state= narrow them."""
    centres = list(access.centres_readable(request.user))
    chosen = request.GET.get("centre", "")
    if chosen and chosen not in {centre.code for centre in centres}:
        raise Http404  # another centre's list: not even whether it exists
    tombstones = access.deleted_records_readable(request.user).select_related("restoration")
    if chosen:
        tombstones = tombstones.filter(centre=chosen)
    if patient_id := request.GET.get("patient", "").strip():
        tombstones = tombstones.filter(patient_id=patient_id)
    state = request.GET.get("state", "")
    if state in STATES:
        tombstones = tombstones.filter(restoration__isnull=state == "deleted")
    page = Paginator(tombstones, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [deleted_row(tombstone) for tombstone in page]
    audit.log_read(request, patient_ids=[row["tombstone"].patient_id for row in rows])
    return render(request, "registry/deleted_records.html", {
        "centres": centres, "chosen": chosen, "patient_id": patient_id, "state": state, "page": page, "rows": rows,
        "can_restore": access.can_restore(request.user), "reason_max_length": REASON_MAX_LENGTH,
    })


@login_required
@require_POST
def deleted_record_restore(request, pk):
    """Put a deleted record back (a coordinator, giving a reason); then its patient's page shows it."""
    tombstone = access.deleted_records_readable(request.user).filter(pk=pk).first()
    if tombstone is None:
        hidden = DeletedRecord.objects.filter(pk=pk).values_list("patient_id", flat=True).first()
        if hidden is not None:  # another centre's deletion
            audit.log_refused(request, 404, patient_id=hidden)
        raise Http404
    if not access.can_restore(request.user):
        raise PermissionDenied(_("Only a coordinator may restore a deleted record."))
    try:
        record = services.record_restore(user=request.user, deleted_record=tombstone,
                                         reason=request.POST.get("reason"), source="web")
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect(reverse("deleted_records") + f"?patient={tombstone.patient_id}")
    messages.success(request, capfirst(_("%(record)s restored.") % {"record": rules.describe(record)}))
    return redirect("patient_detail", record.patient_id)


def deleted_patient_history(request, patient_id):
    """The history of a patient no longer stored (registry.web.views.patient_history sends it here):
    read from the audit trail, to whoever may read the patient's centre; 404 otherwise, as for a
    living patient. The deletion heads the page: when, by whom and why."""
    history = Patient.history.filter(patient_id=patient_id).select_related("history_user")
    last = history.order_by("-history_date", "-history_id").first()
    if last is None:
        raise Http404
    if not access.can_read_centre(request.user, last.centre_id):
        audit.log_refused(request, 404, patient_id=patient_id)
        raise Http404
    audit.log_read(request, patient_ids=[patient_id])
    deletion = {
        "date": last.history_date,
        "user": last.history_user.get_username() if last.history_user else _("system"),
        "reason": source_and_reason(last.history_change_reason)[1],
        "tombstone": access.deleted_records_readable(request.user).filter(
            table="patients", record_pk=patient_id, restoration__isnull=True).first(),
    }
    return render(request, "registry/patient_history.html", {
        "patient": None, "patient_id": patient_id, "deletion": deletion, "entries": history_entries(patient_id),
    })
