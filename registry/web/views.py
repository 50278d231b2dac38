"""The data-entry web application: thin views over registry.access (reads), registry.services
(writes) and registry.web.quality (completeness).

A user who may not read a patient or centre gets 404 (its existence is not revealed); a user who
may read but not write (a PI) gets 403 on every form, GET or POST. Every page that shows
patient-level data records the read (registry.security.audit), and a lookup of another centre's
patient records the refusal.
"""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from registry import access, codes, rules, selectors, services
from registry.index_date import index_operation
from registry.models import CLINICAL_MODELS, FollowUp, Metastasectomy, Patient, PrimaryTumour, SystemicTherapy
from registry.security import audit
from registry.services import StaleRecordError
from registry.services.status import REASON_MAX_LENGTH
from registry.web import deleted, quality, signatures, status_grid, verification
from registry.web import queries as query_pages
from registry.web.filters import PatientFilterForm
from registry.web.forms import RECORD_FORMS, PatientForm
from registry.web.presentation import (
    COLUMNS,
    TABLE_COLUMNS,
    cells,
    details,
    headers,
    history_entries,
    label,
    months_between,
    shown,
    shown_in,
)

PAGE_SIZE = 25


# --- lookups that enforce access -------------------------------------------------------------

def readable_patient(request, patient_id, *, write=False):
    patients = quality.with_completeness(access.patients_readable(request.user)).select_related("centre")
    patient = patients.filter(pk=patient_id).first()
    if patient is None:
        audit.log_if_hidden(request, Patient, patient_id)
        raise Http404
    if write and not access.can_write_centre(request.user, patient.centre_id):
        raise PermissionDenied(_("You may read but not change patients of this centre."))
    return patient


def readable_centre(request, code, *, write=False):
    centre = get_object_or_404(access.centres_readable(request.user), code=code)
    if write and not access.can_write_centre(request.user, centre.code):
        raise PermissionDenied(_("You may read but not change patients of this centre."))
    return centre


def record_form_class(kind):
    if kind not in RECORD_FORMS:
        raise Http404
    return RECORD_FORMS[kind]


def patient_record(request, patient, kind, pk):
    model = record_form_class(kind)._meta.model
    return get_object_or_404(access.records_readable(request.user, model), pk=pk, patient=patient)


def patient_url(patient, section=""):
    return reverse("patient_detail", args=[patient.pk]) + (f"#{section}" if section else "")


def fix_url(patient, gap):
    """Where a gap is fixed: the form that fills it."""
    if gap.section == "patient":
        return reverse("patient_edit", args=[patient.pk])
    if gap.section == "primary-tumour" and patient.primary_tumour_pk:
        return reverse("record_edit", args=[patient.pk, gap.section, patient.primary_tumour_pk])
    return reverse("record_add", args=[patient.pk, gap.section])


def gaps_with_links(patient):
    return [(gap, fix_url(patient, gap)) for gap in quality.gaps(patient)]


# --- pages -----------------------------------------------------------------------------------

@login_required
@require_GET
def home(request):
    """A principal investigator goes to the survival dashboard; a user of one centre straight to its
    patients; others choose a centre."""
    if access.is_pi(request.user) and not access.writable_centre_codes(request.user):
        return redirect("analysis:dashboard")
    centres = list(access.centres_readable(request.user))
    if len(centres) == 1:
        return redirect(reverse("patient_list") + f"?centre={centres[0].code}")
    return render(request, "registry/home.html", {"centres": centre_summaries(request.user, centres),
                                                  "status_counts": status_counts(request.user),
                                                  "signing_centres": access.signing_centre_codes(request.user)})


def centre_summaries(user, centres):
    """(centre, patients, incomplete, may write) for each centre: two grouped queries."""
    readable = access.patients_readable(user)
    totals = dict(readable.values_list("centre").annotate(n=Count("pk")).order_by())
    incomplete = dict(quality.incomplete(readable).values_list("centre").annotate(n=Count("pk")).order_by())
    return [(centre, totals.get(centre.code, 0), incomplete.get(centre.code, 0),
             access.can_write_centre(user, centre.code)) for centre in centres]


