"""The REST API (/api/v1/): thin views over registry.access (reads) and registry.services (writes).

- Another centre's record is a 404, exactly as in the web app (and recorded as a refusal); a user
  who may read but not write (a PI) gets 403 on every write.
- Every list page and every record read is recorded (registry.security.audit): who, which
  endpoint, the centres of the rows sent and their number.
- Every write goes through registry.services: a rule violation is a 400 naming the column, and
  nothing is written; the audit trail records the API user.
- Errors are problem details (registry.api.problems). A locked record (or any record of a locked
  patient) refuses every write with 409 and code `record_locked`; a change of a complete or
  verified record needs a `reason`. POST .../<id>/status/ moves a record through the data-management cycle
  (registry.services.status), for a monitor too, who writes nothing else.
- Optimistic concurrency: every record answers with `ETag: "<version>"`; a change or deletion must
  send it back in `If-Match` (428 without it, unless settings.API_REQUIRE_IF_MATCH is off), and one
  naming an older version is refused with 412. Either way nothing is written.
- A deletion needs a reason, the query parameter `?reason=` (400 naming it when missing); the deleted
  records and their restore are registry.api.deleted.
"""
import datetime
from contextlib import contextmanager

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.filters import BaseFilterBackend
from rest_framework.response import Response
from rest_framework.views import APIView

from registry import access, services
from registry.api.authentication import TokenScope
from registry.api.pagination import CursorPages
from registry.api.problems import Problem
from registry.api.query_parameters import KnownQueryParameters
from registry.api.serializers import TABLES, CentreSerializer, StatusChangeSerializer
from registry.api.signing import SignaturesMixin, VerificationMixin, verification_schema
from registry.models import Centre, Patient
from registry.security import audit
from registry.services import RecordLocked, StaleRecordError

# Keys of services' ValidationErrors as the API names them.
ERROR_KEYS = {"__all__": "non_field_errors", "patient": "patient_id"}


# --- errors and concurrency --------------------------------------------------------------------

class PreconditionFailed(Problem):
    """The stored record is newer than the version the client edited (412)."""

    http_status, code = status.HTTP_412_PRECONDITION_FAILED, "precondition_failed"

    def __init__(self, detail, current_version):
        super().__init__(self.http_status, self.code, detail, headers={"ETag": etag(current_version)},
                         current_version=current_version)


class PreconditionRequired(PreconditionFailed):
    """A change without If-Match: the client has not said which version it edited (428)."""

    http_status, code = status.HTTP_428_PRECONDITION_REQUIRED, "precondition_required"


class Locked(Problem):
    """A write to a locked record (409), with a stable code a client can test for."""

    def __init__(self, error):
        super().__init__(status.HTTP_409_CONFLICT, RecordLocked.code, error.message)


def etag(version):
    return f'"{version}"'


def if_match_versions(request):
    """The versions an If-Match header accepts: None without the header, "*" for any."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    tags = [tag.strip() for tag in header.split(",") if tag.strip()]
    if "*" in tags:
        return "*"
    # Weak tags (W/"3") are accepted too: a compressing proxy may weaken the ETag it passed on.
    return {tag.removeprefix("W/").strip('"') for tag in tags}


def expected_version(request, record):
    """The version the client edited, checked against the stored one (412 when they differ)."""
    versions = if_match_versions(request)
    if versions is None and getattr(settings, "API_REQUIRE_IF_MATCH", True):
        raise PreconditionRequired(_("Send the record's ETag in If-Match (here If-Match: \"%(current)s\") so that a "
                                     "change made since you read it is not overwritten.")
                                   % {"current": record.version}, record.version)
    if versions is None or versions == "*":
        return record.version
    if str(record.version) not in versions:
        raise PreconditionFailed(_("The record is at version %(current)s, not %(sent)s: someone changed it. "
                                   "Read it again and resend your change.")
                                 % {"current": record.version, "sent": ", ".join(sorted(versions))}, record.version)
    return record.version


@contextmanager
def service_errors():
    """services' exceptions as API responses: a lock 409, ValidationError 400 (keyed by column),
    stale 412."""
    try:
        yield
    except RecordLocked as error:
        raise Locked(error) from error
    except DjangoValidationError as error:
        if hasattr(error, "error_dict"):
            raise serializers.ValidationError(
                {ERROR_KEYS.get(key, key): messages for key, messages in error.message_dict.items()}) from error
        raise serializers.ValidationError({"non_field_errors": error.messages}) from error
    except StaleRecordError as error:
        raise PreconditionFailed(str(error), error.current.version) from error


# --- records -----------------------------------------------------------------------------------

class WritesNeedAWritableCentre(permissions.BasePermission):
    """A user who may write no centre at all (a PI) is refused every write with 403."""

    message = gettext_lazy("Your role may read records but not change them.")

    def has_permission(self, request, view):
        return request.method in permissions.SAFE_METHODS or bool(access.writable_centre_codes(request.user))


class RecordPagination(CursorPages):
    """Keyset pages in primary-key order: constant cost per page, stable while rows are added.

    Pages are large by default (1,000 rows, ~300 kB of JSON): the API's readers are programs
    pulling whole tables, and each request has a fixed cost (authentication, access, a query).
    """

    page_size = 1000
    max_page_size = 5000

    def get_ordering(self, request, queryset, view):
        return (view.table.pk,)


def split_list(value):
    """'a, b,c' -> ['a', 'b', 'c'] (a comma-separated query parameter)."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


