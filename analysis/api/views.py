"""The analysis endpoints (/api/v1/analysis/): the survival report and the analysis frame.

The analysis plan comes from query parameters, one per AnalysisPlan field (lists comma-separated
or repeated), each defaulting to endpoints.md; `centres` narrows the scope (access.patients_for_analysis):
the report pools a nurse's centres, and every centre for a PI or a coordinator; the frame, one row
per patient, covers only the centres whose records the user may read (every centre for a
coordinator or a holder of the analyst permission). Both record the read
(registry.security.audit): the frame its patients, the report the centres and patients it covers.
`freeze=NAME` computes either from that data freeze instead of the live registry, for the same
centres (an unknown name is a 400); the result then names the freeze and its hash.
"""
import json

from django.conf import settings
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from analysis import plan as plans
from analysis import provenance
from analysis.plan import (
    CENTRE_ADJUSTMENTS,
    CENTRE_FACTORS,
    ENDPOINTS,
    FACTORS,
    HISTOLOGIES,
    MARGINS,
    MINIMUMS,
    PACK_DEIDENTIFY,
    AnalysisPlan,
    PlanError,
    split_list,
)
from registry import selectors
from registry.api.fields import StrictCharField
from registry.api.query_parameters import KnownQueryParameters
from registry.index_date import INDEX_RULES
from registry.security import audit

PLAN_DEFAULTS = AnalysisPlan()
PLAN_ENUMS = {"histologies": HISTOLOGIES, "multivariable_covariates": FACTORS, "multivariable_endpoints": ENDPOINTS,
              "complete_margins": MARGINS, "index_rule": INDEX_RULES, "centre_adjustment": CENTRE_ADJUSTMENTS,
              "centre_factor": CENTRE_FACTORS,
              "language": tuple(code for code, _name in settings.LANGUAGES), "pack_deidentify": PACK_DEIDENTIFY}
# The bounds analysis.plan checks, stated in the schema (rules between parameters, such as
# period_start <= period_end, are checked by the plan alone: a 400 naming them).
PLAN_BOUNDS = {name: {"minimum": minimum} for name, minimum in MINIMUMS.items()}
PLAN_ITEM_BOUNDS = {"rate_times_months": {"exclusiveMinimum": True, "minimum": 0},
                    "cutoff_search_range": {"exclusiveMinimum": True, "minimum": 0, "exclusiveMaximum": True,
                                            "maximum": 1}}


NOT_PLAN = ("centres", "format", "freeze")  # query parameters that are not the plan's


def plan_and_centres(query):
    """(AnalysisPlan, centres or None) from query parameters; 400 naming the parameter if unusable."""
    try:
        plan = plans.plan_from_query({name: query.getlist(name) for name in query if name not in NOT_PLAN})
    except PlanError as error:
        raise serializers.ValidationError({"plan": [str(error)]}) from error
    centres = [code for value in query.getlist("centres") for code in split_list(value)] or None
    return plan, centres


def freeze_of(query):
    """The data freeze named by ?freeze= (None: the live registry); 400 if there is none."""
    name = query.get("freeze")
    if not name:
        return None
    freeze = selectors.freeze_named(name)
    if freeze is None:
        raise serializers.ValidationError({"freeze": [_("There is no freeze %(name)s.") % {"name": name}]})
    return freeze


def plan_parameters():
    """The analysis plan's parameters as OpenAPI query parameters (defaults of endpoints.md)."""
    params = []
    for name, default in PLAN_DEFAULTS.to_dict().items():
        typed = getattr(PLAN_DEFAULTS, name)
        if isinstance(typed, tuple):
            item = {"type": "number", **PLAN_ITEM_BOUNDS.get(name, {})} if typed and isinstance(typed[0], float) \
                else {"type": "string"}
            if name in PLAN_ENUMS:
                item["enum"] = list(PLAN_ENUMS[name])
            schema = {"type": "array", "items": item, "minItems": 1, "uniqueItems": True}
        elif isinstance(typed, bool):
            schema = {"type": "boolean"}
        elif isinstance(typed, int):
            schema = {"type": "integer", **PLAN_BOUNDS.get(name, {})}
        elif isinstance(typed, float):
            schema = {"type": "number", **PLAN_BOUNDS.get(name, {})}
        elif name.startswith("period_"):
            schema = {"type": "string", "format": "date"}
        elif name in PLAN_ENUMS:
            schema = {"type": "string", "enum": list(PLAN_ENUMS[name])}
        else:
            schema = {"type": "string", "minLength": 1, "pattern": r"\S"}
        params.append(OpenApiParameter(
            name, schema, OpenApiParameter.QUERY, required=False, explode=False if isinstance(typed, tuple) else None,
            description=f"Analysis plan parameter (default {default!r}); lists are comma-separated."))
    params.append(OpenApiParameter(
        "centres", {"type": "array", "items": {"type": "string"}}, OpenApiParameter.QUERY, required=False,
        explode=False, description="Only these centres (codes, comma-separated), within those you may analyse."))
    params.append(OpenApiParameter(
        "freeze", {"type": "string"}, OpenApiParameter.QUERY, required=False,
        description="The name of a data freeze (GET /api/v1/freezes/) to compute from instead of the live "
                    "registry: the same request gives the same result, however the data have changed since."))
    return params


class CsvRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data.encode(self.charset) if isinstance(data, str) else b""


class AnalysisView(KnownQueryParameters, APIView):
    """Aggregate results of the patients the user may analyse (access.patients_for_analysis)."""

    query_parameters = (*PLAN_DEFAULTS.to_dict(), *NOT_PLAN)

    def finalize_response(self, request, response, *args, **kwargs):
        # Errors are JSON whatever format was asked for.
        if response.status_code >= 400 and isinstance(getattr(response, "data", None), (dict, list)):
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
        return super().finalize_response(request, response, *args, **kwargs)


class FrameSerializer(serializers.Serializer):
    plan = serializers.DictField(help_text="The analysis plan the frame was derived with.")
    plan_hash = StrictCharField()
    data_version = StrictCharField(help_text="Changes whenever a clinical record of the centres analysed changes "
                                                   "(from a freeze: the freeze's, which never changes).")
    freeze = serializers.DictField(allow_null=True, help_text="The data freeze the frame comes from (name, frozen_at, "
                                   "rule, content_hash, dictionary_version, live_data_version), or null.")
    software = serializers.DictField(help_text="The versions of the registry, Python and the packages that derived "
                                     "the frame ({registry, python, numpy, pandas, ...}).")
    columns = serializers.ListField(child=StrictCharField())
    rows = serializers.ListField(child=serializers.DictField(), help_text="One object per patient.")


class ReportView(AnalysisView):
    @extend_schema(
        summary="The survival report", tags=["analysis"], parameters=plan_parameters(),
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="The survival report (plan, cohort flow, "
                                        "Kaplan-Meier estimates, Cox models, Table 1), as in the web app.")},
        description="Disease-free and overall survival after the first metastasectomy, recomputed from the "
                    "records of the centres you may analyse under the analysis plan given by the query "
                    "parameters (each defaults to endpoints.md).")
    def get(self, request):
        from analysis.report import survival_report  # lifelines takes seconds to import: only when asked

        plan, centres = plan_and_centres(request.query_params)
        report = survival_report(plan, user=request.user, centres=centres, freeze=freeze_of(request.query_params))
        audit.log_read(request, centres=report["scope"]["centres_included"], rows=report["cohort"]["registered"])
        return Response(report)


class FrameView(AnalysisView):
    renderer_classes = [JSONRenderer, CsvRenderer]

    @extend_schema(
        summary="The analysis frame: one row per patient", tags=["analysis"], parameters=plan_parameters(),
        responses={(200, "application/json"): FrameSerializer, (200, "text/csv"): OpenApiTypes.STR},
        description="One row per patient of the centres whose records you may read (a nurse's and a PI's "
                    "own centres; every centre for a coordinator), with endpoints and derived variables "
                    "under the plan. "
                    "`?format=csv` (or `Accept: text/csv`) gives CSV: ISO dates, blank = unknown.")
    def get(self, request, *args, **kwargs):
        from analysis.report import frame_with_version  # lifelines takes seconds to import: only when asked

        plan, centres = plan_and_centres(request.query_params)
        freeze = freeze_of(request.query_params)
        # One row per patient: only the centres whose records the user may read (a PI's own).
        frame, version = frame_with_version(plan, user=request.user, centres=centres, row_level=True, freeze=freeze)
        audit.log_read(request, patient_ids=frame["patient_id"].tolist())
        for column in frame.columns:
            if str(frame[column].dtype).startswith("datetime"):
                frame[column] = frame[column].dt.strftime("%Y-%m-%d")
        headers = {"X-Data-Version": version, "X-Plan-Hash": plan.hash}
        if request.accepted_renderer.format == "csv":
            return Response(frame.to_csv(index=False), headers=headers)
        rows = json.loads(frame.to_json(orient="records"))
        return Response({"plan": plan.to_dict(), "plan_hash": plan.hash, "data_version": version,
                         "freeze": selectors.freeze_provenance(freeze) if freeze is not None else None,
                         "software": provenance.software(), "columns": list(frame.columns), "rows": rows},
                        headers=headers)

