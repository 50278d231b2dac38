"""/api/v1/freezes/: the data freezes (registry.services.freezes), and what changed since one.

- GET lists every freeze: name, instant, rule, hashes, and its row counts over the centres whose
  aggregates the user may see (access.centres_for_analysis): a freeze is used by name with the
  analysis endpoints (?freeze=NAME), under their own access rules.
- POST freezes the registry now: coordinators only (403 for everyone else).
- GET {name}/diff/?against=NAME|live: every record added, changed (with its columns) or removed
  from the freeze to another freeze or to the live registry, per centre and table. It names
  patients, so it is row-level data: only the centres whose records the user may read (every
  centre for a coordinator or the analyst permission), and the read is recorded.
"""
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from registry import access, frozen, selectors, services
from registry.api.fields import StrictCharField, StrictRegexField
from registry.api.query_parameters import KnownQueryParameters
from registry.models import FREEZE_NAME_PATTERN, Freeze
from registry.security import audit

LIVE = "live"


def centres_or_none(codes):
    """access's ALL as None (every centre), else the codes."""
    return None if codes == access.ALL else codes


def freeze_row(freeze, user):
    """A freeze as the API answers it; its counts over the centres the user may analyse."""
    centres = centres_or_none(access.centres_for_analysis(user))
    return {**selectors.freeze_provenance(freeze), "frozen_by": freeze.username or None,
            "counts": freeze.table_counts(centres)}


class FreezeSerializer(serializers.Serializer):
    name = StrictCharField()
    frozen_at = serializers.DateTimeField()
    frozen_by = StrictCharField(allow_null=True, help_text="The coordinator; null for the system.")
    rule = serializers.ChoiceField(choices=Freeze.RULES)
    content_hash = StrictCharField(help_text="SHA-256 of the canonical serialisation of the frozen data.")
    dictionary_version = StrictCharField()
    live_data_version = StrictCharField(help_text="The live data version the freeze was read at.")
    counts = serializers.DictField(child=serializers.IntegerField(),
                                   help_text="Rows per table, over the centres whose results you may see.")


class FreezeCreateSerializer(serializers.Serializer):
    name = StrictRegexField(FREEZE_NAME_PATTERN, max_length=80,
                            help_text="Letters, digits, '.', '_' and '-'; unique; not 'live'.")
    rule = serializers.ChoiceField(choices=Freeze.RULES, default=Freeze.ALL,
                                   help_text="all records, or only verified and locked records of verified or "
                                             "locked patients")


class FrozenChangeSerializer(serializers.Serializer):
    centre = StrictCharField()
    table = StrictCharField()
    change = serializers.ChoiceField(choices=["added", "changed", "removed"])
    patient_id = StrictCharField()
    record_id = serializers.IntegerField(allow_null=True, help_text="null for the patients table")
    fields = serializers.ListField(child=StrictCharField(), help_text="The columns changed.")


class FrozenSummarySerializer(serializers.Serializer):
    centre = StrictCharField()
    table = StrictCharField()
    added = serializers.IntegerField()
    changed = serializers.IntegerField()
    removed = serializers.IntegerField()


class FreezeDiffSerializer(serializers.Serializer):
    freeze = FreezeSerializer()
    against = serializers.JSONField(help_text="The later freeze, or \"live\".")
    summary = FrozenSummarySerializer(many=True)
    changes = FrozenChangeSerializer(many=True)


class FreezeListView(KnownQueryParameters, APIView):
    @extend_schema(summary="List the data freezes", tags=["freezes"], responses={200: FreezeSerializer(many=True)})
    def get(self, request):
        return Response([freeze_row(freeze, request.user) for freeze in selectors.freezes()])

    @extend_schema(summary="Freeze the registry now", tags=["freezes"], request=FreezeCreateSerializer,
                   responses={201: FreezeSerializer, 400: OpenApiTypes.OBJECT, 403: OpenApiTypes.OBJECT},
                   description="An unchangeable copy of the clinical tables at this instant (coordinators only).")
    def post(self, request):
        if not access.is_coordinator(request.user):
            raise exceptions.PermissionDenied(_("Only coordinators may freeze the registry."))
        serializer = FreezeCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            freeze = services.freeze_create(user=request.user, **serializer.validated_data)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict) from error
        return Response(freeze_row(freeze, request.user), status=status.HTTP_201_CREATED)


class FreezeDiffView(KnownQueryParameters, APIView):
    query_parameters = ("against",)

    @extend_schema(
        summary="What changed since a freeze", tags=["freezes"],
        parameters=[OpenApiParameter("against", {"type": "string"}, OpenApiParameter.QUERY,
                                     required=False, description="A later freeze's name, or 'live' (the default, also when empty).")],
        responses={200: FreezeDiffSerializer, 400: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT},
        description="Per centre and table: the records added, changed (with the columns changed) and removed "
                    "from the freeze to another freeze or to the live registry (under the freeze's rule), for the "
                    "centres whose records you may read.")
    def get(self, request, name):
        freeze = selectors.freeze_named(name)
        if freeze is None:
            raise exceptions.NotFound()
        against_name = request.query_params.get("against") or LIVE
        against = None if against_name == LIVE else selectors.freeze_named(against_name)
        if against_name != LIVE and against is None:
            raise serializers.ValidationError({"against": [_("There is no freeze %(name)s.") % {"name": against_name}]})
        centres = centres_or_none(access.centres_for_analysis(request.user, row_level=True))
        changes = selectors.freeze_diff(freeze, against, centres)
        audit.log_read(request, patient_ids=[row["patient_id"] for row in changes])
        return Response({"freeze": freeze_row(freeze, request.user),
                         "against": LIVE if against is None else freeze_row(against, request.user),
                         "summary": frozen.diff_summary(changes), "changes": changes})

