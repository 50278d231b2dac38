"""Import and export on the admin's changelists of the clinical tables (django-import-export), for a
coordinator's small corrections; the resources (registry/transfer/admin_resources.py) say how a row
is read, checked and saved.

- Only a coordinator (a superuser counts as one) with the admin's permissions on the table imports
  and exports; the admin itself is for staff only, and lists only what the user may read.
- Import: a file (xlsx, csv, json, ods) and a reason → a preview of every row, checked and saved
  through the services inside a transaction that is rolled back: the changes as a diff, and every
  row the registry refuses with its message at its column → confirm → the same again, written in one
  transaction, all rows or none (a row that fails now, e.g. a record locked since the preview,
  leaves everything as it was and is shown). Every write is in the record's history with the user
  and "admin import: <reason>".
- Export: the changelist's rows as filtered and searched, with the dictionary's columns, logged as
  every export is (ExportLog) and as a read of the patients' data.
"""
import hashlib
import os

from django import forms
from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST
from import_export import forms as import_export_forms
from import_export.admin import ImportExportMixin
from import_export.results import RowResult
from import_export.tmp_storages import CacheStorage

from registry import access
from registry.security import audit
from registry.services.status import REASON_MAX_LENGTH
from registry.transfer.admin_resources import FORMATS, RESOURCES, admin_export_log

MAX_FILE_BYTES = 5 * 2**20


class UploadStorage(CacheStorage):
    """The uploaded file between the preview and the confirmation: in the cache, which every web
    process shares (Redis in production), for an hour; never in a temporary file left behind."""

    CACHE_LIFETIME = 3600


def reason_field(**kwargs):
    return forms.CharField(
        label=gettext_lazy("Reason for the changes"), max_length=REASON_MAX_LENGTH, help_text=gettext_lazy(
            "Kept in the history of every record the import changes, after “admin import:”. A column "
            "named reason in the file gives a row a reason of its own."), **kwargs)


