"""The dataset export through the REST API, as a job with a status URL: the same jobs, rules and
archive as the export page (/transfer/export/, registry.transfer.views).

- POST /api/v1/exports/ with {"format", "centre", "deidentify", "freeze"} submits the export as the token's
  user and answers 202 with `Location: /api/v1/exports/{id}/`. Who may export what is the web
  page's rule (registry.transfer.forms.export_form, access.export_centre_codes): coordinators the
  pooled dataset or any centre, PIs their own centres when EXPORT_ALLOW_PI is on; anyone else 403.
  A scope or an option the page would not offer is a 400 naming the field.
- GET /api/v1/exports/{id}/: the job's state, and once it is done the archive's URL; GET
  .../download/ the archive. A job is only its submitter's: anyone else's, an import's or an
  unknown id is a 404.
- GET /api/v1/exports/: the user's newest export jobs.

The export itself is recorded when the job runs (an ExportLog row: who, scope, format,
de-identification, data version; the audit trail lists it as a read), as for the export page; the
download, there as here, records nothing more.
"""
import uuid

from django.http import HttpResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from registry import access
from registry.api.fields import StrictCharField
from registry.api.query_parameters import KnownQueryParameters
from registry.models import Job
from registry.transfer import jobs
from registry.transfer.forms import ExportForm, export_form

FORMATS = [code for code, _label in ExportForm.base_fields["file_format"].choices]
DEIDENTIFY = [code for code, _label in ExportForm.base_fields["deidentify"].choices]
FIELD_NAMES = {"file_format": "format"}  # the form's field names as the API calls them
POLL_SECONDS = 2  # the export page reloads itself as often


class ExportSubmitSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=FORMATS, help_text=gettext_lazy(
        "csv, xlsx (Excel), dta (Stata) or sav (SPSS): the export page's formats."))
    centre = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=20,
                                   help_text=gettext_lazy(
                                       "A centre's code; empty or left out: the pooled dataset of every centre "
                                       "(coordinators only)."))
    deidentify = serializers.ChoiceField(choices=DEIDENTIFY, default="none", help_text=gettext_lazy(
        "none (dates as recorded), shift-dates (every date of a patient moved by the same secret offset) or "
        "intervals (days from the index operation instead of dates)."))
    freeze = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=80,
                             help_text=gettext_lazy("The name of a data freeze (GET /api/v1/freezes/) to export "
                                                    "instead of the live registry: the same data whenever asked."))


class ExportJobSerializer(serializers.Serializer):
    """An export job: its state and, once done, the URL of its archive."""

    id = serializers.UUIDField()
    state = serializers.ChoiceField(choices=[state for state, _label in Job.STATES], help_text=gettext_lazy(
        "queued (waiting for a worker), running, done or failed."))
    step = StrictCharField(allow_null=True, help_text=gettext_lazy("The job's current step, if it names one."))
    format = serializers.ChoiceField(choices=FORMATS)
    centre = StrictCharField(allow_null=True, help_text=gettext_lazy("null: the pooled dataset."))
    deidentify = serializers.ChoiceField(choices=DEIDENTIFY)
    freeze = StrictCharField(allow_null=True, help_text=gettext_lazy("null: the live registry."))
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    error = StrictCharField(allow_null=True, help_text=gettext_lazy("Why the job failed; null unless it did."))
    download = serializers.URLField(allow_null=True, help_text=gettext_lazy(
        "The archive's URL once the job is done; null before, and once the file is no longer kept."))


def export_row(request, job, kept):
    """The job as the API answers it; `kept`: the ids of jobs whose archive is still kept."""
    options = job.options
    done = job.state == Job.DONE and job.pk in kept
    return ExportJobSerializer({
        "id": job.pk, "state": job.state, "step": job.step or None, "format": options.get("file_format"),
        "centre": options.get("centre") or None, "deidentify": options.get("deidentify"),
        "freeze": options.get("freeze") or None,
        "created_at": job.created_at, "finished_at": job.finished_at, "error": jobs.error_message(job) or None,
        "download": request.build_absolute_uri(reverse("api:exports-download", args=[job.pk])) if done else None,
    }).data


def _require_export(user):
    if not access.can_export(user):
        raise exceptions.PermissionDenied(_("You may not export the dataset."))


JOB_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                          description="The job's id, as in the Location of its submission.")
LOCATION = OpenApiParameter("Location", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[202],
                            description="The job's status URL: ask it until `state` is done or failed.")
RETRY_AFTER = OpenApiParameter("Retry-After", OpenApiTypes.INT, OpenApiParameter.HEADER, response=[200, 202],
                               description="Seconds to wait before asking the status again (while the job has "
                                           "not ended).")