@login_required
@require_GET
def patient_list(request):
    centres = list(access.centres_readable(request.user))
    if request.GET.get("centre") and request.GET["centre"] not in {c.code for c in centres}:
        raise Http404  # another centre's list: do not even say whether it exists
    form = PatientFilterForm(request.GET or None, centres=centres)
    patients = quality.with_completeness(access.patients_readable(request.user)).select_related("centre")
    if form.is_valid():
        patients = form.apply(patients)
    else:
        patients = patients.order_by("patient_id")
    page = Paginator(patients, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [(patient, quality.gaps(patient)) for patient in status_grid.form_statuses(list(page))]
    audit.log_read(request, patient_ids=[patient.pk for patient, _gaps in rows])
    chosen = form.cleaned_data.get("centre") if form.is_bound and form.is_valid() else ""
    summaries = centre_summaries(request.user, centres)
    new_patient_centres = [centre for centre, _n, _i, writable in summaries
                           if writable and (not chosen or centre.code == chosen)]
    return render(request, "registry/patient_list.html", {
        "form": form, "page": page, "rows": rows, "summaries": summaries,
        "status_counts": status_counts(request.user),
        "new_patient_centres": new_patient_centres, "sort": request.GET.get("sort", ""),
        "signing_centres": access.signing_centre_codes(request.user),
    })


def status_counts(user):
    """{centre code: [(status, label, records)]}: the records of every clinical table by their
    data-management status (one query: the tables' grouped counts in a UNION ALL)."""
    grouped = [(access.patients_readable(user) if model is Patient else access.records_readable(user, model))
               .values_list("centre" if model is Patient else "patient__centre", "status")
               .annotate(n=Count("pk")).order_by() for model in CLINICAL_MODELS]
    counts = {}
    for code, status, n in grouped[0].union(*grouped[1:], all=True):
        counts.setdefault(code, {}).setdefault(status, 0)
        counts[code][status] += n
    return {code: [(status, label, by_status.get(status, 0)) for status, label in codes.RECORD_STATUS]
            for code, by_status in counts.items()}


@login_required
@require_http_methods(["GET", "POST"])
def patient_new(request, code):
    centre = readable_centre(request, code, write=True)
    form = PatientForm(request.POST or None, instance=Patient(centre=centre))
    if request.method == "POST" and form.is_valid():
        values = {name: form.cleaned_data[name] for name in PatientForm.Meta.fields}
        values["missing_codes"] = form.instance.missing_codes  # set by the form with its codes
        try:
            patient = services.patient_create(source="web", user=request.user, centre=centre,
                                              idempotency_key=form.cleaned_data.get("submission"), **values)
        except ValidationError as error:
            form.add_service_error(error)
        else:
            messages.success(request, _("Patient %(id)s created.") % {"id": patient.pk})
            return redirect(patient_url(patient))
    return render(request, "registry/record_form.html", {
        "form": form, "centre": centre, "title": _("New patient at %(centre)s") % {"centre": centre.name},
        "cancel_url": reverse("patient_list") + f"?centre={centre.code}",
    })


@login_required
@require_GET
def patient_detail(request, patient_id):
    patient = readable_patient(request, patient_id)
    case = selectors.case_load(patient)  # each list in date order (the models' ordering)
    primary, operations, therapies, events = (case.primary_tumour, case.metastasectomies, case.systemic_therapies,
                                              case.follow_ups)
    index = index_operation(operations)
    index_date = index.surgery_date if index else None
    audit.log_read(request, patient_ids=[patient.pk])
    can_write = access.can_write_centre(request.user, patient.centre_id)
    records = [patient, *list(case.records())[1:]]
    statuses = {(type(record), record.pk): record_status_info(request.user, patient, record, can_write=can_write)
                for record in records}
    verification.add_field_progress(request.user, patient, records, statuses)
    query_pages.attach_to_statuses(request.user, patient, statuses)  # each record's pending queries
    return render(request, "registry/patient_detail.html", {
        "patient": patient,
        "statuses": statuses,
        "patient_status": statuses[(Patient, patient.pk)],
        "primary_status": statuses.get((PrimaryTumour, primary.pk)) if primary else None,
        "patient_details": details(patient),
        "can_write": can_write,
        # a locked patient takes no new record, and a locked record offers no edit or delete
        "can_change_case": statuses[(Patient, patient.pk)]["writable"],
        "primary_writable": statuses[(PrimaryTumour, primary.pk)]["writable"] if primary else can_write,
        "gaps": gaps_with_links(patient),
        "primary": primary,
        "primary_details": details(primary) if primary else [],
        "operation_headers": headers(Metastasectomy, TABLE_COLUMNS[Metastasectomy]),
        "operations": [(pm, cells(pm, TABLE_COLUMNS[Metastasectomy]), pm is index, statuses[(Metastasectomy, pm.pk)])
                       for pm in operations],
        "therapy_headers": headers(SystemicTherapy),
        "therapies": [(therapy, therapy_cells(therapy), statuses[(SystemicTherapy, therapy.pk)])
                      for therapy in therapies],
        "timeline": timeline(events, operations, therapies, index, index_date, statuses),
        "has_follow_up": bool(events),
        "index_date": index_date,
        "signing": signatures.panel(request.user, patient, case),
    })


# The button that moves a record to a status, by (from, to).
STATUS_ACTIONS = {
    ("in_progress", "complete"): gettext_lazy("Mark complete"),
    ("complete", "in_progress"): gettext_lazy("Reopen"),
    ("complete", "verified"): gettext_lazy("Verify"),
    ("verified", "complete"): gettext_lazy("Send back"),
    ("verified", "locked"): gettext_lazy("Lock"),
    ("locked", "verified"): gettext_lazy("Unlock"),
}
STATUS_KINDS = {Patient: "patient", **{form._meta.model: kind for kind, form in RECORD_FORMS.items()}}


def record_status_info(user, patient, record, *, can_write):
    """What the patient page shows of a record's status: its code and label, the moves the user
    may make (none while the patient is locked, for its other records) and whether the record may
    be changed (not while it or its patient is locked)."""
    centre = patient.centre_id
    locked = "locked" in (record.status, patient.status)
    moves = [] if record is not patient and patient.status == "locked" else \
        sorted(access.status_moves(user, centre, record.status), key=codes.values(codes.RECORD_STATUS).index)
    return {
        "code": record.status, "label": record.get_status_display(),
        "kind": STATUS_KINDS[type(record)], "pk": record.pk,
        "moves": [(status, STATUS_ACTIONS[(record.status, status)]) for status in moves],
        "reason_required": record.status == "locked",
        "writable": can_write and not locked,
    }


@login_required
@require_POST
def record_status(request, patient_id):
    """Move one record of the patient to another status (services.record_status_set decides)."""
    patient = readable_patient(request, patient_id)
    kind, pk = request.POST.get("kind", ""), request.POST.get("pk", "")
    if kind == "patient":
        record, section = Patient.objects.get(pk=patient.pk), "patient"
    elif pk.isdecimal() and int(pk) < 2**63:
        record, section = patient_record(request, patient, kind, pk), kind
    else:
        raise Http404
    try:
        record = services.record_status_set(user=request.user, record=record, status=request.POST.get("status", ""),
                                            reason=request.POST.get("reason"), source="web")
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, capfirst(_("%(record)s is now %(status)s.") % {
            "record": rules.describe(record), "status": record.get_status_display()}))
    return redirect(patient_url(patient, section))