class ImportForm(import_export_forms.ImportForm):
    reason = reason_field()

    def clean_import_file(self):
        upload = self.cleaned_data["import_file"]
        if upload.size > MAX_FILE_BYTES:
            raise forms.ValidationError(_("The file is larger than %(mb)s MB: import a whole dataset on the "
                                          "registry's import page.") % {"mb": MAX_FILE_BYTES // 2**20})
        return upload


class ConfirmImportForm(import_export_forms.ConfirmImportForm):
    reason = reason_field(widget=forms.HiddenInput)


class ClinicalImportExportMixin(ImportExportMixin):
    """Import (preview, confirm) and export of one clinical table on its admin changelist."""

    import_form_class = ImportForm
    confirm_form_class = ConfirmImportForm
    export_form_class = import_export_forms.ExportForm  # always the dictionary's columns
    import_template_name = "admin/registry/clinical_import.html"
    tmp_storage_class = UploadStorage
    import_formats = FORMATS
    export_formats = FORMATS

    def has_import_permission(self, request):
        return (access.is_coordinator(request.user) and self.has_add_permission(request)
                and self.has_change_permission(request))

    def has_export_permission(self, request):
        return access.is_coordinator(request.user) and self.has_view_permission(request)

    def get_import_resource_classes(self, request):
        return [RESOURCES[self.model]]

    def get_export_resource_classes(self, request):
        return [RESOURCES[self.model]]

    def get_import_resource_kwargs(self, request, **kwargs):
        form = kwargs.get("form")
        return {"user": request.user, "reason": getattr(form, "cleaned_data", {}).get("reason", "")}

    def get_export_resource_kwargs(self, request, **kwargs):
        return {"user": request.user}

    def get_confirm_form_initial(self, request, import_form):
        initial = super().get_confirm_form_initial(request, import_form)
        if import_form is not None:
            initial["reason"] = import_form.cleaned_data["reason"]
        return initial

    def get_import_data_kwargs(self, **kwargs):
        # All rows or none: a row the registry refuses rolls the whole import back.
        return {**super().get_import_data_kwargs(**kwargs), "rollback_on_validation_errors": True}

    # --- import ----------------------------------------------------------------------------------

    def import_action(self, request, **kwargs):
        response = super().import_action(request, **kwargs)
        result = (getattr(response, "context_data", None) or {}).get("result")
        if result is not None and (result.has_errors() or result.has_validation_errors()):
            upload = request.FILES["import_file"]
            upload.seek(0)
            self.record_refusal(request, result, file_name=upload.name, sha256=hashlib.sha256(upload.read()).hexdigest(),
                                dry_run=True)
        if result is not None:  # the preview shows the stored values of the records the file names
            shown = [row.instance.patient_id for row in result.valid_rows()
                     if row.import_type in (RowResult.IMPORT_TYPE_UPDATE, RowResult.IMPORT_TYPE_SKIP) and row.instance]
            if shown:
                audit.log_read(request, patient_ids=shown)
        return response

    @method_decorator(require_POST)
    def process_import(self, request, **kwargs):
        if not self.has_import_permission(request):
            raise PermissionDenied
        name = os.path.basename(request.POST.get("import_file_name", ""))
        key = UploadStorage.CACHE_PREFIX + name
        data = cache.get(key) if name else None
        if data is None:
            messages.error(request, _("The uploaded file is no longer kept: upload it again. Nothing was imported."))
            return HttpResponseRedirect(reverse("%s:%s_%s_import" % (self.admin_site.name, *self.get_model_info())))
        # Confirmed twice (a double click, the browser's "resend"): the second would add the new rows
        # again. The first confirmation claims the file (cache.add is atomic); it is removed after.
        if not cache.add(f"{key}:confirmed", True, UploadStorage.CACHE_LIFETIME):
            messages.error(request, _("This import was confirmed already."))
            return HttpResponseRedirect(reverse("%s:%s_%s_changelist" % (self.admin_site.name, *self.get_model_info())))
        request.registry_import_sha256 = hashlib.sha256(data).hexdigest()  # for a refusal's record
        return super().process_import(request, **kwargs)

    def process_result(self, result, request):
        if not (result.has_errors() or result.has_validation_errors()):
            return super().process_result(result, request)
        # A row failed at the confirmation (the registry changed since the preview): the whole
        # import was rolled back. Show why, with the form to upload the corrected file.
        messages.error(request, _("Nothing was imported: a row was refused when the import was confirmed."))
        self.record_refusal(request, result, file_name=request.POST.get("original_file_name", ""),
                            sha256=getattr(request, "registry_import_sha256", ""), dry_run=False)
        form = self.get_import_form_class(request)(self.get_import_formats(), self.get_import_resource_classes(request))
        resource = self.get_import_resource_classes(request)[0](**self.get_import_resource_kwargs(request))
        context = {
            **self.get_import_context_data(), **self.admin_site.each_context(request),
            "title": _("Import"), "form": form, "opts": self.model._meta, "media": self.media + form.media,
            "fields_list": [(resource.get_display_name(), [f.column_name for f in resource.get_user_visible_fields()])],
            "import_error_display": self.import_error_display, "result": result,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, [self.import_template_name], context)

    def record_refusal(self, request, result, *, file_name, sha256, dry_run):
        """A preview or a confirmation with refused rows, in the security log as every refused import is."""
        errors = (len(result.base_errors) + sum(len(errors) for _number, errors in result.row_errors())
                  + sum(row.error_count for row in result.invalid_rows))
        audit.log_import_refused(user=request.user, file_name=f"admin, {RESOURCES[self.model].table}: {file_name}",
                                 sha256=sha256, errors=errors, rows=result.total_rows, dry_run=dry_run)

    def add_success_message(self, result, request):
        totals = result.totals
        message = _("Import finished: %(new)s new, %(updated)s changed, %(skipped)s unchanged %(table)s.") % {
            "new": totals[RowResult.IMPORT_TYPE_NEW], "updated": totals[RowResult.IMPORT_TYPE_UPDATE],
            "skipped": totals[RowResult.IMPORT_TYPE_SKIP], "table": self.model._meta.verbose_name_plural}
        issued = getattr(result, "issued_pseudonyms", [])
        if issued:
            message += " " + _("Pseudonyms issued: %(list)s.") % {"list": ", ".join(
                f"{local_id} → {pseudonym}" if local_id not in (None, "") else pseudonym
                for local_id, pseudonym in issued)}
        messages.success(request, message)

    # --- export ----------------------------------------------------------------------------------

    def init_request_context_data(self, request, form):
        context = super().init_request_context_data(request, form)
        resource = self.get_export_resource_classes(request)[0]()
        context["fields_list"] = [(resource.get_display_name(), [f.column_name for f in resource.get_export_fields()])]
        return context

    def get_export_data(self, file_format, request, queryset, **kwargs):
        data = super().get_export_data(file_format, request, queryset, **kwargs)
        patient_ids = list(queryset.values_list("patient_id", flat=True))
        admin_export_log(user=request.user, table=RESOURCES[self.model].table,
                         file_format=file_format.get_extension(), patient_ids=patient_ids)
        audit.log_read(request, patient_ids=patient_ids)
        return data

    def get_export_filename(self, request, queryset, file_format):
        return f"{RESOURCES[self.model].table}-{timezone.localtime():%Y%m%d-%H%M}.{file_format.get_extension()}"