UPDATED_SINCE_SCHEMA = {"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}]}


def parse_updated_since(value):
    """An ISO date (midnight, local time) or date-time; naive date-times are local time."""
    moment = parse_datetime(value) if "T" in value or " " in value else None
    if moment is None:
        try:
            day = parse_date(value)
        except ValueError:
            day = None
        if day is None:
            raise serializers.ValidationError(
                {"updated_since": [_("Use an ISO date (2025-01-31) or date-time (2025-01-31T08:00:00Z).")]})
        moment = datetime.datetime(day.year, day.month, day.day)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    # In UTC: Python takes offsets up to 24 hours, PostgreSQL refuses those over 15:59 (a 500).
    return moment.astimezone(datetime.UTC)


class RecordFilter(BaseFilterBackend):
    """?patient_id=, ?centre= (comma-separated lists) and ?updated_since= (ISO date or date-time)."""

    def filter_queryset(self, request, queryset, view):
        params = request.query_params
        if ids := split_list(params.get("patient_id")):
            queryset = queryset.filter(patient_id__in=ids)
        if centres := split_list(params.get("centre")):
            queryset = queryset.filter(**{f"{view.table.centre_lookup}__in": centres})
        if (since := params.get("updated_since")) is not None:  # empty too: a 400, not every record
            try:
                queryset = queryset.filter(updated_at__gte=parse_updated_since(since))
            except (ValueError, OverflowError) as error:  # a well-formed but impossible date-time
                raise serializers.ValidationError({"updated_since": [str(error)]}) from error
        return queryset

    def get_schema_operation_parameters(self, view):
        return [
            {"name": "patient_id", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "Only these patients (pseudonyms, comma-separated)."},
            {"name": "centre", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "Only patients of these centres (codes, comma-separated)."},
            {"name": "updated_since", "in": "query", "required": False, "schema": UPDATED_SINCE_SCHEMA,
             "description": "Only records created or changed at or after this ISO date or date-time "
                            "(e.g. 2025-01-31 or 2025-01-31T08:00:00Z; a naive value is Europe/Berlin time)."},
        ]


IF_MATCH = OpenApiParameter(
    "If-Match", OpenApiTypes.STR, OpenApiParameter.HEADER, required=True,
    description='The ETag the change was based on, e.g. "3": if the record has a newer version, the write '
                "is refused with 412; without the header, with 428.")
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description="Any unique string of up to 64 characters for this create: sent again (a retry after a lost "
                "answer), the record the first request created is answered instead of a second one.")
DELETION_REASON = OpenApiParameter(
    "reason", {"type": "string", "minLength": 1, "maxLength": 80, "pattern": r"^[^\x00]*\S[^\x00]*$"}, OpenApiParameter.QUERY,
    required=True,
    description="Why the record is deleted (up to 80 characters), e.g. ?reason=entered%20twice: kept in its "
                "history and on its tombstone (GET /api/v1/deleted-records/). Without it the deletion is refused "
                "with 400 naming `reason`, and nothing is deleted.")
ETAG = OpenApiParameter("ETag", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[200, 201],
                        description='The record\'s version, e.g. "3".')