WHO = ("Coordinators export the pooled dataset or any centre's; PIs their own centres when the registry allows it "
       "(EXPORT_ALLOW_PI); anyone else gets 403, as on the export page.")


@extend_schema_view(
    list=extend_schema(summary="List your export jobs", tags=["exports"],
                       responses={200: ExportJobSerializer(many=True)},
                       description="Your 10 newest export jobs, newest first. " + WHO),
    create=extend_schema(
        summary="Export the dataset (a job)", tags=["exports"], request=ExportSubmitSerializer,
        parameters=[LOCATION, RETRY_AFTER],
        responses={202: ExportJobSerializer},
        description="Submits an export of the dataset — the same zip as the export page: one file per table, the "
                    "analysis frame, the data dictionary and a README — and answers 202 at once with the job's "
                    "status URL in Location. " + WHO + " A scope you may not export, an unknown centre or an "
                    "unknown option is a 400 naming the field."),
    retrieve=extend_schema(
        summary="An export job's status", tags=["exports"], parameters=[JOB_ID, RETRY_AFTER],
        responses={200: ExportJobSerializer},
        description="The job's state; once it is done, `download` is the archive's URL. Only the user who submitted "
                    "the job sees it (anyone else: 404)."),
    download=extend_schema(
        summary="Download an export's archive", tags=["exports"], parameters=[JOB_ID],
        responses={(200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description=(
            "The zip archive, as an attachment named as on the export page."))},
        description="The archive of a finished export job of yours; 404 before it is done, after it failed, once it "
                    "is no longer kept, and for anyone else's job."),
)
class ExportViewSet(KnownQueryParameters, viewsets.GenericViewSet):
    """Dataset exports, as jobs."""

    queryset = Job.objects.none()
    serializer_class = ExportJobSerializer
    pagination_class = None
    post_only_reads = True  # submitting an export changes no record: a read-only token may (a statistician's)
    lookup_value_regex = "[^/]+"  # any value reaches the view, which answers 404 in JSON

    def perform_content_negotiation(self, request, force=False):
        # The archive is sent as it is, not rendered: a client asking for application/zip must not be
        # refused (406), and an error is answered in JSON whatever it asked for.
        return super().perform_content_negotiation(request, force=force or self.action == "download")

    def own_export(self):
        """The user's export job named in the URL; anyone else's, an import, or no such job is a 404."""
        try:
            pk = uuid.UUID(self.kwargs["pk"])
            job = jobs.job_of(self.request.user, pk)
        except (ValueError, Job.DoesNotExist):
            raise exceptions.NotFound(_("There is no such export job of yours.")) from None
        if job.kind != Job.EXPORT:
            raise exceptions.NotFound(_("There is no such export job of yours."))
        return job

    def status_response(self, job, status_code=status.HTTP_200_OK):
        response = Response(export_row(self.request, job, jobs.kept_results([job])), status=status_code)
        if not job.finished:
            response["Retry-After"] = str(POLL_SECONDS)
        return response

    def list(self, request, *args, **kwargs):
        _require_export(request.user)
        found = list(jobs.jobs_of(request.user, kind=Job.EXPORT))
        kept = jobs.kept_results(found)
        return Response([export_row(request, job, kept) for job in found])

    def create(self, request, *args, **kwargs):
        _require_export(request.user)
        serializer = ExportSubmitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        # The export page's form decides which scopes the user may choose: the same rule, the same messages.
        form = export_form(request.user, {"centre": data.get("centre") or "", "file_format": data["format"],
                                          "deidentify": data["deidentify"], "freeze": data.get("freeze") or ""})
        if not form.is_valid():
            raise serializers.ValidationError({FIELD_NAMES.get(name, name): list(messages)
                                               for name, messages in form.errors.items()})
        job = jobs.submit_export(request.user, centre=form.cleaned_data["centre"] or None,
                                 file_format=form.cleaned_data["file_format"],
                                 deidentify=form.cleaned_data["deidentify"], freeze=form.cleaned_data["freeze"])
        response = self.status_response(job, status.HTTP_202_ACCEPTED)
        response["Location"] = reverse("api:exports-detail", args=[job.pk])
        return response

    def retrieve(self, request, *args, **kwargs):
        return self.status_response(self.own_export())

    @action(detail=True, methods=["get"])
    def download(self, request, *args, **kwargs):
        job = self.own_export()
        _require_export(request.user)  # rights may have been withdrawn since the job ran
        if job.state != Job.DONE:
            raise exceptions.NotFound(_("The export has failed.") if job.state == Job.FAILED
                                      else _("The export has not finished yet: ask its status again."))
        data = jobs.result_bytes(job)
        if not data:
            raise exceptions.NotFound(_("This file is no longer kept: submit the export again."))
        response = HttpResponse(data, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{job.result_name}"'
        return response
