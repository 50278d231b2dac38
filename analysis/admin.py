"""Saved analysis plans in the Django admin (read the JSON, rename, delete)."""
from django.contrib import admin

from analysis.models import SavedPlan


@admin.register(SavedPlan)
class SavedPlanAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "created")
    list_filter = ("owner",)
    search_fields = ("name",)
    readonly_fields = ("created",)
