"""Administrators see every API token (never its key) and can revoke one, e.g. when someone leaves."""
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from registry.api.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "kind", "read_only", "prefix", "created_at", "expires_at", "last_used_at",
                    "revoked_at"]
    list_filter = ["kind", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "user__username", "prefix"]
    readonly_fields = ["user", "kind", "name", "read_only", "prefix", "created_at", "expires_at", "last_used_at",
                       "revoked_at"]
    exclude = ["key_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # a token is issued by its user, who alone sees the key once

    def has_delete_permission(self, request, obj=None):
        return False  # revoked, never deleted: the record of who held access stays

    @admin.action(description=_("Revoke the selected tokens"))
    def revoke(self, request, queryset):
        for token in queryset.active():
            token.revoke(by=request.user, why="revoked in the admin")
