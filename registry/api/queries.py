"""Queries (data clarification requests) in the REST API, so that a centre's own scripts can work
the cycle: /api/v1/queries/ lists them (the centres the user may read; ?state=, ?centre=,
?patient_id=) and raises one (POST), /api/v1/queries/{id}/ reads one with its thread, and
POST .../answer/, .../close/, .../reopen/ make the moves. The same services and rules as the web
pages (registry.services.queries, registry.access): a move the role may not make is a 403, one the
query's state does not allow a 400, another centre's query a 404.

A script answers by correcting the record through its endpoint (PATCH with If-Match) and then
answering with `record_version`, the version the change created (its ETag): the answer names it.
"""

from axes.helpers import get_client_ip_address
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.filters import BaseFilterBackend
from rest_framework.response import Response

from registry import access
from registry.api.fields import StrictCharField
from registry.api.pagination import CursorPages
from registry.api.query_parameters import KnownQueryParameters
from registry.api.views import service_errors, split_list
from registry.dictionary import TABLE_MODELS
from registry.models import Patient, Query, QueryMessage
from registry.security import audit
from registry.services import queries as services


class QueryMessageSerializer(serializers.ModelSerializer):
    """One step of a query: who (null: the registry), when, which move, what was said, the field's
    value at that step and, for an answer made by a change, the record's version it created."""

    author = StrictCharField(source="username", allow_null=True, read_only=True,
                                   help_text=gettext_lazy("The user name; null for the registry's own steps."))
    # Blank for a person's step: the schema must allow "" beside the registry's notes.
    system_note = serializers.ChoiceField(choices=QueryMessage.SYSTEM_NOTES, allow_blank=True, read_only=True)

    class Meta:
        model = QueryMessage
        fields = ["id", "action", "author", "created_at", "text", "system_note", "value", "record_version"]
        read_only_fields = fields

    def to_representation(self, instance):
        row = super().to_representation(instance)
        row["author"] = row["author"] or None
        return row


class QuerySerializer(serializers.ModelSerializer):
    """A data clarification request on one field of one record, with its thread."""

    patient_id = StrictCharField(read_only=True)
    centre = StrictCharField(source="centre_id", read_only=True)
    record_id = StrictCharField(source="record_pk", read_only=True,
                                      help_text=gettext_lazy("The record's key in its table (a patient's is its "
                                                             "pseudonym)."))
    check = StrictCharField(source="check_code", read_only=True,
                                  help_text=gettext_lazy("The soft check that raised it; empty for a person's query."))
    messages = QueryMessageSerializer(many=True, read_only=True)

    class Meta:
        model = Query
        fields = ["id", "patient_id", "centre", "table", "record_id", "field", "state", "origin", "check",
                  "created_at", "updated_at", "messages"]
        read_only_fields = fields


class QueryRaiseSerializer(serializers.Serializer):
    """A new query on one field of one record."""

    table = serializers.ChoiceField(choices=Query.TABLES)
    record_id = StrictCharField(max_length=40, help_text=gettext_lazy(
        "The record's id (for the table patients: the pseudonym)."))
    field = StrictCharField(max_length=40, help_text=gettext_lazy("The column asked about."))
    text = StrictCharField(max_length=services.TEXT_MAX_LENGTH, help_text=gettext_lazy("The question."))


class QueryMoveSerializer(serializers.Serializer):
    text = StrictCharField(max_length=services.TEXT_MAX_LENGTH, required=False, allow_blank=True,
                                 help_text=gettext_lazy("Required to reopen, and to answer without record_version."))


class QueryAnswerSerializer(QueryMoveSerializer):
    record_version = serializers.IntegerField(min_value=2, required=False, help_text=gettext_lazy(
        "The version (ETag) of the record that a change of the queried field created: the answer names it."))


class QueryPagination(CursorPages):
    page_size = 100
    max_page_size = 1000
    ordering = ("id",)


def _filter_parameters():
    return [
        {"name": "state", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "Only these states (open, answered, closed, reopened; comma-separated)."},
        {"name": "centre", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "Only queries of these centres (codes, comma-separated)."},
        {"name": "patient_id", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "Only queries about these patients (pseudonyms, comma-separated)."},
    ]


class QueryFilter(BaseFilterBackend):
    """?state=, ?centre= and ?patient_id= (comma-separated lists)."""

    def filter_queryset(self, request, queryset, view):
        params = request.query_params
        for name, lookup in (("state", "state"), ("centre", "centre"), ("patient_id", "patient_id")):
            if values := split_list(params.get(name)):
                queryset = queryset.filter(**{f"{lookup}__in": values})
        return queryset

    def get_schema_operation_parameters(self, view):
        return _filter_parameters()


