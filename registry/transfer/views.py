"""Web pages to upload a centre's spreadsheet and to download the dataset export.

Thin views over registry.transfer.importing (file_import) and registry.transfer.exporting (dataset_export).
Import: nurses (their centres) and coordinators (every centre); the file's rows decide which
centres are written, and registry.transfer.importing refuses rows of centres the user may not write.
Export: coordinators (any centre or pooled), and PIs their own centres when settings.EXPORT_ALLOW_PI
is on (access.can_export); anyone else gets 403.
"""
import secrets
import tempfile
import zlib

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from registry import access
from registry.dictionary import TABLES
from registry.transfer.exporting import DEIDENTIFY, FORMATS, dataset_export, export_filename
from registry.transfer.importing import file_import

ERRORS_TTL = 3600  # seconds an error report stays downloadable
SHOWN_ERRORS = 500  # errors listed on the page; the CSV has all of them


class ImportForm(forms.Form):
    file = forms.FileField(label=gettext_lazy("File"), help_text=gettext_lazy(
        "An Excel workbook (.xlsx) with one sheet per table, a zip of CSV files named after the tables, "
        "or one CSV file."))
    table = forms.ChoiceField(label=gettext_lazy("Table of a single CSV file"), required=False,
                              choices=[("", gettext_lazy("from the file name"))] + [(t, t) for t in TABLES])
    dry_run = forms.BooleanField(label=gettext_lazy("Dry run: check and count, write nothing"), required=False,
                                 initial=True)


class ExportForm(forms.Form):
    centre = forms.ChoiceField(label=gettext_lazy("Scope"), required=False)
    file_format = forms.ChoiceField(label=gettext_lazy("Format"), choices=[
        ("csv", "CSV (R, Python, any tool)"), ("xlsx", "Excel (.xlsx)"), ("dta", "Stata (.dta)"),
        ("sav", "SPSS (.sav)")])
    deidentify = forms.ChoiceField(label=gettext_lazy("De-identification"), choices=[
        ("none", gettext_lazy("none: dates as recorded")),
        ("shift-dates", gettext_lazy("shift dates: every date of a patient moved by the same secret offset")),
        ("intervals", gettext_lazy("intervals: days from the index operation instead of dates"))])

    def __init__(self, *args, centres=(), pooled=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["centre"].choices = ([("", _("pooled: all centres"))] if pooled else []) + \
            [(c.code, str(c)) for c in centres]
        self.fields["centre"].required = not pooled


def _require_import(user):
    if not access.can_import(user):
        raise PermissionDenied(_("You may not import data."))


def _require_export(user):
    if not access.can_export(user):
        raise PermissionDenied(_("You may not export the dataset."))


@login_required
@require_http_methods(["GET", "POST"])
def import_upload(request):
    _require_import(request.user)
    limit_bytes = settings.IMPORT_MAX_UPLOAD_BYTES
    context = {"limit_mb": limit_bytes // 2**20, "tables": TABLES}
    # Refuse an oversized upload from its announced length, before its body is read.
    if request.method == "POST" and int(request.META.get("CONTENT_LENGTH") or 0) > limit_bytes + 2**20:
        context.update(form=ImportForm(), refused=_("The file is larger than the limit of %(mb)s MB.")
                       % {"mb": limit_bytes // 2**20})
        return render(request, "transfer/import.html", context, status=413)
    form = ImportForm(request.POST or None, request.FILES or None)
    context["form"] = form
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        if upload.size > limit_bytes:
            context["refused"] = _("The file is larger than the limit of %(mb)s MB.") % {"mb": limit_bytes // 2**20}
            return render(request, "transfer/import.html", context, status=413)
        try:
            report = file_import(user=request.user, data=upload.read(), filename=upload.name,
                                 table=form.cleaned_data["table"] or None, dry_run=form.cleaned_data["dry_run"])
        except DatabaseError:  # e.g. the connection was lost mid-import (file_import logged the traceback)
            context["refused"] = _("The database failed during the import. An import is written in one "
                                   "transaction, so nothing of this file is half-stored. Upload the file again: "
                                   "rows that are already stored are recognised and left unchanged.")
            return render(request, "transfer/import.html", context, status=503)
        context.update(report=report, shown_errors=report.errors[:SHOWN_ERRORS])
        if report.errors:
            token = secrets.token_urlsafe(16)
            cache.set(_errors_key(request.user, token), zlib.compress(report.errors_csv().encode("utf-8")), ERRORS_TTL)
            context["errors_token"] = token
        return render(request, "transfer/import.html", context, status=200 if report.ok else 422)
    return render(request, "transfer/import.html", context)


def _errors_key(user, token):
    return f"import-errors:{user.pk}:{token}"


@login_required
@require_GET
def import_errors(request, token):
    """The error report of the user's last refused import, as CSV (kept for an hour)."""
    _require_import(request.user)
    data = cache.get(_errors_key(request.user, token))
    if data is None:
        raise Http404(_("This error report has expired: upload the file again."))
    response = HttpResponse(zlib.decompress(data), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="import-errors.csv"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def export_download(request):
    _require_export(request.user)
    codes = access.export_centre_codes(request.user)
    centres = list(access.centres_readable(access.SYSTEM if codes == access.ALL else request.user))
    centres = [c for c in centres if codes == access.ALL or c.code in codes]
    form = ExportForm(request.POST or None, centres=centres, pooled=codes == access.ALL)
    if request.method == "POST" and form.is_valid():
        options = {"centre": form.cleaned_data["centre"] or None, "file_format": form.cleaned_data["file_format"],
                   "deidentify": form.cleaned_data["deidentify"]}
        # The archive grows in a temporary file (in memory up to 16 MB), never as one string.
        spool = tempfile.SpooledTemporaryFile(max_size=16 * 2**20)
        dataset_export(user=request.user, out=spool, **options)
        spool.seek(0)
        return FileResponse(spool, as_attachment=True, filename=export_filename(**options),
                            content_type="application/zip")
    return render(request, "transfer/export.html", {"form": form, "formats": FORMATS, "deidentify": DEIDENTIFY})
