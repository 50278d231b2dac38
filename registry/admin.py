"""The Django admin: administrators manage centres, users and memberships (and lift sign-in
lockouts); clinical records are visible with list filters and their history, every read of them is
recorded, and every save goes through the services. The audit tables (registry.audit_tables) are
read-only here."""
from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from axes.utils import reset as axes_reset
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.http import HttpResponseRedirect
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from simple_history.admin import SimpleHistoryAdmin

from registry import access, services
from registry.audit_tables import AUDITED
from registry.models import (
    Centre,
    DeletedRecord,
    ErasureTombstone,
    FieldVerification,
    FollowUp,
    Freeze,
    Membership,
    Metastasectomy,
    Patient,
    PrimaryTumour,
    Signature,
    SystemicTherapy,
)
from registry.security import audit
from registry.services.status import REASON_MAX_LENGTH, case_lock_refusal
from registry.transfer.admin_import_export import ClinicalImportExportMixin
from registry.web.forms import RuleCheckedModelForm


@admin.register(Centre)
class CentreAdmin(admin.ModelAdmin):
    list_display = ("code", "name")
    search_fields = ("code", "name")


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class RegistryUserAdmin(UserAdmin):
    inlines = [MembershipInline]
    list_filter = UserAdmin.list_filter + ("memberships__role", "memberships__centre")
    actions = ["unlock_sign_in"]

    @admin.action(description=_("Unlock sign-in of the selected users"), permissions=["change"])
    def unlock_sign_in(self, request, queryset):
        """Clears the users' failed sign-ins from every address (django-axes), which lifts both the
        lockout of a user name and that of a (user name, address) pair; each unlock is recorded."""
        for user in queryset:
            cleared = axes_reset(username=user.get_username())
            audit.log_unlock(request, user.get_username(), cleared)
        self.message_user(request, ngettext("Unlocked the sign-in of %(count)d user.",
                                            "Unlocked the sign-in of %(count)d users.", len(queryset))
                          % {"count": len(queryset)})

    def has_delete_permission(self, request, obj=None):
        # The audit trail names its users and cannot be changed: someone who leaves is deactivated.
        return False


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "centre", "role")
    list_filter = ("role", "centre")


def deletion_reason(request):
    return request.POST.get("reason", "").strip()


class ClinicalAdmin(ClinicalImportExportMixin, SimpleHistoryAdmin):
    """Reads through the access module; writes through the services (rules, versions, audit).
    A coordinator imports corrections and exports the listed rows (registry/transfer/admin_import_export.py)."""

    form = RuleCheckedModelForm
    readonly_fields = ("status", "version", "created_at", "updated_at")

    def get_queryset(self, request):
        model = self.model
        if model is Patient:
            return access.patients_readable(request.user)
        return access.records_readable(request.user, model)

    def save_model(self, request, obj, form, change):
        # A new patient gets its pseudonym there; a lock or a missing reason the form has shown.
        services.record_save(source="admin", user=request.user, record=obj, reason=form.cleaned_data.get("reason"))

    def has_delete_permission(self, request, obj=None):
        # A locked record is not offered for deletion (the services would refuse it).
        return super().has_delete_permission(request, obj) and (obj is None or case_lock_refusal(obj) is None)

    # A deletion needs a reason, as everywhere (services.record_delete): the confirmation pages ask
    # for it, and a confirmation without one deletes nothing and says so.
    delete_confirmation_template = "admin/registry/clinical_delete_confirmation.html"
    delete_selected_confirmation_template = "admin/registry/clinical_delete_selected_confirmation.html"
    actions = ["delete_selected"]

    def delete_view(self, request, object_id, extra_context=None):
        if request.method == "POST" and not deletion_reason(request):
            obj = self.get_object(request, unquote(object_id))
            if obj is not None and self.has_delete_permission(request, obj):
                self.message_user(request, _("Give a reason for the deletion: nothing was deleted."), messages.ERROR)
                return HttpResponseRedirect(request.get_full_path())
        extra_context = {**(extra_context or {}), "reason_max_length": REASON_MAX_LENGTH}
        return super().delete_view(request, object_id, extra_context)

    @admin.action(permissions=["delete"], description=_("Delete selected %(verbose_name_plural)s"))
    def delete_selected(self, request, queryset):
        """Django's delete action, which also asks for the reason."""
        if request.POST.get("post") and not deletion_reason(request):
            perms_needed, protected = self.get_deleted_objects(queryset, request)[2:]
            if not perms_needed and not protected:  # else Django's action refuses, as it would
                self.message_user(request, _("Give a reason for the deletion: nothing was deleted."), messages.ERROR)
                return None
        response = django_delete_selected(self, request, queryset)
        if response is not None:
            response.context_data["reason_max_length"] = REASON_MAX_LENGTH
        return response

    def delete_model(self, request, obj):
        services.record_delete(source="admin", user=request.user, record=obj, reason=deletion_reason(request))

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            services.record_delete(source="admin", user=request.user, record=obj, reason=deletion_reason(request))

    # Reads of patient-level data, recorded as everywhere else (registry.security.audit).

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = (getattr(response, "context_data", None) or {}).get("cl")
        if changelist is not None:
            audit.log_read(request, patient_ids=[obj.patient_id for obj in changelist.result_list])
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        return self.record_read(request, object_id, response)

    def history_view(self, request, object_id, extra_context=None):
        response = super().history_view(request, object_id, extra_context)
        return self.record_read(request, object_id, response)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        response = super().history_form_view(request, object_id, version_id, extra_context)
        return self.record_read(request, object_id, response)

    def record_read(self, request, object_id, response):
        """A page of one record that was shown: the read of its patient (found in the history,
        which keeps deleted records too)."""
        if request.method == "GET" and response.status_code == 200:
            lookup = {self.model._meta.pk.attname: unquote(object_id)}
            patient_id = self.model.history.filter(**lookup).values_list("patient_id", flat=True).first()
            if patient_id:
                audit.log_read(request, patient_ids=[patient_id])
        return response