def therapy_cells(therapy):
    row = cells(therapy)
    if therapy.regimen == "other" and therapy.regimen_other:
        row[COLUMNS[SystemicTherapy].index("regimen")] = therapy.regimen_other
    return row


def timeline(events, operations, therapies, index, index_date, statuses):
    """The case in date order after the index operation: follow-up events (with their status and
    actions), later operations and systemic therapies (shown in their own panels, marked here)."""
    entries = [{**timeline_entry(event, index_date), "kind": "follow-up", "date": event.event_date,
                "status": statuses[(FollowUp, event.pk)]} for event in events]
    entries += [{"kind": "operation", "date": pm.surgery_date, "event": _("Metastasectomy"),
                 "detail": shown(Metastasectomy, "side", pm.side),
                 "months": months_between(index_date, pm.surgery_date) if index_date else None}
                for pm in operations if pm is not index]
    entries += [{"kind": "therapy", "date": therapy.start_date, "event": _("Systemic therapy started"),
                 "detail": shown(SystemicTherapy, "regimen", therapy.regimen),
                 "months": months_between(index_date, therapy.start_date) if index_date else None}
                for therapy in therapies if index_date is None or therapy.start_date >= index_date]
    return sorted(entries, key=lambda entry: entry["date"])


def timeline_entry(event, index_date):
    detail = ""
    if event.event == "recurrence":  # its site, or why there is none ("Unknown")
        detail = shown_in(FollowUp, event, "recurrence_site")
    elif event.event == "death" and (event.cause_of_death or event.missing_code("cause_of_death")):
        detail = shown_in(FollowUp, event, "cause_of_death")
    return {
        "record": event,
        "event": shown(FollowUp, "event", event.event),
        "detail": detail,
        "months": months_between(index_date, event.event_date) if index_date else None,
    }


