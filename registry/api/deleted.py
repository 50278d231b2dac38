"""Deleted records through the REST API.

- GET /api/v1/deleted-records/: the tombstones the user may read (registry.access: coordinators
  every centre's, the others their centres'), newest first, each with the deleted rows' last values
  and, once restored, who restored it, when and why. Every page is recorded as a read.
- POST /api/v1/deleted-records/{id}/restore/ with {"reason": ...}: a coordinator puts the record back
  (registry.services.record_restore, which checks the rules again: a violation is a 400 with the
  rule's message). Another role gets 403; another centre's tombstone is a 404.
"""
from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.filters import BaseFilterBackend
from rest_framework.response import Response

from registry import access, services
from registry.api.authentication import TokenScope
from registry.api.fields import StrictCharField
from registry.api.pagination import CursorPages
from registry.api.query_parameters import KnownQueryParameters
from registry.api.views import UPDATED_SINCE_SCHEMA, parse_updated_since, service_errors, split_list
from registry.models import DeletedRecord
from registry.security import audit


class DeletedRecordSerializer(serializers.Serializer):
    """One deletion (a tombstone): a record, or a patient with the whole case."""

    id = serializers.IntegerField(read_only=True)
    table = StrictCharField(read_only=True, help_text=gettext_lazy("The data dictionary's table of the record."))
    record_id = StrictCharField(read_only=True, help_text=gettext_lazy("The record's id, or the pseudonym."))
    patient_id = StrictCharField(read_only=True)
    centre = StrictCharField(read_only=True)
    deleted_at = serializers.DateTimeField(read_only=True)
    deleted_by = StrictCharField(read_only=True, help_text=gettext_lazy("User name; empty for the system."))
    source = StrictCharField(read_only=True, help_text=gettext_lazy("web, api or admin."))
    reason = StrictCharField(read_only=True)
    values = serializers.DictField(
        read_only=True, child=serializers.ListField(child=serializers.DictField()),
        help_text=gettext_lazy("{table: [row]}: every row the deletion removed, with its last values."))
    restored_at = serializers.DateTimeField(read_only=True, allow_null=True)
    restored_by = StrictCharField(read_only=True, allow_null=True)
    restore_reason = StrictCharField(read_only=True, allow_null=True)


class RestoreSerializer(serializers.Serializer):
    reason = StrictCharField(max_length=80, help_text=gettext_lazy(
        "Why the record is restored: required, and kept in its history."))


def deleted_row(tombstone):
    restoration = tombstone.restoration_or_none
    return {
        "id": tombstone.pk, "table": tombstone.table, "record_id": tombstone.record_pk,
        "patient_id": tombstone.patient_id, "centre": tombstone.centre_id, "deleted_at": tombstone.deleted_at,
        "deleted_by": tombstone.username, "source": tombstone.source, "reason": tombstone.reason,
        "values": tombstone.values,
        "restored_at": restoration.restored_at if restoration else None,
        "restored_by": restoration.username if restoration else None,
        "restore_reason": restoration.reason if restoration else None,
    }


class DeletedRecordFilter(BaseFilterBackend):
    """?centre= and ?patient_id= (comma-separated lists); ?updated_since= (deleted or restored since);
    ?state=deleted (not restored) or restored."""

    def filter_queryset(self, request, queryset, view):
        params = request.query_params
        if centres := split_list(params.get("centre")):
            queryset = queryset.filter(centre__in=centres)
        if ids := split_list(params.get("patient_id")):
            queryset = queryset.filter(patient_id__in=ids)
        if (since := params.get("updated_since")) is not None:  # the deletion feed beside the tables' own updated_since
            try:
                moment = parse_updated_since(since)
                queryset = queryset.filter(Q(deleted_at__gte=moment) | Q(restoration__restored_at__gte=moment))
            except (ValueError, OverflowError) as error:
                raise serializers.ValidationError({"updated_since": [str(error)]}) from error
        state = params.get("state")
        if state in ("deleted", "restored"):
            queryset = queryset.filter(restoration__isnull=state == "deleted")
        elif state:
            raise serializers.ValidationError({"state": [_("Use deleted or restored.")]})
        return queryset

    def get_schema_operation_parameters(self, view):
        return [
            {"name": "centre", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "Only deletions at these centres (codes, comma-separated)."},
            {"name": "patient_id", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "Only deletions of these patients or their records (pseudonyms, comma-separated)."},
            {"name": "updated_since", "in": "query", "required": False, "schema": UPDATED_SINCE_SCHEMA,
             "description": "Only deletions (or their restores) at or after this ISO date or date-time: with the "
                            "tables' own updated_since, a mirror learns every change and deletion since its last "
                            "read."},
            {"name": "state", "in": "query", "required": False,
             "schema": {"type": "string", "enum": ["deleted", "restored"]},
             "description": "deleted: not restored (yet); restored: restored since."},
        ]


class NewestFirst(CursorPages):
    ordering = "-id"
    page_size = 100
    max_page_size = 1000


@extend_schema_view(
    list=extend_schema(summary="List deleted records", tags=["deleted_records"],
                       description="The deletions of the centres whose records you may read, newest first."),
    restore=extend_schema(
        summary="Restore a deleted record", tags=["deleted_records"], request=RestoreSerializer,
        responses={200: DeletedRecordSerializer, 400: OpenApiTypes.OBJECT, 403: OpenApiTypes.OBJECT,
                   404: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT},
        description="A coordinator puts back what the deletion removed, with the same pseudonym and ids, giving a "
                    "`reason`. The rules are checked again: a restore that would break one is a 400 with the rule's "
                    "message; one into a locked patient is a 409 (code record_locked)."),
)
class DeletedRecordViewSet(KnownQueryParameters, viewsets.GenericViewSet):
    """Deleted records (tombstones) and their restore."""

    queryset = DeletedRecord.objects.none()
    filter_backends = [DeletedRecordFilter]
    pagination_class = NewestFirst
    permission_classes = [permissions.IsAuthenticated, TokenScope]
    lookup_value_regex = "[^/]+"  # any value reaches the view, which answers 404 in JSON

    def get_queryset(self):
        return access.deleted_records_readable(self.request.user).select_related("restoration")

    def get_serializer_class(self):
        return RestoreSerializer if self.action == "restore" else DeletedRecordSerializer

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        rows = [deleted_row(tombstone) for tombstone in page]
        audit.log_read(request, patient_ids=[row["patient_id"] for row in rows])
        return self.get_paginated_response(rows)

    @action(detail=True, methods=["post"], url_path="restore")
    def restore(self, request, *args, **kwargs):
        pk = self.kwargs["pk"]
        if not (pk.isdecimal() and int(pk) < 2**63):
            raise exceptions.NotFound()
        tombstone = self.get_queryset().filter(pk=pk).first()
        if tombstone is None:
            audit.log_if_hidden(request, DeletedRecord, pk)  # another centre's is recorded as refused
            raise exceptions.NotFound()
        if not access.can_restore(request.user):
            raise exceptions.PermissionDenied(_("Only a coordinator may restore a deleted record."))
        serializer = RestoreSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with service_errors():
            services.record_restore(user=request.user, deleted_record=tombstone, source="api",
                                    reason=serializer.validated_data["reason"])
        return Response(deleted_row(self.get_queryset().get(pk=tombstone.pk)))