@admin.register(Patient)
class PatientAdmin(ClinicalAdmin):
    list_display = ("patient_id", "centre", "sex", "birth_year", "histology", "lung_mets_diagnosis_date", "status")
    list_filter = ("centre", "status", "histology", "sex", "extrapulmonary_disease_at_pm")
    search_fields = ("patient_id",)
    readonly_fields = ("patient_id",) + ClinicalAdmin.readonly_fields


@admin.register(PrimaryTumour)
class PrimaryTumourAdmin(ClinicalAdmin):
    list_display = ("patient", "diagnosis_date", "site", "grade", "margin")
    list_filter = ("patient__centre", "site", "grade", "margin", "radiotherapy")
    search_fields = ("patient__patient_id",)
    raw_id_fields = ("patient",)


@admin.register(Metastasectomy)
class MetastasectomyAdmin(ClinicalAdmin):
    list_display = ("patient", "surgery_date", "side", "lesions_resected", "max_lesion_diameter_mm", "margin")
    list_filter = ("patient__centre", "side", "approach", "resection_type", "margin", "clavien_dindo")
    search_fields = ("patient__patient_id",)
    raw_id_fields = ("patient",)


@admin.register(SystemicTherapy)
class SystemicTherapyAdmin(ClinicalAdmin):
    list_display = ("patient", "start_date", "end_date", "regimen", "intent")
    list_filter = ("patient__centre", "regimen", "intent", "best_response")
    search_fields = ("patient__patient_id",)
    raw_id_fields = ("patient",)


@admin.register(FollowUp)
class FollowUpAdmin(ClinicalAdmin):
    list_display = ("patient", "event_date", "event", "recurrence_site", "cause_of_death")
    list_filter = ("patient__centre", "event", "recurrence_site", "cause_of_death")
    search_fields = ("patient__patient_id",)
    raw_id_fields = ("patient",)


class ReadOnly:
    """No add, change or delete: the admin shows the rows and nothing more."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ErasureTombstone)
class ErasureTombstoneAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("at", "username", "centre", "reference")
    list_filter = ("centre",)
    search_fields = ("reference", "username")


@admin.register(DeletedRecord)
class DeletedRecordAdmin(ReadOnly, admin.ModelAdmin):
    """The tombstones, as the deleted-records page lists them (restoring is done there); the deleted
    values are shown there, where their reading is recorded, not here."""

    list_display = ("deleted_at", "username", "centre", "table", "record_pk", "reason")
    exclude = ("values",)
    list_filter = ("centre", "table")
    search_fields = ("patient_id", "reason", "username")

    def get_queryset(self, request):
        return access.deleted_records_readable(request.user)

@admin.register(Signature)
class SignatureAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("signed_at", "patient_id", "username", "centre", "source", "data_hash")
    list_filter = ("centre",)
    search_fields = ("patient_id", "username")


@admin.register(FieldVerification)
class FieldVerificationAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ("verified_at", "patient_id", "table", "record_pk", "field", "username")
    list_filter = ("table",)
    search_fields = ("patient_id", "username")


@admin.register(Freeze)
class FreezeAdmin(ReadOnly, admin.ModelAdmin):
    """The data freezes, read-only (their frozen cases are patient-level data: not shown here)."""

    list_display = ("name", "created_at", "username", "rule", "dictionary_version", "content_hash")
    list_filter = ("rule",)
    search_fields = ("name", "content_hash")


# Every audit table registered here, or by its own app (django-axes' sign-in logs), becomes read-only.
for audited in AUDITED:
    model = audited.model._meta.concrete_model
    if admin.site.is_registered(model):
        model_admin = type(admin.site.get_model_admin(model))
        if not issubclass(model_admin, ReadOnly):
            admin.site.unregister(model)
            admin.site.register(model, type(model_admin.__name__, (ReadOnly, model_admin), {}))


# The lockout counters (AccessAttempt) are no log, but deleting them would unlock a user unrecorded:
# a user is unlocked by the users' action above, which is recorded.
admin.site.unregister(AccessAttempt)
admin.site.register(AccessAttempt, type(AccessAttemptAdmin.__name__, (AccessAttemptAdmin,), {
    "has_delete_permission": lambda self, request, obj=None: False}))
