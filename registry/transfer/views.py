"""Web pages to upload a centre's spreadsheet and to download the dataset export.

Thin views over registry.transfer.jobs: an upload or an export request becomes a job on the queue,
and the browser is sent to the job's page, which shows its progress and outcome.
Import: nurses (their centres) and coordinators (every centre); the file's rows decide which
centres are written, and registry.transfer.importing refuses rows of centres the user may not write.
Export: coordinators (any centre or pooled), and PIs their own centres when settings.EXPORT_ALLOW_PI
is on (access.can_export); anyone else gets 403.
"""
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from registry import access
from registry.dictionary import TABLES
from registry.models import Job
from registry.transfer import jobs
from registry.transfer.exporting import DEIDENTIFY, FORMATS
from registry.transfer.forms import ImportForm, export_form


def _require_import(user):
    if not access.can_import(user):
        raise PermissionDenied(_("You may not import data."))


def _require_export(user):
    if not access.can_export(user):
        raise PermissionDenied(_("You may not export the dataset."))


@login_required
@require_http_methods(["GET", "POST"])
def import_upload(request):
    """The upload form; a valid upload becomes an import job, and the browser goes to its page."""
    _require_import(request.user)
    limit_bytes = settings.IMPORT_MAX_UPLOAD_BYTES
    context = {"limit_mb": limit_bytes // 2**20, "tables": TABLES, "jobs": jobs.jobs_of(request.user)}
    too_big = _("The file is larger than the limit of %(mb)s MB.") % {"mb": limit_bytes // 2**20}
    # Refuse an oversized upload from its announced length, before its body is read.
    if request.method == "POST" and int(request.META.get("CONTENT_LENGTH") or 0) > limit_bytes + 2**20:
        context.update(form=ImportForm(), refused=too_big)
        return render(request, "transfer/import.html", context, status=413)
    form = ImportForm(request.POST or None, request.FILES or None)
    context["form"] = form
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        if upload.size > limit_bytes:
            context["refused"] = too_big
            return render(request, "transfer/import.html", context, status=413)
        job = jobs.submit_import(request.user, data=upload.read(), file_name=upload.name,
                                 table=form.cleaned_data["table"] or None, dry_run=form.cleaned_data["dry_run"])
        return redirect("job_detail", pk=job.pk)
    return render(request, "transfer/import.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def export_download(request):
    """The export form; a valid request becomes an export job, and the browser goes to its page."""
    _require_export(request.user)
    form = export_form(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        job = jobs.submit_export(request.user, centre=form.cleaned_data["centre"] or None,
                                 file_format=form.cleaned_data["file_format"],
                                 deidentify=form.cleaned_data["deidentify"], freeze=form.cleaned_data["freeze"])
        return redirect("job_detail", pk=job.pk)
    return render(request, "transfer/export.html", {"form": form, "formats": FORMATS, "deidentify": DEIDENTIFY,
                                                    "jobs": jobs.jobs_of(request.user)})


STEPS = {"read": gettext_lazy("reading the file"), "check": gettext_lazy("checking every cell"),
         "merge": gettext_lazy("matching stored records and checking each case"),
         "write": gettext_lazy("writing, in one transaction")}


def progress(job):
    """{percent, rows, seconds_left} of a running import (seconds_left None until 5 % is done), or None."""
    found = (job.report or {}).get("progress")
    if job.state != Job.RUNNING or not found or not job.started_at:
        return None
    fraction = found["fraction"]
    elapsed = (timezone.now() - job.started_at).total_seconds()
    left = round(elapsed * (1 - fraction) / fraction) if fraction >= 0.05 else None
    return {"percent": round(100 * fraction), "rows": found["rows"], "seconds_left": left}


def _own_job(request, pk):
    """The signed-in user's job `pk`; anyone else's, or none, is a 404."""
    try:
        return jobs.job_of(request.user, pk)
    except Job.DoesNotExist:
        raise Http404(_("There is no such job of yours.")) from None


@login_required
@require_GET
def job_detail(request, pk):
    """A job's state, step and outcome; the page reloads itself until the job has ended."""
    job = _own_job(request, pk)
    context = {"job": job, "report": job.report if job.finished else {}, "limit_seconds": settings.JOB_TIME_LIMIT,
               "step": STEPS.get(job.step, ""), "error": jobs.error_message(job),
               "progress": None if job.finished else progress(job)}
    if job.kind == Job.EXPORT:
        context["has_result"] = jobs.has_result(job)
    elif job.report:
        context["can_import_now"] = job.report.get("ok") and job.report.get("dry_run") and jobs.is_kept(job)
        details = jobs.import_details(job)
        context.update(details=details, more_errors=details and job.report["error_count"] > len(details["errors"]))
    return render(request, "transfer/job.html", context)


@login_required
@require_POST
def job_import_now(request, pk):
    """Import the file of a dry run that passed, without choosing it again."""
    job = _own_job(request, pk)
    _require_import(request.user)  # rights may have been withdrawn since the dry run
    imported = jobs.import_checked(job)
    if imported is None:
        messages.error(request, _("The checked file is no longer kept: choose it again to import it."))
        return redirect("import_upload")
    return redirect("job_detail", pk=imported.pk)


@login_required
@require_GET
def job_result(request, pk):
    """An export job's archive."""
    job = _own_job(request, pk)
    _require_export(request.user)  # rights may have been withdrawn since the job ran
    data = jobs.result_bytes(job) if job.kind == Job.EXPORT else b""
    if not data:
        raise Http404(_("This file is no longer kept: submit the job again."))
    return _attachment(data, job.result_name, "application/zip")


@login_required
@require_GET
def job_errors(request, pk):
    """Every problem of a refused import, as CSV."""
    return _import_file(request, pk, "errors_csv", "import-errors.csv")


@login_required
@require_GET
def job_pseudonyms(request, pk):
    """The pseudonyms issued to the import's new patients, by the file's local keys, as CSV."""
    return _import_file(request, pk, "mapping_csv", "pseudonyms.csv")


def _import_file(request, pk, name, file_name):
    job = _own_job(request, pk)
    text = jobs.details_file(job, name) if job.kind == Job.IMPORT else None
    if text is None:
        raise Http404(_("This file is no longer kept (it is kept for %(hours)s hours).")
                      % {"hours": settings.JOB_RESULT_HOURS})
    return _attachment(text.encode("utf-8"), file_name, "text/csv; charset=utf-8")


def _attachment(data, file_name, content_type):
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{file_name}"'
    return response