class RecordViewSet(KnownQueryParameters, viewsets.GenericViewSet):
    """List, read, create, change and delete the records of one table of the data dictionary."""

    table = None
    filter_backends = [RecordFilter]
    pagination_class = RecordPagination
    action_query_parameters = {"destroy": ("reason",)}
    permission_classes = [permissions.IsAuthenticated, TokenScope, WritesNeedAWritableCentre]

    def get_queryset(self):
        return self.table.readable(self.request.user)

    def get_permissions(self):
        # A monitor, who writes no record, verifies them; a PI signs them: the services decide.
        if self.action in ("status", "verification", "signatures"):
            return [permissions.IsAuthenticated(), TokenScope()]
        return super().get_permissions()

    def get_serializer_class(self):
        return StatusChangeSerializer if self.action == "status" else self.table.serializer

    @property
    def pk(self):
        return self.kwargs[self.lookup_url_kwarg or self.lookup_field]

    # --- helpers -------------------------------------------------------------------------

    def stored_record(self, pk):
        """The record if the user may read it; 404 otherwise (another centre's looks absent)."""
        if not self.table.is_patient and not (pk.isdecimal() and int(pk) < 2**63):
            raise exceptions.NotFound()
        record = self.get_queryset().filter(pk=pk).first()
        if record is None:
            audit.log_if_hidden(self.request, self.table.model, pk)
            raise exceptions.NotFound()
        return record

    def require_writable(self, record):
        centre = record.centre_id if self.table.is_patient else record.patient.centre_id
        if not access.can_write_centre(self.request.user, centre):
            raise exceptions.PermissionDenied(_("You may read but not change patients of centre %(centre)s.")
                                              % {"centre": centre})

    def record_response(self, pk, status_code=status.HTTP_200_OK):
        row = self.table.row(self.request.user, pk)
        headers = {"ETag": etag(row["version"])}
        if status_code == status.HTTP_201_CREATED:
            headers["Location"] = self.request.build_absolute_uri(
                reverse(f"api:{self.table.url}-detail", args=[pk]))
        return Response(row, status=status_code, headers=headers)

    def apply(self, record, data):
        """Copy validated values onto the record (the pseudonym and the centre never change)."""
        if "patient_id" in data and not self.table.is_patient and data.pop("patient_id") != record.patient_id:
            raise serializers.ValidationError({"patient_id": [_("A record cannot move to another patient.")]})
        if "centre" in data and data.pop("centre") != record.centre_id:
            raise serializers.ValidationError(
                {"centre": [_("A patient cannot move to another centre: the pseudonym names it.")]})
        if "missing_codes" not in data:  # a value sent for a column replaces its stored missing-data code
            valued = {column for column, value in data.items() if value not in (None, "")}
            record.missing_codes = {column: code for column, code in (record.missing_codes or {}).items()
                                    if column not in valued}
        for column, value in data.items():
            setattr(record, column, value)
        return record

    def new_record(self, data):
        user = self.request.user
        data.pop("reason", None)  # a new record is in progress: no reason is asked
        key = self.request.headers.get("Idempotency-Key")  # sent again, the same record is answered
        if self.table.is_patient:
            centre = Centre.objects.filter(code=data.pop("centre")).first()
            if centre is None:
                raise serializers.ValidationError({"centre": [_("There is no such centre.")]})
            with service_errors():
                return services.patient_create(source="api", user=user, centre=centre, idempotency_key=key, **data)
        patient_id = data.pop("patient_id")
        patient = access.patients_readable(user).filter(pk=patient_id).first()
        if patient is None:  # another centre's patient is not revealed: it looks absent
            audit.log_if_hidden(self.request, Patient, patient_id)
            raise serializers.ValidationError({"patient_id": [_("There is no patient %(id)s.") % {"id": patient_id}]})
        access.require_writable(user, patient.centre_id)
        with service_errors():
            return services.record_save(source="api", user=user, record=self.table.model(patient=patient, **data),
                                        idempotency_key=key)

    # --- actions -------------------------------------------------------------------------

    def list(self, request, *args, **kwargs):
        rows = self.table.rows(self.filter_queryset(self.get_queryset()))
        page = self.paginate_queryset(rows)
        audit.log_read(request, patient_ids=[row["patient_id"] for row in page])
        return self.get_paginated_response(page)

    def retrieve(self, request, *args, **kwargs):
        record = self.stored_record(self.pk)
        audit.log_read(request, patient_ids=[record.patient_id])
        return self.record_response(record.pk)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            record = self.new_record(dict(serializer.validated_data))
        return self.record_response(record.pk, status.HTTP_201_CREATED)

    def update(self, request, *args, partial=False, **kwargs):
        record = self.stored_record(self.pk)
        self.require_writable(record)
        version = expected_version(request, record)
        serializer = self.get_serializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        reason = data.pop("reason", None)
        self.apply(record, data)
        with service_errors():
            services.record_save(source="api", user=request.user, record=record, expected_version=version,
                                 reason=reason)
        return self.record_response(record.pk)

    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, partial=True, **kwargs)

    @action(detail=True, methods=["post"], url_path="status")
    def status(self, request, *args, **kwargs):
        """Move the record to another status; answers the record."""
        record = self.stored_record(self.pk)
        serializer = StatusChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with service_errors():
            services.record_status_set(user=request.user, record=record, source="api",
                                       status=serializer.validated_data["status"],
                                       reason=serializer.validated_data.get("reason"))
        return self.record_response(record.pk)

    def destroy(self, request, *args, **kwargs):
        record = self.stored_record(self.pk)
        self.require_writable(record)
        version = expected_version(request, record)
        with service_errors():
            services.record_delete(source="api", user=request.user, record=record, expected_version=version,
                                   reason=request.query_params.get("reason"))
        return Response(status=status.HTTP_204_NO_CONTENT)