@login_required
@require_http_methods(["GET", "POST"])
def patient_edit(request, patient_id):
    patient = readable_patient(request, patient_id, write=True)
    stored = Patient.objects.get(pk=patient.pk)  # a plain instance: the form must not see annotations
    return edit_record(request, patient, stored, PatientForm, title=_("Edit patient %(id)s") % {"id": patient.pk})


@login_required
@require_http_methods(["GET", "POST"])
def patient_delete(request, patient_id):
    patient = readable_patient(request, patient_id, write=True)
    stored = Patient.objects.get(pk=patient.pk)
    return delete_record(request, patient, stored, done_url=reverse("patient_list"),
                         warning=_("This deletes the patient with every record of the case."))


@login_required
@require_http_methods(["GET", "POST"])
def record_add(request, patient_id, kind):
    form_class = record_form_class(kind)
    patient = readable_patient(request, patient_id, write=True)
    model = form_class._meta.model
    if model is PrimaryTumour and patient.primary_tumour_pk:  # exactly one per patient
        return redirect("record_edit", patient.pk, kind, patient.primary_tumour_pk)
    form = form_class(request.POST or None, instance=model(patient=patient))
    if request.method == "POST" and form.is_valid() and save(request, form) is None:
        messages.success(request, _("%(record)s saved.") % {"record": capfirst(model._meta.verbose_name)})
        if request.POST.get("then") == "add" and model is not PrimaryTumour:  # "Save and add another"
            return redirect("record_add", patient.pk, kind)
        return redirect(patient_url(patient, kind))
    return render(request, "registry/record_form.html", {
        "form": form, "patient": patient,
        "title": capfirst(_("Add %(record)s") % {"record": model._meta.verbose_name}),
        "cancel_url": patient_url(patient, kind), "add_another": model is not PrimaryTumour,
    })


@login_required
@require_http_methods(["GET", "POST"])
def record_edit(request, patient_id, kind, pk):
    form_class = record_form_class(kind)
    patient = readable_patient(request, patient_id, write=True)
    record = patient_record(request, patient, kind, pk)
    title = capfirst(_("Edit %(record)s") % {"record": rules.describe(record)})
    return edit_record(request, patient, record, form_class, title=title, section=kind)


@login_required
@require_http_methods(["GET", "POST"])
def record_delete(request, patient_id, kind, pk):
    record_form_class(kind)
    patient = readable_patient(request, patient_id, write=True)
    record = patient_record(request, patient, kind, pk)
    return delete_record(request, patient, record, done_url=patient_url(patient, kind))


def save(request, form, query=None):
    """Save through the services; None on success, else the StaleRecordError (errors go on the form).
    With a `query`, the save answers it (registry.web.queries)."""
    try:
        if query is not None:
            query_pages.answer_by_edit(request, form, query)
        else:
            services.record_save(source="web", user=request.user, record=form.instance,
                                 expected_version=form.cleaned_data.get("version"),
                                 idempotency_key=form.cleaned_data.get("submission"),
                                 reason=form.cleaned_data.get("reason"))
    except ValidationError as error:
        form.add_service_error(error)
        return error
    except StaleRecordError as stale:
        return stale
    return None


def edit_record(request, patient, record, form_class, *, title, section=""):
    if request.method == "GET":  # the form shows the record's values
        audit.log_read(request, patient_ids=[patient.pk])
    query = query_pages.query_to_answer(request, record)  # ?query=: the save answers it
    form = form_class(request.POST or None, instance=record)
    if query and "reason" in form.fields:  # the change's reason in the history names the query
        form.fields["reason"].initial = _("Answer to query %(query)s") % {"query": query.pk}
    changes, stale = [], False
    if request.method == "POST" and form.is_valid():
        outcome = save(request, form, query)
        if outcome is None and query:
            messages.success(request, _("%(record)s saved: query %(query)s is answered.") % {
                "record": capfirst(type(record)._meta.verbose_name), "query": query.pk})
            return redirect("query_detail", query.pk)
        if outcome is None:
            messages.success(request, _("%(record)s saved.") % {"record": capfirst(type(record)._meta.verbose_name)})
            return redirect(patient_url(patient, section))
        if isinstance(outcome, StaleRecordError):
            stale = saved_by(outcome.current)
            form, changes = merged_form(request, form, form_class, outcome.current)
    return render(request, "registry/record_form.html", {
        "form": form, "patient": patient, "title": title, "changes": changes,
        "stale": stale, "query": query_pages.summary(query) if query else None,
        "cancel_url": patient_url(patient, section),
    })