def _moved(view, move, serializer_class, **extra):
    """One move on a query; answers the query."""
    query = view.stored_query()
    serializer = serializer_class(data=view.request.data)
    serializer.is_valid(raise_exception=True)
    data = dict(serializer.validated_data)
    with service_errors():
        move(user=view.request.user, query=query, text=data.get("text", ""),
             ip_address=get_client_ip_address(view.request._request), **{k: data[k] for k in extra if k in data})
    return view.query_response(query.pk)


MOVE_DOC = ("Moves: open → answered (a nurse of the centre) → closed (a monitor of the centre); a monitor reopens "
            "an answered or closed query and closes an open one; a coordinator makes every move. A move the role "
            "may not make is a 403; one the state does not allow a 400.")


@extend_schema_view(
    list=extend_schema(summary="List queries", tags=["queries"],
                       description="The queries of the centres whose records you may read, oldest first, in pages."),
    retrieve=extend_schema(summary="Read a query with its thread", tags=["queries"]),
    create=extend_schema(summary="Raise a query", tags=["queries"], request=QueryRaiseSerializer,
                         responses={201: QuerySerializer},
                         description="A monitor of the record's centre or a coordinator asks about one field."),
    answer=extend_schema(summary="Answer a query", tags=["queries"], request=QueryAnswerSerializer,
                         responses={200: QuerySerializer}, description=MOVE_DOC),
    close=extend_schema(summary="Close a query", tags=["queries"], request=QueryMoveSerializer,
                        responses={200: QuerySerializer}, description=MOVE_DOC),
    reopen=extend_schema(summary="Reopen a query", tags=["queries"], request=QueryMoveSerializer,
                         responses={200: QuerySerializer}, description=MOVE_DOC),
)
class QueryViewSet(KnownQueryParameters, viewsets.GenericViewSet):
    """Data clarification requests on the records' fields."""

    serializer_class = QuerySerializer
    queryset = Query.objects.none()
    pagination_class = QueryPagination
    filter_backends = [QueryFilter]
    lookup_value_regex = "[^/]+"  # any value reaches the view, which answers 404 in JSON

    def get_queryset(self):
        return access.queries_readable(self.request.user).prefetch_related("messages")

    def stored_query(self):
        pk = self.kwargs["pk"]
        query = self.get_queryset().filter(pk=pk).first() if pk.isdecimal() and int(pk) < 2**63 else None
        if query is None:
            if pk.isdecimal() and int(pk) < 2**63:
                audit.log_if_hidden(self.request, Query, pk)
            raise exceptions.NotFound()
        return query

    def query_response(self, pk, status_code=status.HTTP_200_OK):
        return Response(QuerySerializer(self.get_queryset().get(pk=pk)).data, status=status_code)

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        audit.log_read(request, patient_ids=[query.patient_id for query in page])
        return self.get_paginated_response(QuerySerializer(page, many=True).data)

    def retrieve(self, request, *args, **kwargs):
        query = self.stored_query()
        audit.log_read(request, patient_ids=[query.patient_id])
        return Response(QuerySerializer(query).data)  # stored_query read it with its messages

    def create(self, request, *args, **kwargs):
        serializer = QueryRaiseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = TABLE_MODELS[data["table"]]
        record = _readable_record(request, model, data["record_id"])
        with service_errors():
            query = services.query_raise(user=request.user, record=record, field=data["field"], text=data["text"],
                                         ip_address=get_client_ip_address(request._request))
        return self.query_response(query.pk, status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def answer(self, request, *args, **kwargs):
        return _moved(self, services.query_answer, QueryAnswerSerializer, record_version=None)

    @action(detail=True, methods=["post"])
    def close(self, request, *args, **kwargs):
        return _moved(self, services.query_close, QueryMoveSerializer)

    @action(detail=True, methods=["post"])
    def reopen(self, request, *args, **kwargs):
        return _moved(self, services.query_reopen, QueryMoveSerializer)


def _readable_record(request, model, record_id):
    """The record a query is raised on, if the user may read it; a 400 naming record_id otherwise
    (another centre's record looks absent, and the refusal is recorded)."""
    found = None
    if model is Patient or (record_id.isdecimal() and int(record_id) < 2**63):
        readable = access.patients_readable(request.user) if model is Patient else \
            access.records_readable(request.user, model)
        found = readable.filter(pk=record_id).first()
    if found is None:
        if model is Patient or record_id.isdecimal() and int(record_id) < 2**63:
            audit.log_if_hidden(request, model, record_id)
        raise serializers.ValidationError({"record_id": [_("There is no such record.")]})
    return found