def record_viewset(table):
    """The viewset of one table, with its OpenAPI description."""
    one, many = str(table.model._meta.verbose_name), str(table.model._meta.verbose_name_plural)
    schema = extend_schema_view(
        list=extend_schema(summary=f"List {many}", tags=[table.name],
                           description=f"The {many} you may read, in pages (follow `next`)."),
        retrieve=extend_schema(summary=f"Read a {one}", tags=[table.name], parameters=[ETAG]),
        create=extend_schema(summary=f"Create a {one}", tags=[table.name], parameters=[IDEMPOTENCY_KEY, ETAG],
                             description="Checked by every rule of the data dictionary; a violation is a 400 "
                                         "naming the column, and nothing is written."),
        update=extend_schema(summary=f"Replace a {one}", tags=[table.name], parameters=[IF_MATCH, ETAG]),
        partial_update=extend_schema(summary=f"Change some values of a {one}", tags=[table.name],
                                     parameters=[IF_MATCH, ETAG]),
        status=extend_schema(
            summary=f"Move a {one} to another status", tags=[table.name], request=StatusChangeSerializer,
            responses={200: table.serializer, 403: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT},
            description="in_progress → complete (a nurse of the centre) → verified (a monitor of the centre or a "
                        "coordinator) → locked (a coordinator); back: complete → in_progress (a nurse), verified "
                        "→ complete (a monitor), locked → verified (a coordinator, with a reason). A record of a "
                        "locked patient answers 409 with code record_locked."),
        destroy=extend_schema(summary=f"Delete a {one}", tags=[table.name], parameters=[IF_MATCH, DELETION_REASON],
                              description="Deleting a patient deletes the whole case. A deletion needs a `reason` "
                                          "(query parameter); a deletion that would break a rule for the records "
                                          "left behind is a 400. A coordinator can restore it "
                                          "(POST /api/v1/deleted-records/{id}/restore/)."),
        **verification_schema(table.name, one),
    )
    attrs = {"table": table, "lookup_field": "patient_id" if table.is_patient else "pk",
             "queryset": table.model.objects.none(), "__doc__": f"The {many} of the registry.",
             "lookup_value_regex": "[^/]+"}  # any value reaches the view, which answers 404 in JSON
    bases = (SignaturesMixin, VerificationMixin, RecordViewSet) if table.is_patient else (VerificationMixin,
                                                                                             RecordViewSet)
    return schema(type(f"{table.model.__name__}ViewSet", bases, attrs))


VIEWSETS = {table.url: record_viewset(table) for table in TABLES}


@extend_schema_view(
    list=extend_schema(summary="List the centres whose records you may read", tags=["centres"]),
    retrieve=extend_schema(summary="Read one centre", tags=["centres"]),
)
class CentreViewSet(KnownQueryParameters, viewsets.ReadOnlyModelViewSet):
    serializer_class = CentreSerializer
    queryset = Centre.objects.none()
    lookup_field = "code"
    lookup_value_regex = "[^/]+"
    pagination_class = None

    def get_queryset(self):
        return access.centres_readable(self.request.user).values("code", "name")

    def list(self, request, *args, **kwargs):
        return Response(list(self.get_queryset()))

    def retrieve(self, request, *args, **kwargs):
        centre = self.get_queryset().filter(code=self.kwargs["code"]).first()
        if centre is None:
            raise exceptions.NotFound()
        return Response(centre)


@extend_schema(exclude=True)
class NotFoundView(APIView):
    """Any other URL under /api/v1/ (ending in /): a 404 in JSON, as every API error."""

    permission_classes = []

    def get(self, request, *args, **kwargs):
        raise exceptions.NotFound()

    post = put = patch = delete = get