def merged_form(request, form, form_class, current):
    """After a refused stale save, the form to save again against the current version: a field the
    nurse did not change takes the other person's value, a field she changed keeps hers (also where
    both changed it: she sees both and decides). Returns (form, [(field, theirs, yours, kept)]), where
    `kept` says which value the form now holds for each field the other person changed."""
    model = type(current)
    base = current.history.filter(version=form.cleaned_data["version"]).first()  # what she opened
    theirs_form = form_class(instance=current)
    data, changes = request.POST.copy(), []
    for name, field in form.fields.items():
        try:
            attname = model._meta.get_field(name).attname
        except FieldDoesNotExist:  # version, submission, reason: not the record's values
            continue
        theirs, yours = getattr(current, attname), form.cleaned_data.get(name)
        opened = getattr(base, attname) if base is not None else theirs
        if theirs == opened:
            continue  # only she may have changed it: her entry stands
        value = field.prepare_value(theirs_form[name].value())
        theirs_entry = "" if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)
        if yours == opened:  # only they changed it: take theirs
            data[name] = theirs_entry
        # (label, theirs, yours, which the form holds, and for the page's "use theirs / keep mine"
        # buttons the field's name with both entries as the form takes them)
        changes.append((label(model, name), shown(model, name, theirs), shown(model, name, yours),
                        _("theirs") if yours == opened else _("yours"), name, theirs_entry,
                        request.POST.get(name, "")))
    data["version"] = str(current.version)
    return form_class(data, instance=current), changes


def saved_by(current):
    """(user name, when) of the last save of `current`, for the stale-save message."""
    last = current.history.order_by("-history_date").first()
    return {"user": getattr(last.history_user, "username", _("the system")), "at": last.history_date}


def delete_record(request, patient, record, *, done_url, warning=""):
    if request.method == "GET":  # the confirmation shows the record's values
        audit.log_read(request, patient_ids=[patient.pk])
    errors = []
    if request.method == "POST":
        version = request.POST.get("version")
        try:
            services.record_delete(source="web", user=request.user, record=record, reason=request.POST.get("reason"),
                                   expected_version=int(version) if version and version.isdecimal() else None)
        except ValidationError as error:
            errors = error.messages
        except StaleRecordError as stale:
            record = stale.current
            errors = [_("This record was changed by someone else meanwhile. Review it before deleting.")]
        else:
            messages.success(request, capfirst(_("%(record)s deleted.") % {"record": rules.describe(record)}))
            return redirect(done_url)
    return render(request, "registry/confirm_delete.html", {
        "patient": patient, "record": record, "description": rules.describe(record),
        "details": details(record), "errors": errors, "warning": warning,
        "reason": request.POST.get("reason", ""), "reason_max_length": REASON_MAX_LENGTH,
        "cancel_url": patient_url(patient),
    }, status=400 if errors else 200)


@login_required
@require_GET
def patient_history(request, patient_id):
    if not Patient.objects.filter(pk=patient_id).exists():  # deleted: its history stays readable
        return deleted.deleted_patient_history(request, patient_id)
    patient = readable_patient(request, patient_id)
    audit.log_read(request, patient_ids=[patient.pk])
    return render(request, "registry/patient_history.html", {
        "patient": patient, "patient_id": patient.pk, "entries": history_entries(patient.pk),
    })


@login_required
@require_GET
def data_quality(request, code):
    """The centre's incomplete patients, PAGE_SIZE a page; ?gap=CODE shows those with that gap.
    The counts of each gap are over every incomplete patient, and each is a link to its filter."""
    centre = readable_centre(request, code)
    patients = quality.incomplete(access.patients_readable(request.user).filter(centre=centre))
    rows = [(patient, gaps_with_links(patient)) for patient in patients.order_by("patient_id")]
    chosen = request.GET.get("gap", "")
    shown = [row for row in rows if any(gap.code == chosen for gap, _url in row[1])] if chosen else rows
    page = Paginator(shown, PAGE_SIZE).get_page(request.GET.get("page"))
    audit.log_read(request, patient_ids=[patient.pk for patient, _gaps in page.object_list])
    total = access.patients_readable(request.user).filter(centre=centre).count()
    return render(request, "registry/data_quality.html", {
        "centre": centre, "rows": rows, "page": page, "total": total, "chosen": chosen,
        "can_write": access.can_write_centre(request.user, centre.code),
        "counts": gap_counts(rows),
    })


def gap_counts(rows):
    counts = {gap.code: 0 for gap in quality.GAPS}
    for _patient, gaps in rows:
        for gap, _url in gaps:
            counts[gap.code] += 1
    return [(gap, counts[gap.code]) for gap in quality.GAPS if counts[gap.code]]
